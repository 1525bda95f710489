/**
 * Round-trip delay (RFC 2681) to a list of hosts, over UDP and TCP, all hosts
 * probed concurrently at the same interval for a number of seconds.
 *
 * ```sh
 * npx tsx ej04/rtt.ts --udp                      # hosts from IPsUDP.txt, 10 s, one probe a second
 * npx tsx ej04/rtt.ts --tcp --segundos 5         # hosts from IpsTCP.txt: connect (handshake) time
 * npx tsx ej04/rtt.ts --udp --tcp --hosts "127.0.0.1:7007;localhost:7007" --intervalo 0.2
 * npx tsx ej04/rtt.ts --udp --plot rtt.svg --json
 * ```
 *
 * UDP: each probe is a 16-byte datagram (`RTT4`, a session number, a sequence
 * number, padding) sent to an echo service (RFC 862, port 7 by default, e.g.
 * ej01's udp-server); its reply is matched by sequence number. A probe with no
 * reply within `--timeout` is lost (its delay is undefined); a reply after
 * that is counted as late, never as a new answer, and a second reply as a
 * duplicate. TCP: the time of the three-way handshake (connect() until the
 * connection is open), one new connection per probe; a refused or
 * unreachable connection is reported per probe. `--tcp-echo` instead times a
 * 16-byte message's round trip over one open connection to an echo server.
 *
 * Prints, per protocol and host, the assignment's block
 *
 * ```text
 * *****
 * Estadísticas IP: 127.0.0.1:7007
 * Paquetes: enviados=10, Recibido=10, Perdido=0
 * Promedio=0 ms
 * RTT: min=0.101 ms, mediana=0.142 ms, p95=0.312 ms, max=0.312 ms, mdev=0.041 ms
 * *****
 * ```
 *
 * then, where there were any, late and duplicated replies and errors. `--json`
 * prints the same as JSON; `-v` logs each probe on stderr as it ends;
 * `--plot FILE.svg` draws RTT over time per host.
 *
 * @module
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { accessSync, constants as fsConstants, existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit, { type LimitFunction } from 'p-limit';
import { defineCommand, parsePositive, parsePort, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { SIGNAL_ECHO_MS } from '../lib/server.ts';
import { HostListError, parseHostList, type HostTarget } from './hosts.ts';
import { renderSvg } from './plot.ts';
import { type RttStats, summarize } from './stats.ts';

export { parseHostList, type HostTarget } from './hosts.ts';
export { summarize, type RttStats } from './stats.ts';

/** How a host is probed. */
export type Method = 'udp' | 'tcp' | 'tcp-echo';

/** One probe: when it was sent and how it ended. */
export interface ProbeResult {
  seq: number;
  /** Send time, ms since the measurement started. */
  t: number;
  /** Round-trip delay in ms; undefined when lost (RFC 2681: undefined). */
  rtt?: number;
  /** Why it was lost: `timeout`, `refused`, `unreachable`, … */
  error?: string;
}

/** Everything measured for one host with one method. */
export interface HostResult {
  method: Method;
  target: HostTarget;
  probes: ProbeResult[];
  /** UDP replies that came after their probe's timeout. */
  late: number;
  /** UDP replies to a probe already answered. */
  duplicates: number;
  stats: RttStats;
}

/** Options of {@link measure}. */
export interface MeasureOptions {
  seconds: number;
  intervalMs: number;
  timeoutMs: number;
  /** Bounds the probes (sockets) in flight over all hosts. */
  limit?: LimitFunction;
  /** Told of each probe as it ends. */
  onProbe?: (method: Method, target: HostTarget, probe: ProbeResult) => void;
  /**
   * Stops the measurement (Ctrl-C): no probe is sent after it, the ones in
   * flight end at once and are left out of the statistics, and each host's
   * result holds the probes that had ended.
   */
  signal?: AbortSignal;
}

