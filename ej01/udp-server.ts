/**
 * Echo server over UDP (RFC 862): every datagram is sent back, unchanged, to
 * the address and port it came from.
 *
 * ```sh
 * npx tsx ej01/udp-server.ts                 # 127.0.0.1:7007
 * npx tsx ej01/udp-server.ts --port 0        # any free port; the ready line names it
 * ```
 *
 * Prints `listening on 127.0.0.1:7007 (udp)` on stdout when it is ready, and
 * one line per datagram on stderr (unless `--quiet`). Ctrl-C stops it.
 *
 * There is no connection, so there is nothing to serve "one at a time": one
 * socket receives every client's datagrams in arrival order and answers each
 * at once. That is the answer to the assignment's question — going
 * multi-client changes nothing for UDP, while a TCP server must serve many
 * connections at once (see tcp-server.ts and its `--iterative` mode).
 *
 * @module
 */
import dgram from 'node:dgram';
import { defineCommand, formatAddress, parseHost, parsePort } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { isMain, runMain } from '../lib/main.ts';
import { bindUdp, onShutdown, readyLine, udpType } from '../lib/server.ts';

/**
 * Creates (but does not bind) an RFC 862 UDP echo socket for `host`'s
 * address family. A failed send (the peer's network is gone) is logged and
 * forgotten: UDP promises nothing, and the server answers the next datagram.
 */
export function createUdpEchoServer(host: string, { log = silent }: { log?: Logger } = {}): dgram.Socket {
  // recvBufferSize: a burst from many clients should queue, not be dropped.
  const socket = dgram.createSocket({ type: udpType(host), recvBufferSize: 1 << 20 });
  socket.on('message', (message, peer) => {
    const from = formatAddress(peer.address, peer.port);
    log(`${from} ${message.length} bytes`);
    socket.send(message, peer.port, peer.address, (error) => {
      if (error) log(`${from} reply not sent: ${error.message}`);
    });
  });
  socket.on('error', (error) => log(`socket error: ${error.message}`));
  return socket;
}

const command = defineCommand({
  name: 'udp-server.ts',
  summary: 'Echo server (RFC 862) over UDP: sends every datagram back to its sender.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (:: for IPv6)' },
    port: { type: 'string', default: '7007', help: 'port to listen on; 0 picks a free one' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log datagrams on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (udp)" on stdout when ready. Ctrl-C stops it.
Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot bind, 2 bad usage, 130 a second Ctrl-C.`,
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const log = createLogger('udp-server', { quiet: opts.quiet });

  const socket = createUdpEchoServer(host, { log });
  const address = await bindUdp(socket, host, port);
  // Handlers first: once the ready line is out, Ctrl-C must find them.
  onShutdown(() => new Promise<void>((resolve) => socket.close(() => resolve())), { log });
  console.log(readyLine(address, 'udp'));
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
