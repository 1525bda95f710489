/**
 * Daytime server (RFC 867) over UDP and TCP, and a time-zone service with
 * fixed-length PDUs on the same UDP port, whose served time is kept in step
 * with NTP servers by an SNTP client (RFC 4330). The system clock is never
 * touched: the measured offset is added to the time this server serves.
 *
 * ```sh
 * npx tsx ej02/server.ts                                  # 127.0.0.1:10013, pool.ntp.org
 * npx tsx ej02/server.ts --tz America/Argentina/Buenos_Aires --locale es-AR
 * npx tsx ej02/server.ts --port 0 --ntp 127.0.0.1:11123 --ntp-interval 2
 * ```
 *
 * Prints `listening on 127.0.0.1:10013 (udp)` and `… (tcp)` on stdout when
 * ready, and one line per request and per NTP round on stderr.
 *
 * ## Protocol (version 1)
 *
 * Both PDUs have a fixed length; integers are unsigned big-endian unless
 * marked signed (two's complement); text is UTF-8 padded with NUL bytes.
 * A UDP datagram whose first two bytes are not "TZ" is an RFC 867 daytime
 * request and is answered with the daytime line instead.
 *
 * Request, 56 bytes (client → server):
 *
 * | offset | size | field   | value                                                   |
 * |-------:|-----:|---------|---------------------------------------------------------|
 * |      0 |    2 | magic   | 0x54 0x5A ("TZ")                                        |
 * |      2 |    1 | version | 1                                                       |
 * |      3 |    1 | kind    | 1 = request                                             |
 * |      4 |    4 | nonce   | chosen by the client, echoed in the response            |
 * |      8 |   48 | zone    | IANA name (`Europe/Madrid`) or offset (`UTC-03:00`); all NUL = the server's zone |
 *
 * Response, 104 bytes (server → client):
 *
 * | offset | size | field        | value                                                          |
 * |-------:|-----:|--------------|----------------------------------------------------------------|
 * |      0 |    2 | magic        | 0x54 0x5A ("TZ")                                               |
 * |      2 |    1 | version      | 1                                                              |
 * |      3 |    1 | kind         | 2 = response                                                   |
 * |      4 |    4 | nonce        | the request's                                                  |
 * |      8 |    1 | status       | 0 ok, 1 unknown zone, 2 malformed request, 3 unsupported version |
 * |      9 |    1 | stratum      | the server's: its NTP source's + 1; 16 = unsynchronised        |
 * |     10 |    2 | reserved     | 0                                                              |
 * |     12 |    8 | unix_ms      | the served instant, milliseconds since 1970-01-01T00:00:00Z    |
 * |     20 |    4 | zone_offset  | signed: seconds east of UTC of the zone at that instant        |
 * |     24 |    8 | ntp_offset   | signed: microseconds added to the system clock (last NTP θ)    |
 * |     32 |    4 | ntp_delay    | microseconds: round trip δ of the sample θ came from            |
 * |     36 |    4 | sync_age     | milliseconds since that sample; 0xFFFFFFFF = never synchronised |
 * |     40 |   48 | zone         | the zone's canonical name (or the request's, if unknown)        |
 * |     88 |   16 | abbreviation | what a clock there shows: `CET`, `-03`, `UTC-03:00`            |
 *
 * Errors: a request of the wrong length, of another kind or with a zone that
 * is not UTF-8 gets status 2; another version gets status 3 (the response is
 * in version 1); an unknown zone gets status 1 with the time still filled.
 * A malformed datagram shorter than 8 bytes is answered with nonce 0.
 *
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { isMain, runMain } from '../lib/main.ts';
import { isLoopback, NtpSynchroniser, parseNtpServer, STRATUM_UNSYNCHRONISED, type NtpServer, type SyncState } from '../lib/ntp.ts';
import { bindUdp, closeGracefully, listenTcp, onShutdown, readyLine, trackConnections, udpType } from '../lib/server.ts';
import { resolveZone, systemLocale, systemTimeZone, type Zone } from '../lib/timezone.ts';
import { Kind, MAGIC, NEVER_SYNCHRONISED, readRequest, Response, Status, VERSION, ZONE_LENGTH } from './protocol.ts';

/** Where a time service gets its time and region from. */
export interface TimeSource {
  /** The served time: system clock plus NTP offset, ms since the epoch. */
  now(): number;
  state(): SyncState;
}