/** The error of a probe cut short by {@link MeasureOptions.signal}; such probes are not counted. */
const INTERRUPTED = 'interrupted';

const MAGIC = 0x52545434; // 'RTT4'
/** Size of a UDP or tcp-echo probe: magic, session, sequence, padding. */
export const PROBE_SIZE = 16;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

/** Calls `stop` when `signal` aborts (at once if it has); returns the function that forgets it. */
function onAbort(signal: AbortSignal | undefined, stop: () => void): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    queueMicrotask(stop);
    return () => {};
  }
  signal.addEventListener('abort', stop, { once: true });
  return () => signal.removeEventListener('abort', stop);
}

/** The number of probes `seconds` at one per `intervalMs` make (at least one). */
export function probeCount(seconds: number, intervalMs: number): number {
  return Math.max(1, Math.floor((seconds * 1000) / intervalMs + 1e-9));
}

/** Encodes probe `seq` of `session`. */
export function encodeProbe(session: number, seq: number): Buffer {
  const buf = Buffer.alloc(PROBE_SIZE);
  buf.writeUInt32BE(MAGIC, 0);
  buf.writeUInt32BE(session >>> 0, 4);
  buf.writeUInt32BE(seq >>> 0, 8);
  return buf;
}

/** Reads a probe's session and sequence, or undefined for anything that is not one of ours. */
export function decodeProbe(buf: Uint8Array): { session: number; seq: number } | undefined {
  if (buf.length !== PROBE_SIZE) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(0) !== MAGIC) return undefined;
  return { session: view.getUint32(4), seq: view.getUint32(8) };
}

function errorWord(error: NodeJS.ErrnoException): string {
  const words: Record<string, string> = {
    ECONNREFUSED: 'refused',
    EHOSTUNREACH: 'unreachable',
    ENETUNREACH: 'unreachable',
    ETIMEDOUT: 'timeout',
    ECONNRESET: 'reset',
    ENOTFOUND: 'unresolved',
    EAI_AGAIN: 'unresolved',
  };
  return words[error.code ?? ''] ?? (error.code ?? error.message).toLowerCase();
}

/** Runs `probe(seq, t)` on the schedule: probe k at start + k × interval. */
async function schedule(options: MeasureOptions, probe: (seq: number, t: number) => Promise<ProbeResult>): Promise<ProbeResult[]> {
  const limit = options.limit ?? pLimit(64);
  const count = probeCount(options.seconds, options.intervalMs);
  const start = performance.now();
  const pending: Promise<ProbeResult>[] = [];
  for (let seq = 0; seq < count; seq++) {
    await sleep(start + seq * options.intervalMs - performance.now(), options.signal);
    if (options.signal?.aborted) break;
    pending.push(limit(() => probe(seq, performance.now() - start)));
  }
  return Promise.all(pending);
}

function finish(method: Method, target: HostTarget, all: ProbeResult[], late = 0, duplicates = 0): HostResult {
  const probes = all.filter((p) => p.error !== INTERRUPTED);
  const rtts = probes.flatMap((p) => (p.rtt === undefined ? [] : [p.rtt]));
  return { method, target, probes, late, duplicates, stats: summarize(rtts, probes.length) };
}

/** Resolves a host once, so that every probe measures the network, not the resolver. */
async function resolve(host: string): Promise<{ address: string; family: 4 | 6 } | undefined> {
  if (net.isIP(host)) return { address: host, family: net.isIP(host) as 4 | 6 };
  try {
    const { address, family } = await lookup(host);
    return { address, family: family === 6 ? 6 : 4 };
  } catch {
    return undefined;
  }
}

/** Every probe lost for the same reason (a host that does not resolve). */
async function allLost(options: MeasureOptions, method: Method, target: HostTarget, error: string): Promise<HostResult> {
  const probes = await schedule(options, async (seq, t) => {
    const probe = { seq, t, error };
    options.onProbe?.(method, target, probe);
    return probe;
  });
  return finish(method, target, probes);
}

