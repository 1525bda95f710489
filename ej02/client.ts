/**
 * Client of exercise 2: asks the server for the date and time in a time
 * zone over the fixed-length protocol (see server.ts) and prints it with a
 * strftime format; or, with `--daytime`, speaks plain RFC 867 to any daytime
 * server and prints its line.
 *
 * ```sh
 * npx tsx ej02/client.ts --format %c                        # Tue Nov 24 17:15:16 2026
 * npx tsx ej02/client.ts --tz Asia/Tokyo --format '%Y-%m-%d %H:%M:%S %Z'
 * npx tsx ej02/client.ts --daytime --port 13 --host time.example   # any RFC 867 server
 * ```
 *
 * Exits 0 with the time on stdout; 1 when the server answers with an error
 * status (unknown zone, …), says nothing, or cannot be reached; 2 on a bad
 * option or format. `-v` adds the server's synchronisation state on stderr.
 *
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { udpType } from '../lib/server.ts';
import { strftime } from '../lib/strftime.ts';
import { formatOffset } from '../lib/timezone.ts';
import { NEVER_SYNCHRONISED, readResponse, Request, request, type Response, Status, STATUS_TEXT, ZONE_LENGTH } from './protocol.ts';

/** Options of the exchanges below. */
export interface ExchangeOptions {
  timeoutMs?: number;
  retries?: number;
  onRetry?: (attempt: number) => void;
}

/** A response and the round trip it took. */
export interface TimeAnswer {
  response: Response;
  rttMs: number;
  tries: number;
}

/**
 * Sends `payload` in one datagram and resolves with the first reply that
 * `accept` does not throw on, retrying after `timeoutMs`; rejects with a
 * CliError after the last try, naming the last reply it refused.
 */
function udpAsk<T>(host: string, port: number, payload: Uint8Array, accept: (reply: Buffer) => T, { timeoutMs = 1000, retries = 2, onRetry }: ExchangeOptions): Promise<{ value: T; rttMs: number; tries: number }> {
  const where = formatAddress(host, port);
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(udpType(host));
    let tries = 0;
    let sentAt = 0;
    let refused: string | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      socket.close();
      outcome();
    };
    const send = () => {
      tries += 1;
      if (tries > 1) onRetry?.(tries);
      sentAt = performance.now();
      socket.send(payload, (error) => error && finish(() => reject(describeConnectError(error, where))));
      timer = setTimeout(() => {
        if (tries <= retries) return send();
        const why = refused ? `; refused a reply: ${refused}` : '';
        finish(() => reject(new CliError(`no answer from ${where} after ${tries} ${tries === 1 ? 'try' : 'tries'} (${timeoutMs / 1000} s each)${why}`)));
      }, timeoutMs);
    };
    socket.on('message', (message) => {
      try {
        const value = accept(message);
        const rttMs = performance.now() - sentAt;
        finish(() => resolve({ value, rttMs, tries }));
      } catch (error) {
        refused = error instanceof Error ? error.message : String(error);
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const failure = error.code === 'ECONNREFUSED'
        ? new CliError(`nothing listens on ${where} (UDP; the host answered ICMP port unreachable)`, 1, { cause: error })
        : describeConnectError(error, where);
      finish(() => reject(failure));
    });
    socket.connect(port, host, send);
  });
}

/** Asks the server for the time in `zone` ('' for the server's own zone). */
export async function askTime(host: string, port: number, zone: string, options: ExchangeOptions = {}): Promise<TimeAnswer> {
  const nonce = randomBytes(4).readUInt32BE(0);
  const payload = Request.encode(request(zone, nonce));
  const { value, rttMs, tries } = await udpAsk(host, port, payload, (reply) => readResponse(reply, nonce), options);
  return { response: value, rttMs, tries };
}

/** RFC 867 over UDP: any datagram in, one line out. */
export async function daytimeUdp(host: string, port: number, options: ExchangeOptions = {}): Promise<string> {
  const { value } = await udpAsk(host, port, new TextEncoder().encode('\r\n'), (reply) => new TextDecoder().decode(reply), options);
  return value;
}

/** RFC 867 over TCP: connect and read until the server closes. */
export function daytimeTcp(host: string, port: number, { timeoutMs = 1000 }: ExchangeOptions = {}): Promise<string> {
  const where = formatAddress(host, port);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new CliError(`no daytime line from ${where} within ${timeoutMs / 1000} s`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', (error: NodeJS.ErrnoException) => reject(error instanceof CliError ? error : describeConnectError(error, where)));
  });
}

/** The response as the user sees it, with `format` (strftime codes). */
export function formatAnswer(response: Response, format: string): string {
  return strftime(format, {
    ms: response.unixMs,
    offsetSeconds: response.zoneOffsetSeconds,
    zone: response.abbreviation || `UTC${formatOffset(response.zoneOffsetSeconds)}`,
  });
}

