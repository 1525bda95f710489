/**
 * Cristian's algorithm: asks the UTC time server (server.ts) for its time
 * several times, keeps the exchange with the smallest round trip, and
 * estimates the server's clock as Ts + RTT/2, with an error of at most
 * ±(RTT/2 − the minimum one-way time). Prints the offset of this machine's
 * clock from the server's and keeps a corrected clock; never sets the
 * system clock.
 *
 * ```sh
 * npx tsx ej10/client.ts                          # 8 probes to 127.0.0.1:10010
 * npx tsx ej10/client.ts --probes 20 --json       # the figures, for a script
 * npx tsx ej10/client.ts --watch                  # the corrected clock, ticking
 * ```
 *
 * Exits 0 with an estimate; 1 when the server never answers (after
 * `--retries` more tries of `--timeout` each, for the first probe) or
 * cannot be reached; 2 on a bad option.
 *
 * @module
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { wallClockMs, type Clock } from '../lib/clock.ts';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { udpType } from '../lib/server.ts';
import { readReply, Request, request } from './protocol.ts';

/** One answered exchange: T0 when the request left, Ts the server's time, T1 when the reply came. */
export interface Probe {
  t0: number;
  serverMs: number;
  t1: number;
}

/** What Cristian's algorithm concludes from a set of probes. */
export interface Estimate {
  /** Index (0-based) of the probe used: the one with the smallest round trip. */
  best: number;
  rttMs: number;
  /** The server's clock at T1: Ts + RTT/2. */
  estimateMs: number;
  /** estimate − T1: how far the server's clock is ahead of ours (negative: behind). */
  offsetMs: number;
  /** The estimate is within ± this of the truth: RTT/2 − min one-way time. */
  boundMs: number;
}

/**
 * Cristian's algorithm on answered probes. The server read Ts somewhere
 * between T0 + min and T1 − min (min = the least one-way time, 0 when
 * unknown), so Ts + RTT/2 is off by at most RTT/2 − min; the probe with the
 * smallest RTT gives the tightest bound.
 */
export function cristian(probes: readonly Probe[], minOneWayMs = 0): Estimate {
  if (probes.length === 0) throw new RangeError('Cannot estimate: expected at least one answered probe, received none');
  let best = 0;
  probes.forEach((p, i) => {
    if (p.t1 - p.t0 < probes[best]!.t1 - probes[best]!.t0) best = i;
  });
  const { t0, t1, serverMs } = probes[best]!;
  const rttMs = t1 - t0;
  const estimateMs = serverMs + rttMs / 2;
  return { best, rttMs, estimateMs, offsetMs: estimateMs - t1, boundMs: Math.max(rttMs / 2 - minOneWayMs, 0) };
}

/** Options of {@link probeServer}. */
export interface ProbeOptions {
  probes?: number;
  timeoutMs?: number;
  /** Tries after the first for each probe whose reply is lost. */
  retries?: number;
  clock?: Clock;
  /** Told about each answered probe and each lost try. */
  onProbe?: (probe: Probe, index: number) => void;
  onLost?: (index: number, attempt: number) => void;
}

/** Answered probes and how many tries went unanswered. */
export interface ProbeResult {
  probes: Probe[];
  lost: number;
}

/**
 * Runs `probes` exchanges one after another over one socket. A try whose
 * reply does not come within `timeoutMs` is sent again (a new id, so a late
 * reply to the old one is ignored: its round trip would be wrong). Rejects
 * when a probe gets no reply in all its tries and none before it did.
 */
export function probeServer(host: string, port: number, { probes = 8, timeoutMs = 500, retries = 3, clock = wallClockMs, onProbe, onLost }: ProbeOptions = {}): Promise<ProbeResult> {
  const where = formatAddress(host, port);
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(udpType(host));
    const answered: Probe[] = [];
    let lost = 0;
    let index = 0;
    let attempt = 0;
    let id = 0;
    let t0 = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      socket.close();
      outcome();
    };
    const next = () => {
      if (index === probes) return finish(() => resolve({ probes: answered, lost }));
      attempt = 0;
      send();
    };
    const send = () => {
      attempt += 1;
      id = randomBytes(4).readUInt32BE(0);
      const wire = Request.encode(request(id));
      t0 = clock();
      socket.send(wire, (error) => error && finish(() => reject(describeConnectError(error, where))));
      timer = setTimeout(() => {
        lost += 1;
        onLost?.(index, attempt);
        if (attempt <= retries) return send();
        if (answered.length === 0) {
          return finish(() => reject(new CliError(`no reply from ${where} after ${attempt} ${attempt === 1 ? 'try' : 'tries'} (${timeoutMs / 1000} s each): is the server running?`)));
        }
        index += 1; // this probe is lost for good; the others may do
        next();
      }, timeoutMs);
    };
    socket.on('message', (message) => {
      const t1 = clock();
      let serverMs: number;
      try {
        serverMs = Number(readReply(message, id).serverTimeUs) / 1000;
      } catch {
        return; // a late reply to an earlier try, or not ours
      }
      clearTimeout(timer);
      const probe = { t0, serverMs, t1 };
      answered.push(probe);
      onProbe?.(probe, index);
      index += 1;
      next();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const failure = error.code === 'ECONNREFUSED'
        ? new CliError(`nothing listens on ${where} (UDP; the host answered ICMP port unreachable)`, 1, { cause: error })
        : describeConnectError(error, where);
      finish(() => reject(failure));
    });
    socket.connect(port, host, next);
  });
}