/** A source that serves the system clock as it is, unsynchronised (`--no-ntp`). */
export const systemSource: TimeSource = {
  now: () => Date.now(),
  state: () => ({ synchronised: false, offsetMs: 0, delayMs: 0, stratum: STRATUM_UNSYNCHRONISED, sourceStratum: 0, source: undefined, ageMs: undefined }),
};

/** The region the server is told it operates in. */
export interface Region {
  zone: Zone;
  locale: string;
}

/**
 * The RFC 867 line: the served time in the server's zone, written in its
 * locale (`martes, 24 de noviembre de 2026, 17:15:16 GMT-3`), ending CRLF.
 * ICU's narrow no-break spaces become plain spaces, so the line stays ASCII
 * in English; other locales' month names travel as UTF-8.
 */
export function daytimeLine(ms: number, { zone, locale }: Region): string {
  const format = new Intl.DateTimeFormat(locale, { dateStyle: 'full', timeStyle: 'long', timeZone: zone.name.startsWith('UTC') ? offsetZone(zone, ms) : zone.name });
  return `${format.format(ms).replace(/[\u00a0\u202f]/g, ' ')}\r\n`;
}

/** Intl takes fixed offsets as `+03:00` (newer engines) or `Etc/GMT-3` (whole hours); fall back to UTC. */
function offsetZone(zone: Zone, ms: number): string {
  const seconds = zone.offsetSeconds(ms);
  if (seconds === 0) return 'UTC';
  const sign = seconds < 0 ? '-' : '+';
  const hhmm = `${String(Math.floor(Math.abs(seconds) / 3600)).padStart(2, '0')}:${String(Math.floor((Math.abs(seconds) % 3600) / 60)).padStart(2, '0')}`;
  try {
    new Intl.DateTimeFormat('en', { timeZone: `${sign}${hhmm}` });
    return `${sign}${hhmm}`;
  } catch {
    return seconds % 3600 === 0 ? `Etc/GMT${seconds < 0 ? '+' : '-'}${Math.abs(seconds) / 3600}` : 'UTC';
  }
}

const clampU32 = (value: number) => Math.min(Math.max(Math.round(value), 0), 0xffff_fffe);

/** Builds a response to a request for `zoneName` ('' = the server's zone). */
export function respond(nonce: number, zoneName: string, source: TimeSource, region: Region, status: number = Status.ok): Uint8Array {
  const unixMs = Math.floor(source.now());
  const sync = source.state();
  let zone: Zone | undefined = region.zone;
  if (zoneName !== '' && status === Status.ok) {
    try {
      zone = resolveZone(zoneName);
    } catch {
      zone = undefined; // an offset beyond ±18:00 is as unknown as a made-up name
    }
    if (zone === undefined) status = Status.unknownZone;
  }
  const known = status === Status.ok && zone !== undefined;
  return Response.encode({
    magic: MAGIC,
    version: VERSION,
    kind: Kind.response,
    nonce,
    status,
    stratum: sync.stratum,
    reserved: 0,
    unixMs,
    zoneOffsetSeconds: known ? zone!.offsetSeconds(unixMs) : 0,
    ntpOffsetUs: Math.round(sync.offsetMs * 1000),
    ntpDelayUs: clampU32(sync.delayMs * 1000),
    syncAgeMs: sync.ageMs === undefined ? NEVER_SYNCHRONISED : clampU32(sync.ageMs),
    zone: known ? zone!.name : truncateUtf8(zoneName, ZONE_LENGTH),
    abbreviation: known ? truncateUtf8(zone!.abbreviation(unixMs), 16) : '',
  });
}