/**
 * Measures UDP round-trip delay to an echo service at `target`: one socket,
 * sequence-numbered probes, replies matched by sequence.
 */
export async function measureUdp(target: HostTarget, options: MeasureOptions): Promise<HostResult> {
  const resolved = await resolve(target.host);
  if (!resolved) return allLost(options, 'udp', target, 'unresolved');
  const socket = dgram.createSocket(resolved.family === 6 ? 'udp6' : 'udp4');
  const session = Math.floor(Math.random() * 2 ** 32);
  const waiting = new Map<number, { sentAt: number; done: (rtt: number | undefined, error?: string) => void }>();
  const answered = new Set<number>();
  const expired = new Set<number>();
  let late = 0;
  let duplicates = 0;
  // Connected (below), the socket is told of an ICMP port unreachable: every
  // probe waiting is refused at once instead of waiting out its timeout.
  socket.on('error', (error: NodeJS.ErrnoException) => {
    const word = errorWord(error);
    for (const [seq, entry] of waiting) {
      waiting.delete(seq);
      entry.done(undefined, word);
    }
  });
  socket.on('message', (message, from) => {
    const now = performance.now();
    const probe = decodeProbe(message);
    if (!probe || probe.session !== session || from.port !== target.port) return;
    const entry = waiting.get(probe.seq);
    if (entry) {
      waiting.delete(probe.seq);
      answered.add(probe.seq);
      entry.done(now - entry.sentAt);
    } else if (answered.has(probe.seq)) {
      duplicates++;
    } else if (expired.has(probe.seq)) {
      late++;
    }
  });
  await new Promise<void>((ok) => socket.bind(0, ok));
  const connectError = await new Promise<NodeJS.ErrnoException | undefined>((ok) => {
    const onError = (error: NodeJS.ErrnoException) => ok(error);
    socket.once('error', onError);
    socket.connect(target.port, resolved.address, () => {
      socket.off('error', onError);
      ok(undefined);
    });
  });
  if (connectError) {
    socket.close();
    return allLost(options, 'udp', target, errorWord(connectError));
  }
  const forget = onAbort(options.signal, () => {
    for (const [seq, entry] of waiting) {
      waiting.delete(seq);
      entry.done(undefined, INTERRUPTED);
    }
  });
  try {
    const probes = await schedule(options, (seq, t) =>
      new Promise<ProbeResult>((done) => {
        const timer = setTimeout(() => {
          waiting.delete(seq);
          expired.add(seq);
          end(undefined, 'timeout');
        }, options.timeoutMs);
        const end = (rtt: number | undefined, error?: string) => {
          clearTimeout(timer);
          const probe: ProbeResult = rtt === undefined ? { seq, t, error: error ?? 'timeout' } : { seq, t, rtt };
          options.onProbe?.('udp', target, probe);
          done(probe);
        };
        waiting.set(seq, { sentAt: performance.now(), done: end });
        socket.send(encodeProbe(session, seq), (error) => {
          if (error && waiting.delete(seq)) end(undefined, errorWord(error));
        });
      }),
    );
    // A short grace for replies still on their way, so that they count as late.
    await sleep(Math.min(500, options.timeoutMs), options.signal);
    return finish('udp', target, probes, late, duplicates);
  } finally {
    forget();
    socket.close();
  }
}

/**
 * Measures TCP connect time to `target`: one new connection per probe, timed
 * from connect() to the open connection (SYN → SYN-ACK, and the ACK sent),
 * closed at once.
 */
