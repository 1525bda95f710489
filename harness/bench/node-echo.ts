/**
 * The smallest TCP echo server Node can run: each connection piped back into
 * itself, nothing else. The benchmark runs it beside ej01's server to show how
 * close ej01 comes to what the runtime itself allows.
 *
 * ```sh
 * npx tsx harness/bench/node-echo.ts --port 0
 * ```
 *
 * Prints `listening on 127.0.0.1:PORT (tcp)` on stdout when ready, like every
 * server in the suite, and nothing else. SIGTERM or Ctrl-C ends it at once:
 * it is a measuring stick, not a service.
 *
 * @module
 */
import net from 'node:net';
import { defineCommand, parseHost, parsePort } from '../../lib/cli.ts';
import { isMain, runMain } from '../../lib/main.ts';
import { listenTcp, readyLine } from '../../lib/server.ts';

/**
 * Creates the minimal echo server. The one addition to `s.pipe(s)` is an
 * error listener: without it a client's reset would crash the process, which
 * costs nothing per byte and so does not flatter the reference.
 */
export function createMinimalEchoServer(): net.Server {
  return net.createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
}

const command = defineCommand({
  name: 'node-echo.ts',
  summary: 'Minimal Node TCP echo server (net.createServer(s => s.pipe(s))), the reference for the benchmark.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '0', help: 'port to listen on; 0 picks a free one' },
  },
  epilog: 'Prints "listening on HOST:PORT (tcp)" on stdout when ready.',
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const server = createMinimalEchoServer();
  console.log(readyLine(await listenTcp(server, parseHost(opts.host), parsePort(opts.port)), 'tcp'));
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