function truncateUtf8(text: string, bytes: number): string {
  let out = '';
  for (const char of text) {
    if (new TextEncoder().encode(out + char).length > bytes) break;
    out += char;
  }
  return out;
}

/**
 * Answers one UDP datagram: a time-zone response for one that starts with
 * "TZ" (malformed ones included), the daytime line for anything else.
 */
export function answerDatagram(datagram: Uint8Array, source: TimeSource, region: Region): { reply: Uint8Array; what: string } {
  const incoming = readRequest(datagram);
  if (incoming.type === 'daytime') {
    return { reply: new TextEncoder().encode(daytimeLine(source.now(), region)), what: `daytime (${datagram.length}-byte datagram)` };
  }
  if (incoming.type === 'error') {
    return { reply: respond(incoming.nonce, '', source, region, incoming.status), what: `refused: ${incoming.reason}` };
  }
  const zone = incoming.request.zone;
  const reply = respond(incoming.request.nonce, zone, source, region);
  const status = reply[8] === Status.ok ? 'ok' : 'unknown zone';
  return { reply, what: `zone ${JSON.stringify(zone || region.zone.name)}: ${status}` };
}

/** How long a TCP daytime connection may stay open after the line is sent, waiting for the client to close. */
export const TCP_LINGER_MS = 2000;

/** Options of {@link startServer}. */
export interface ServerOptions {
  host: string;
  port: number;
  source: TimeSource;
  region: Region;
  log?: Logger;
}

/** A running server: its bound port and how to stop it. */
export interface RunningServer {
  port: number;
  udp: dgram.Socket;
  tcp: net.Server;
  close(): Promise<void>;
}