export async function measureTcp(target: HostTarget, options: MeasureOptions): Promise<HostResult> {
  const resolved = await resolve(target.host);
  if (!resolved) return allLost(options, 'tcp', target, 'unresolved');
  const probes = await schedule(options, (seq, t) =>
    new Promise<ProbeResult>((done) => {
      const started = performance.now();
      const socket = net.connect({ host: resolved.address, port: target.port });
      let ended = false;
      const end = (probe: ProbeResult) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        forget();
        socket.destroy();
        if (probe.error !== INTERRUPTED) options.onProbe?.('tcp', target, probe);
        done(probe);
      };
      const timer = setTimeout(() => end({ seq, t, error: 'timeout' }), options.timeoutMs);
      const forget = onAbort(options.signal, () => end({ seq, t, error: INTERRUPTED }));
      socket.once('connect', () => end({ seq, t, rtt: performance.now() - started }));
      socket.once('error', (error: NodeJS.ErrnoException) => end({ seq, t, error: errorWord(error) }));
    }),
  );
  return finish('tcp', target, probes);
}

/**
 * Measures the round trip of a 16-byte message over one open TCP connection
 * to an echo server (reconnecting when it breaks).
 */
export async function measureTcpEcho(target: HostTarget, options: MeasureOptions): Promise<HostResult> {
  const resolved = await resolve(target.host);
  if (!resolved) return allLost(options, 'tcp-echo', target, 'unresolved');
  const session = Math.floor(Math.random() * 2 ** 32);
  const waiting = new Map<number, { sentAt: number; done: (rtt: number | undefined, error?: string) => void }>();
  let socket: net.Socket | undefined;
  let connecting: Promise<net.Socket> | undefined;
  const connect = (): Promise<net.Socket> => {
    if (socket && !socket.destroyed) return Promise.resolve(socket);
    connecting ??= new Promise<net.Socket>((ok, fail) => {
      const s = net.connect({ host: resolved.address, port: target.port });
      const timer = setTimeout(() => s.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })), options.timeoutMs);
      let buffered = Buffer.alloc(0);
      s.on('data', (chunk: Buffer) => {
        const now = performance.now();
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= PROBE_SIZE) {
          const probe = decodeProbe(buffered.subarray(0, PROBE_SIZE));
          buffered = buffered.subarray(PROBE_SIZE);
          const entry = probe && probe.session === session ? waiting.get(probe.seq) : undefined;
          if (entry && probe) {
            waiting.delete(probe.seq);
            entry.done(now - entry.sentAt);
          }
        }
      });
      s.once('connect', () => {
        clearTimeout(timer);
        socket = s;
        connecting = undefined;
        ok(s);
      });
      s.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        connecting = undefined;
        for (const [seq, entry] of waiting) {
          waiting.delete(seq);
          entry.done(undefined, errorWord(error));
        }
        fail(error);
      });
      s.on('close', () => {
        if (socket === s) socket = undefined;
      });
    });
    return connecting;
  };
  const forget = onAbort(options.signal, () => {
    for (const [seq, entry] of waiting) {
      waiting.delete(seq);
      entry.done(undefined, INTERRUPTED);
    }
    socket?.destroy();
  });
  try {
    const probes = await schedule(options, (seq, t) =>
      new Promise<ProbeResult>((done) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        let ended = false;
        const end = (rtt: number | undefined, error?: string) => {
          if (ended) return;
          ended = true;
          clearTimeout(timer);
          const probe: ProbeResult = rtt === undefined ? { seq, t, error: error ?? 'timeout' } : { seq, t, rtt };
          if (error !== INTERRUPTED) options.onProbe?.('tcp-echo', target, probe);
          done(probe);
        };
        if (options.signal?.aborted) return end(undefined, INTERRUPTED);
        connect().then(
          (s) => {
            timer = setTimeout(() => {
              if (waiting.delete(seq)) end(undefined, 'timeout');
            }, options.timeoutMs);
            waiting.set(seq, { sentAt: performance.now(), done: end });
            s.write(encodeProbe(session, seq));
          },
          (error: NodeJS.ErrnoException) => end(undefined, errorWord(error)),
        );
      }),
    );
    return finish('tcp-echo', target, probes);
  } finally {
    forget();
    socket?.destroy();
  }
}

