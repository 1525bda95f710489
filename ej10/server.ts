/**
 * UTC time server for Cristian's algorithm: every request gets the server's
 * clock in microseconds since 1970 (UTC). `--skew MS` shifts that clock, so
 * a client can be watched measuring and correcting for it.
 *
 * ```sh
 * npx tsx ej10/server.ts                      # 127.0.0.1:10010
 * npx tsx ej10/server.ts --skew 2500          # 2.5 s ahead of this machine
 * npx tsx ej10/server.ts --skew -1000          # 1 s behind (--skew=-1000 too)
 * ```
 *
 * Prints `listening on 127.0.0.1:10010 (udp)` when ready and one line per
 * request on stderr. The machine's clock is only read, never set.
 *
 * ## Protocol (version 1), UDP, big-endian
 *
 * Request, 16 bytes (client → server):
 *
 * | offset | size | field    | value                                  |
 * |-------:|-----:|----------|----------------------------------------|
 * |      0 |    2 | magic    | 0x43 0x52 ("CR")                       |
 * |      2 |    1 | version  | 1                                      |
 * |      3 |    1 | kind     | 1 = request                            |
 * |      4 |    4 | id       | chosen by the client, echoed           |
 * |      8 |    8 | reserved | zero (makes the request as big as the reply) |
 *
 * Reply, 16 bytes (server → client):
 *
 * | offset | size | field       | value                                           |
 * |-------:|-----:|-------------|-------------------------------------------------|
 * |      0 |    2 | magic       | 0x43 0x52 ("CR")                                |
 * |      2 |    1 | version     | 1                                               |
 * |      3 |    1 | kind        | 2 = reply                                       |
 * |      4 |    4 | id          | the request's                                   |
 * |      8 |    8 | server_time | microseconds since 1970-01-01T00:00:00Z, read just before sending |
 *
 * A datagram that is not exactly a request is logged and dropped (there is
 * no error reply: the client's timeout covers it).
 *
 * @module
 */
import dgram from 'node:dgram';
import { wallClockMs, type Clock } from '../lib/clock.ts';
import { defineCommand, formatAddress, parseHost, parsePort, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { isMain, runMain } from '../lib/main.ts';
import { bindUdp, onShutdown, readyLine, udpType } from '../lib/server.ts';
import { Kind, MAGIC, msToUs, readRequest, Reply, VERSION } from './protocol.ts';

/** A clock `skewMs` ahead of `base` (behind when negative). */
export function skewedClock(skewMs: number, base: Clock = wallClockMs): Clock {
  return () => base() + skewMs;
}

/** The reply to one datagram, or a reason to drop it. Never throws. */
export function answer(datagram: Uint8Array, clock: Clock): { reply: Uint8Array } | { dropped: string } {
  let id: number;
  try {
    id = readRequest(datagram).id;
  } catch (error) {
    return { dropped: error instanceof Error ? error.message : String(error) };
  }
  return { reply: Reply.encode({ magic: MAGIC, version: VERSION, kind: Kind.reply, id, serverTimeUs: msToUs(clock()) }) };
}

/** Creates (but does not bind) the time server's socket. */
export function createTimeServer(host: string, clock: Clock, { log = silent }: { log?: Logger } = {}): dgram.Socket {
  const socket = dgram.createSocket({ type: udpType(host), recvBufferSize: 1 << 20 });
  socket.on('message', (datagram, peer) => {
    const from = formatAddress(peer.address, peer.port);
    const outcome = answer(datagram, clock);
    if ('dropped' in outcome) return log(`${from} dropped: ${outcome.dropped}`);
    socket.send(outcome.reply, peer.port, peer.address, (error) => error && log(`${from} reply not sent: ${error.message}`));
    log(`${from} time`);
  });
  socket.on('error', (error) => log(`socket error: ${error.message}`));
  return socket;
}

/** Reads `--skew`: milliseconds, possibly negative and fractional. */
export function parseSkew(text: string): number {
  if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(text) || Math.abs(Number(text)) > 1e12) {
    throw new UsageError(`argument --skew: expected milliseconds such as 2500 or -1000.5, got '${text}'`);
  }
  return Number(text);
}

const command = defineCommand({
  name: 'server.ts',
  summary: "UTC time server for Cristian's algorithm: answers each request with its clock in microseconds.",
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (:: for IPv6)' },
    port: { type: 'string', default: '10010', help: 'UDP port; 0 picks a free one' },
    skew: { type: 'string', default: '0', metavar: 'MS', help: 'serve a clock this many milliseconds ahead (negative: behind, e.g. --skew -1000)' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log requests on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (udp)" on stdout when ready. Ctrl-C stops it. The system clock is never changed.
Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot bind, 2 bad usage, 130 a second Ctrl-C.`,
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const skewMs = parseSkew(opts.skew);
  const log = createLogger('server', { quiet: opts.quiet });
  const socket = createTimeServer(host, skewedClock(skewMs), { log });
  console.log(readyLine(await bindUdp(socket, host, port), 'udp'));
  if (skewMs !== 0) log(`serving a clock ${skewMs > 0 ? 'ahead' : 'behind'} by ${Math.abs(skewMs)} ms`);
  onShutdown(() => new Promise<void>((resolve) => socket.close(() => resolve())), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
