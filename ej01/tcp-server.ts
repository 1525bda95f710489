/**
 * Echo server over TCP (RFC 862): every byte a client sends comes back to it,
 * until the client closes its side; then the server closes too.
 *
 * ```sh
 * npx tsx ej01/tcp-server.ts                      # 127.0.0.1:7007, many clients at once
 * npx tsx ej01/tcp-server.ts --port 0             # any free port; the ready line names it
 * npx tsx ej01/tcp-server.ts --iterative          # one client at a time, as a first attempt would
 * ```
 *
 * Prints `listening on 127.0.0.1:7007 (tcp)` on stdout when it is ready, and
 * one line per connection on stderr. Ctrl-C stops it after the clients it is
 * serving have finished (3 s at most).
 *
 * Concurrency comes from the event loop: each connection is a stream piped
 * back into itself, so a slow reader pauses its own sender (backpressure) and
 * never holds up anyone else. `--iterative` answers the assignment's question
 * by contrast: connections it is not serving wait, accepted but unread.
 *
 * @module
 */
import net from 'node:net';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { isMain, runMain } from '../lib/main.ts';
import { closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';

/** Options of {@link createTcpEchoServer}. */
export interface TcpEchoOptions {
  /** Serve one connection at a time; the others wait until it closes. */
  iterative?: boolean;
  /** Close a connection that has been silent this long (0 = never). */
  idleTimeoutMs?: number;
  log?: Logger;
}

/**
 * Creates (but does not start) an RFC 862 TCP echo server. Each connection
 * is echoed with backpressure and ended after the client's FIN, once every
 * byte has been written back; a client that resets only loses itself.
 */
export function createTcpEchoServer({ iterative = false, idleTimeoutMs = 0, log = silent }: TcpEchoOptions = {}): net.Server {
  const waiting: net.Socket[] = [];
  let busy = false;

  const serve = (socket: net.Socket) => {
    const peer = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    const started = performance.now();
    if (idleTimeoutMs > 0) {
      socket.setTimeout(idleTimeoutMs, () => {
        log(`${peer} idle for ${idleTimeoutMs / 1000} s: closing`);
        socket.destroy();
      });
    }
    socket.pipe(socket);
    socket.once('close', () => {
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      log(`${peer} closed after ${socket.bytesWritten} bytes echoed in ${seconds} s`);
      if (iterative) next();
    });
    socket.resume();
  };

  const next = () => {
    busy = false;
    let socket: net.Socket | undefined;
    while ((socket = waiting.shift())) {
      // A client that gave up while it waited has nothing left to echo.
      if (!socket.destroyed) {
        busy = true;
        serve(socket);
        return;
      }
    }
  };

  return net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    const peer = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    // Every socket needs an error listener: a reset (ECONNRESET, EPIPE) is
    // one client's problem and must never reach the process as an exception.
    socket.on('error', (error: NodeJS.ErrnoException) => log(`${peer} ${error.code ?? error.message}`));
    if (iterative && busy) {
      log(`${peer} connected; waiting: another client is being served`);
      waiting.push(socket);
      return;
    }
    log(`${peer} connected`);
    busy = true;
    serve(socket);
  });
}

const command = defineCommand({
  name: 'tcp-server.ts',
  summary: 'Echo server (RFC 862) over TCP: sends back every byte it receives.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (:: for every IPv6 and IPv4 address)' },
    port: { type: 'string', default: '7007', help: 'port to listen on; 0 picks a free one' },
    iterative: { type: 'boolean', help: 'serve one client at a time; the others wait (for comparison)' },
    'idle-timeout': { type: 'string', default: '300', metavar: 'SECONDS', help: 'close a connection silent this long' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log connections on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (tcp)" on stdout when ready. Ctrl-C stops it.
Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen, 2 bad usage, 130 a second Ctrl-C or connections still open after the grace period.`,
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const idleTimeoutMs = parsePositive(opts['idle-timeout'], 'idle-timeout') * 1000;
  const log = createLogger('tcp-server', { quiet: opts.quiet });

  const server = trackConnections(createTcpEchoServer({ iterative: opts.iterative, idleTimeoutMs, log }));
  const address = await listenTcp(server, host, port);
  // Handlers first: once the ready line is out, Ctrl-C must find them.
  onShutdown(() => closeGracefully(server, 2500), { log });
  console.log(readyLine(address, 'tcp'));
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