/** Measures every host with every method at once, bounded by `options.limit`. */
export async function measure(targets: { method: Method; target: HostTarget }[], options: MeasureOptions): Promise<HostResult[]> {
  const run = { udp: measureUdp, tcp: measureTcp, 'tcp-echo': measureTcpEcho };
  return Promise.all(targets.map(({ method, target }) => run[method](target, options)));
}

const ms = (value: number | undefined, digits = 3) => (value === undefined ? '-' : `${value.toFixed(digits)} ms`);

/** The assignment's block for one host, plus the spread and what went wrong. */
export function formatBlock(result: HostResult): string {
  const { stats } = result;
  const lines = [
    '*****',
    `Estadísticas IP: ${result.target.label}`,
    `Paquetes: enviados=${stats.sent}, Recibido=${stats.received}, Perdido=${stats.lost}`,
    // RFC 2681: with no reply the delay is undefined, so is its average.
    stats.avg === undefined ? 'Promedio=indefinido (ninguna respuesta)' : `Promedio=${Math.round(stats.avg)} ms`,
    `RTT: min=${ms(stats.min)}, mediana=${ms(stats.median)}, p95=${ms(stats.p95)}, max=${ms(stats.max)}, mdev=${ms(stats.mdev)}`,
  ];
  if (result.late || result.duplicates) lines.push(`Tardíos=${result.late}, Duplicados=${result.duplicates}`);
  const errors = new Map<string, number>();
  for (const p of result.probes) if (p.error) errors.set(p.error, (errors.get(p.error) ?? 0) + 1);
  if (errors.size) lines.push(`Errores: ${[...errors].map(([e, n]) => `${e}=${n}`).join(', ')}`);
  lines.push('*****');
  return lines.join('\n');
}

const TITLES: Record<Method, string> = { udp: 'UDP', tcp: 'TCP', 'tcp-echo': 'TCP (eco)' };

/** The whole report: per method, a title line and each host's block. */
export function formatReport(results: readonly HostResult[]): string {
  const out: string[] = [];
  for (const method of ['udp', 'tcp', 'tcp-echo'] as const) {
    const mine = results.filter((r) => r.method === method);
    if (mine.length === 0) continue;
    out.push(TITLES[method], ...mine.map(formatBlock));
  }
  return `${out.join('\n')}\n`;
}

/** The report as JSON-ready data. */
export function toJson(results: readonly HostResult[], options: { seconds: number; intervalMs: number; timeoutMs: number }): unknown {
  return {
    seconds: options.seconds,
    intervalMs: options.intervalMs,
    timeoutMs: options.timeoutMs,
    results: results.map((r) => ({
      method: r.method,
      host: r.target.label,
      address: r.target.host,
      port: r.target.port,
      ...r.stats,
      late: r.late,
      duplicates: r.duplicates,
      probes: r.probes.map((p) => ({ seq: p.seq, t: Number((p.t / 1000).toFixed(4)), rtt: p.rtt ?? null, ...(p.error ? { error: p.error } : {}) })),
    })),
  };
}