const signed = (ms: number, digits = 3) => `${ms >= 0 ? '+' : '−'}${Math.abs(ms).toFixed(digits)}`;
const iso = (ms: number) => `${new Date(Math.floor(ms)).toISOString().slice(0, 23)}${String(Math.floor((ms % 1) * 1000)).padStart(3, '0')}Z`;

/** The report a person reads, one fact per line. */
export function describeEstimate(result: ProbeResult, estimate: Estimate, minOneWayMs: number): string {
  const direction = estimate.offsetMs >= 0 ? 'ahead of' : 'behind';
  const boundWhy = minOneWayMs > 0 ? `RTT/2 − ${minOneWayMs} ms minimum one-way time` : 'RTT/2; minimum one-way time unknown';
  const lost = result.lost ? ` (${result.lost} ${result.lost === 1 ? 'try' : 'tries'} lost and retried)` : '';
  return [
    `best of ${result.probes.length} probes: #${estimate.best + 1}, round trip ${estimate.rttMs.toFixed(3)} ms${lost}`,
    `server time  ${iso(estimate.estimateMs)}  (Ts + RTT/2, at the reply)`,
    `offset       ${signed(estimate.offsetMs)} ms ± ${estimate.boundMs.toFixed(3)} ms  (${boundWhy})`,
    `the server's clock is ${Math.abs(estimate.offsetMs).toFixed(3)} ms ${direction} this machine's`,
  ].join('\n');
}

const command = defineCommand({
  name: 'client.ts',
  summary: "Estimates this machine's clock offset from the UTC time server with Cristian's algorithm (never sets the clock).",
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'time server address' },
    port: { type: 'string', default: '10010', help: 'time server port' },
    probes: { type: 'string', default: '8', metavar: 'N', help: 'exchanges to make; the one with the smallest round trip is used' },
    timeout: { type: 'string', default: '0.5', metavar: 'SECONDS', help: 'how long each try waits for its reply' },
    retries: { type: 'string', default: '3', metavar: 'N', help: 'tries after the first for a probe whose reply is lost' },
    'min-one-way': { type: 'string', default: '0', metavar: 'MS', help: 'known least one-way time, to tighten the bound (0: unknown)' },
    json: { type: 'boolean', help: 'print the figures as JSON' },
    watch: { type: 'boolean', help: 'then show the corrected clock ticking, once a second, until Ctrl-C' },
    ticks: { type: 'string', metavar: 'N', help: 'with --watch: stop after N ticks' },
    verbose: { type: 'boolean', short: 'v', help: 'print every probe on stderr' },
  },
  epilog: 'Exit status: 0 estimate printed, 1 no reply / unreachable, 2 bad usage.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port, 'port', { zero: false });
  const probes = parsePositive(opts.probes, 'probes', { integer: true });
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const retries = opts.retries === '0' ? 0 : parsePositive(opts.retries, 'retries', { integer: true });
  const minOneWayMs = opts['min-one-way'] === '0' ? 0 : parsePositive(opts['min-one-way'], 'min-one-way');
  const ticks = opts.ticks === undefined ? Infinity : parsePositive(opts.ticks, 'ticks', { integer: true });
  if (opts.ticks !== undefined && !opts.watch) throw new UsageError('argument --ticks: only with --watch');
  const say = (line: string) => opts.verbose && process.stderr.write(`client: ${line}\n`);

  const result = await probeServer(host, port, {
    probes,
    timeoutMs,
    retries,
    onProbe: (p, i) => say(`probe ${i + 1}: round trip ${(p.t1 - p.t0).toFixed(3)} ms, server ${iso(p.serverMs)}`),
    onLost: (i, attempt) => say(`probe ${i + 1}: no reply within ${timeoutMs / 1000} s (try ${attempt} of ${retries + 1})`),
  });
  const estimate = cristian(result.probes, minOneWayMs);
  if (minOneWayMs > 0 && minOneWayMs > estimate.rttMs / 2) {
    process.stderr.write(`client: warning: --min-one-way ${minOneWayMs} ms is more than half the best round trip (${estimate.rttMs.toFixed(3)} ms); the bound is 0 and cannot be trusted\n`);
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ server: formatAddress(host, port), ...estimate, minOneWayMs, lost: result.lost, probes: result.probes })}\n`);
  } else {
    process.stdout.write(`${describeEstimate(result, estimate, minOneWayMs)}\n`);
  }
  if (opts.watch) await watch(estimate, ticks);
  return 0;
}

/** Prints the corrected clock on each whole second of it, `ticks` times (or until Ctrl-C). */
async function watch(estimate: Estimate, ticks: number): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let tick = 0; tick < ticks && !stop.signal.aborted; tick++) {
      const corrected = wallClockMs() + estimate.offsetMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000 - (corrected % 1000));
        stop.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
      if (stop.signal.aborted) break;
      const local = wallClockMs();
      process.stdout.write(`corrected ${iso(local + estimate.offsetMs)}  local ${iso(local)}  (± ${estimate.boundMs.toFixed(3)} ms)\n`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