/** Binds the UDP service and the TCP daytime service on the same port (the UDP one picks it when `port` is 0). */
export async function startServer({ host, port, source, region, log = silent }: ServerOptions): Promise<RunningServer> {
  const udp = dgram.createSocket({ type: udpType(host), recvBufferSize: 1 << 20 });
  udp.on('message', (datagram, peer) => {
    const from = formatAddress(peer.address, peer.port);
    // The error boundary: whatever a datagram holds, the server answers the next one.
    try {
      const { reply, what } = answerDatagram(datagram, source, region);
      log(`${from} udp ${what}`);
      udp.send(reply, peer.port, peer.address, (error) => error && log(`${from} reply not sent: ${error.message}`));
    } catch (error) {
      log(`${from} datagram dropped: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  udp.on('error', (error) => log(`udp socket error: ${error.message}`));
  const bound = await bindUdp(udp, host, port);

  // RFC 867 over TCP: the line on connect, then close, whatever the client sends.
  // What it sends is read and dropped (an unread byte would keep the connection,
  // and its descriptor, from ever seeing the client's FIN), and a client that
  // never closes its side is cut off after TCP_LINGER_MS.
  const tcp = trackConnections(
    net.createServer((socket) => {
      const from = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
      socket.on('error', (error) => log(`${from} tcp error: ${error.message}`));
      socket.resume();
      const linger = setTimeout(() => socket.destroy(), TCP_LINGER_MS);
      socket.once('close', () => clearTimeout(linger));
      socket.end(daytimeLine(source.now(), region));
      log(`${from} tcp daytime`);
    }),
  );
  try {
    await listenTcp(tcp, host, bound.port);
  } catch (error) {
    udp.close();
    throw error;
  }
  return {
    port: bound.port,
    udp,
    tcp,
    close: async () => {
      await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), closeGracefully(tcp, 1000)]);
    },
  };
}

const command = defineCommand({
  name: 'server.ts',
  summary: 'Daytime (RFC 867) over UDP and TCP, plus a fixed-length time-zone protocol over UDP, with the served time kept in step with NTP.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (:: for IPv6)' },
    port: { type: 'string', default: '10013', help: 'UDP and TCP port; 0 picks a free one' },
    tz: { type: 'string', metavar: 'ZONE', help: "the server's time zone, for requests that name none and for the daytime line (default: the machine's)" },
    locale: { type: 'string', help: "locale of the daytime line, e.g. es-AR (default: the machine's)" },
    ntp: { type: 'string', multiple: true, metavar: 'HOST[:PORT]', help: 'NTP server to synchronise with; repeat for several (default: pool.ntp.org)' },
    'no-ntp': { type: 'boolean', help: 'serve the system clock as it is, unsynchronised' },
    'ntp-interval': { type: 'string', default: '64', metavar: 'SECONDS', help: 'time between NTP rounds (at least 16 unless every server is on loopback)' },
    'ntp-samples': { type: 'string', default: '4', metavar: 'N', help: 'exchanges per server per round; the lowest-delay one is kept' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log requests and NTP rounds on stderr' },
  },
  epilog: 'Prints "listening on HOST:PORT (udp)" and "(tcp)" on stdout when ready. Ctrl-C stops it. The system clock is never changed.\nExit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot bind, 2 bad usage, 130 a second Ctrl-C.',
});

/** The default NTP servers: the public pool (tests and the harness always pass loopback ones). */
export const DEFAULT_NTP = ['pool.ntp.org'];

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const zoneName = opts.tz ?? systemTimeZone();
  let zone: Zone | undefined;
  try {
    zone = resolveZone(zoneName);
  } catch (error) {
    throw new UsageError(`argument --tz: ${(error as Error).message}`);
  }
  if (!zone) throw new UsageError(`argument --tz: unknown time zone '${zoneName}' (expected an IANA name such as America/Argentina/Buenos_Aires, or UTC-03:00)`);
  const locale = opts.locale ?? systemLocale();
  try {
    new Intl.DateTimeFormat(locale);
  } catch {
    throw new UsageError(`argument --locale: '${locale}' is not a locale (expected a BCP 47 tag such as es-AR)`);
  }
  const intervalS = parsePositive(opts['ntp-interval'], 'ntp-interval');
  const samples = parsePositive(opts['ntp-samples'], 'ntp-samples', { integer: true });
  let servers: NtpServer[] = [];
  if (!opts['no-ntp']) {
    try {
      servers = (opts.ntp.length ? opts.ntp : DEFAULT_NTP).map(parseNtpServer);
    } catch (error) {
      throw new UsageError(`argument --ntp: ${(error as Error).message}`);
    }
    if (intervalS < 16 && !servers.every((s) => isLoopback(s.host))) {
      throw new UsageError(`argument --ntp-interval: public NTP servers must not be polled more often than every 16 s (got ${intervalS})`);
    }
  } else if (opts.ntp.length) {
    throw new UsageError('argument --no-ntp: not allowed with --ntp');
  }
  const log = createLogger('server', { quiet: opts.quiet });

  let source: TimeSource = systemSource;
  let sync: NtpSynchroniser | undefined;
  if (servers.length) {
    sync = new NtpSynchroniser({ servers, intervalMs: intervalS * 1000, samples, log });
    source = sync;
  }
  const region = { zone, locale };
  const server = await startServer({ host, port, source, region, log });
  console.log(readyLine(server.udp.address(), 'udp'));
  console.log(readyLine(server.tcp.address(), 'tcp'));
  log(`zone ${zone.name}, locale ${locale}, ${servers.length ? `NTP ${servers.map((s) => formatAddress(s.host, s.port)).join(', ')} every ${intervalS} s` : 'no NTP (system clock as it is)'}`);
  sync?.start();
  onShutdown(async () => {
    sync?.stop();
    await server.close();
  }, { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