/** Reads a host list, from the working folder or else from beside this script (the shipped examples). */
async function readHostFile(file: string, defaultPort: number): Promise<HostTarget[]> {
  const beside = path.join(path.dirname(fileURLToPath(import.meta.url)), file);
  const chosen = existsSync(file) || path.isAbsolute(file) ? file : existsSync(beside) ? beside : file;
  let text: string;
  try {
    text = await readFile(chosen, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read the host list ${chosen}: ${(error as Error).message}`, 2);
  }
  const targets = parseHostList(text, { source: chosen, defaultPort });
  if (targets.length === 0) throw new CliError(`${chosen}: no hosts in it (expected host or host:port entries separated by ';')`, 2);
  return targets;
}

const command = defineCommand({
  name: 'rtt.ts',
  summary: 'Measures round-trip delay (RFC 2681) to a list of hosts over UDP (echo) and TCP (connect), all hosts at the same interval.',
  options: {
    segundos: { type: 'string', default: '10', help: 'how long to measure, seconds' },
    udp: { type: 'boolean', help: 'probe the hosts of IPsUDP.txt over UDP (an echo service)' },
    tcp: { type: 'boolean', help: 'probe the hosts of IpsTCP.txt over TCP (connect time)' },
    'tcp-echo': { type: 'boolean', help: 'with --tcp: time a message over one open connection to an echo server instead' },
    hosts: { type: 'string', metavar: 'LIST', help: '";"-separated hosts (host or host:port) instead of the files' },
    intervalo: { type: 'string', default: '1', help: 'seconds between probes to each host' },
    timeout: { type: 'string', default: '1', help: 'seconds after which a probe is lost' },
    'archivo-udp': { type: 'string', default: 'IPsUDP.txt', metavar: 'FILE', help: 'UDP host list' },
    'archivo-tcp': { type: 'string', default: 'IpsTCP.txt', metavar: 'FILE', help: 'TCP host list' },
    'puerto-udp': { type: 'string', default: '7', metavar: 'PORT', help: 'port of hosts given without one, UDP (echo)' },
    'puerto-tcp': { type: 'string', default: '80', metavar: 'PORT', help: 'port of hosts given without one, TCP (7 with --tcp-echo)' },
    concurrencia: { type: 'string', default: '64', metavar: 'N', help: 'most probes (sockets) in flight at once' },
    json: { type: 'boolean', help: 'print the results as JSON' },
    plot: { type: 'string', metavar: 'FILE.svg', help: 'draw RTT over time per host into an SVG file' },
    verbose: { type: 'boolean', short: 'v', help: 'log every probe on stderr as it ends' },
  },
  epilog: `Host lists are read from the working folder, or else from beside this script.
Prints a line per round on stderr while it measures. Ctrl-C stops it and prints the statistics so far.
Exit status: 0 every host answered at least once (losses or not), 1 a host never answered (as fping)
or a failure, 2 a bad argument, host list or --plot path.`,
});

/**
 * Checks, before anything is measured, that the `--plot` file can be
 * written: its folder exists and is writable, and it is not a folder.
 */
export function checkPlotPath(file: string): void {
  const folder = path.dirname(path.resolve(file));
  const fail = (why: string) => {
    throw new CliError(`cannot write the plot ${file}: ${why}`, 2);
  };
  let info;
  try {
    info = statSync(folder);
  } catch {
    return fail(`the folder ${folder} does not exist (create it, or choose another --plot)`);
  }
  if (!info.isDirectory()) fail(`${folder} is not a folder`);
  try {
    accessSync(folder, fsConstants.W_OK);
  } catch {
    fail(`no permission to write in the folder ${folder}`);
  }
  if (existsSync(file) && statSync(file).isDirectory()) fail('it is a folder (give a file name ending in .svg)');
}

/**
 * Prints "ronda K/N" on stderr once every host has ended its probe K (as
 * probes end in order per host, a round is complete when its slowest host's is).
 */
function roundReporter(hosts: number, rounds: number, write: (line: string) => void) {
  const ended = new Map<number, { n: number; answered: number }>();
  let next = 0;
  return (probe: ProbeResult) => {
    const round = ended.get(probe.seq) ?? { n: 0, answered: 0 };
    round.n++;
    if (probe.rtt !== undefined) round.answered++;
    ended.set(probe.seq, round);
    for (let r = ended.get(next); r !== undefined && r.n === hosts; r = ended.get(next)) {
      write(`rtt: ronda ${next + 1}/${rounds}: ${r.answered} de ${hosts} ${hosts === 1 ? 'host respondió' : 'hosts respondieron'}`);
      ended.delete(next);
      next++;
    }
  };
}

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  if (!opts.udp && !opts.tcp) throw new UsageError('nothing to measure: give --udp, --tcp or both');
  if (opts['tcp-echo'] && !opts.tcp) throw new UsageError('argument --tcp-echo: needs --tcp');
  const seconds = parsePositive(opts.segundos, 'segundos');
  const intervalMs = parsePositive(opts.intervalo, 'intervalo') * 1000;
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const concurrency = parsePositive(opts.concurrencia, 'concurrencia', { integer: true });
  const udpPort = parsePort(opts['puerto-udp'], 'puerto-udp', { zero: false });
  const tcpPort = opts['tcp-echo'] && opts['puerto-tcp'] === '80' ? 7 : parsePort(opts['puerto-tcp'], 'puerto-tcp', { zero: false });
  if (opts.plot !== undefined && !opts.plot.endsWith('.svg')) throw new UsageError(`argument --plot: expected a file name ending in .svg, got '${opts.plot}'`);
  if (opts.plot !== undefined) checkPlotPath(opts.plot);

  const jobs: { method: Method; target: HostTarget }[] = [];
  try {
    const list = (file: string, port: number) =>
      opts.hosts !== undefined ? Promise.resolve(parseHostList(opts.hosts, { source: '--hosts', defaultPort: port })) : readHostFile(file, port);
    if (opts.udp) for (const target of await list(opts['archivo-udp'], udpPort)) jobs.push({ method: 'udp', target });
    if (opts.tcp) for (const target of await list(opts['archivo-tcp'], tcpPort)) jobs.push({ method: opts['tcp-echo'] ? 'tcp-echo' : 'tcp', target });
  } catch (error) {
    if (error instanceof HostListError) throw new CliError(error.message, 2);
    throw error;
  }
  if (jobs.length === 0) throw new UsageError('argument --hosts: no hosts in it');

  const log: Logger = opts.verbose ? createLogger('rtt') : silent;
  const progress = roundReporter(jobs.length, probeCount(seconds, intervalMs), (line) => process.stderr.write(`${line}\n`));
  // Ctrl-C: stop probing and report what was measured, as ping does. A
  // second Ctrl-C (not the echo tsx relays within SIGNAL_ECHO_MS) exits at once.
  const stop = new AbortController();
  let interruptedAt = 0;
  const onSigint = () => {
    if (stop.signal.aborted) {
      if (performance.now() - interruptedAt < SIGNAL_ECHO_MS) return;
      process.exit(130);
    }
    interruptedAt = performance.now();
    process.stderr.write('rtt: interrupted: the statistics so far\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  const results = await measure(jobs, {
    seconds,
    intervalMs,
    timeoutMs,
    limit: pLimit(concurrency),
    signal: stop.signal,
    onProbe: (method, target, p) => {
      log(`${method} ${target.label} seq=${p.seq} ${p.rtt === undefined ? `lost (${p.error ?? 'timeout'})` : `rtt=${p.rtt.toFixed(3)} ms`}`);
      progress(p);
    },
  });
  process.off('SIGINT', onSigint);

  if (opts.plot !== undefined) {
    const series = results.map((r) => ({ label: `${TITLES[r.method]} ${r.target.label}`, points: r.probes.map((p) => ({ t: p.t / 1000, rtt: p.rtt })) }));
    try {
      await writeFile(opts.plot, renderSvg(series, { title: `RTT over time (${seconds} s, one probe every ${intervalMs / 1000} s)` }));
    } catch (error) {
      throw new CliError(`cannot write the plot ${opts.plot}: ${(error as Error).message}`);
    }
  }
  process.stdout.write(opts.json ? `${JSON.stringify(toJson(results, { seconds, intervalMs, timeoutMs }), null, 2)}\n` : formatReport(results));
  const silentHosts = results.filter((r) => r.stats.sent > 0 && r.stats.received === 0);
  for (const r of silentHosts) {
    const why = [...new Set(r.probes.flatMap((p) => (p.error ? [p.error] : [])))].join(', ');
    process.stderr.write(`rtt: ${TITLES[r.method]} ${r.target.label} never answered (${r.stats.sent} probes: ${why})\n`);
  }
  return silentHosts.length > 0 ? 1 : 0;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