/** One line on the server's clock: `stratum 9, synchronised 3.2 s ago: offset +0.012 ms, delay 0.101 ms`. */
export function describeSync(response: Response): string {
  if (response.syncAgeMs === NEVER_SYNCHRONISED) return `stratum ${response.stratum}, never synchronised (system clock as it is)`;
  const state = response.stratum >= 16 ? 'unsynchronised, last synchronised' : 'synchronised';
  const offset = response.ntpOffsetUs / 1000;
  return `stratum ${response.stratum}, ${state} ${(response.syncAgeMs / 1000).toFixed(1)} s ago: offset ${offset >= 0 ? '+' : ''}${offset.toFixed(3)} ms, delay ${(response.ntpDelayUs / 1000).toFixed(3)} ms`;
}

const command = defineCommand({
  name: 'client.ts',
  summary: 'Asks the time-zone server for the date and time in a zone and prints it with a strftime FORMAT; --daytime speaks plain RFC 867.',
  options: {
    format: { type: 'string', help: "strftime codes, e.g. %c or '%Y-%m-%d %H:%M:%S %Z' (default: %c)" },
    host: { type: 'string', default: '127.0.0.1', help: 'server address' },
    port: { type: 'string', default: '10013', help: 'server port' },
    tz: { type: 'string', metavar: 'ZONE', help: "time zone to ask for: an IANA name or UTC±HH:MM (default: the server's)" },
    daytime: { type: 'boolean', help: 'speak plain RFC 867 (any daytime server) and print its line' },
    tcp: { type: 'boolean', help: 'with --daytime: over TCP instead of UDP' },
    timeout: { type: 'string', default: '1', metavar: 'SECONDS', help: 'how long each try waits for the answer' },
    retries: { type: 'string', default: '2', metavar: 'N', help: 'tries after the first one before giving up' },
    json: { type: 'boolean', help: 'print every field of the response as JSON' },
    verbose: { type: 'boolean', short: 'v', help: "print the server's synchronisation state on stderr" },
  },
  epilog: 'Exit status: 0 time printed, 1 error status / no answer / unreachable, 2 bad usage or format.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port, 'port', { zero: false });
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const retries = opts.retries === '0' ? 0 : parsePositive(opts.retries, 'retries', { integer: true });
  const say = (message: string) => opts.verbose && process.stderr.write(`client: ${message}\n`);
  const onRetry = (attempt: number) => say(`no answer within ${timeoutMs / 1000} s; try ${attempt} of ${retries + 1}`);

  if (opts.daytime) {
    if (opts.format !== undefined || opts.tz !== undefined || opts.json) throw new UsageError('argument --daytime: not allowed with --format, --tz or --json (a daytime server sends a line of text, not a time)');
    const line = opts.tcp ? await daytimeTcp(host, port, { timeoutMs }) : await daytimeUdp(host, port, { timeoutMs, retries, onRetry });
    process.stdout.write(`${line.replace(/\r?\n$/, '')}\n`);
    return 0;
  }
  if (opts.tcp) throw new UsageError('argument --tcp: only with --daytime (the time-zone protocol is UDP)');
  const format = opts.format ?? '%c';
  const zone = opts.tz ?? '';
  if (new TextEncoder().encode(zone).length > ZONE_LENGTH || zone.includes('\0')) {
    throw new UsageError(`argument --tz: a zone name has at most ${ZONE_LENGTH} bytes and no NUL, got '${zone.slice(0, 60)}'`);
  }
  // A bad format is a usage error, found before anything is sent.
  try {
    strftime(format, { ms: 0, offsetSeconds: 0, zone: 'UTC' });
  } catch (error) {
    throw new UsageError(`argument --format: ${(error as Error).message}`);
  }

  const { response, rttMs, tries } = await askTime(host, port, zone, { timeoutMs, retries, onRetry });
  say(`answer in ${rttMs.toFixed(3)} ms after ${tries} ${tries === 1 ? 'try' : 'tries'}; server ${describeSync(response)}`);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...response, statusText: STATUS_TEXT[response.status] ?? 'unknown', rttMs, iso: new Date(response.unixMs).toISOString() })}\n`);
    return response.status === Status.ok ? 0 : 1;
  }
  if (response.status === Status.unknownZone) throw new CliError(`the server does not know the time zone '${response.zone}' (status ${response.status}: unknown zone)`);
  if (response.status !== Status.ok) throw new CliError(`the server refused the request (status ${response.status}: ${STATUS_TEXT[response.status] ?? 'unknown status'})`);
  process.stdout.write(`${formatAnswer(response, format)}\n`);
  return 0;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
