/**
 * Benchmark of ej01's TCP echo server, under Node and under Deno, against two
 * references: the smallest echo server Node can run (`bench/node-echo.ts`,
 * the runtime's own limit) and socat (a C program forking per connection).
 *
 * ```sh
 * npm run bench                                # 3 runs, 3 s per measurement: about 4 minutes
 * npm run bench -- --seconds 1 --runs 1        # a quick look
 * npm run bench -- --json > bench.json         # the same figures as JSON
 * ```
 *
 * Each run starts every server fresh on a free port of 127.0.0.1 and
 * measures it with a load generator in a separate process (`bench/load.ts`):
 * echoed MiB/s with 1 and with 100 connections writing 64 KiB chunks, and
 * round trips of a 64-byte message with 1 and 100 connections. Meanwhile it
 * samples the server's memory from `/proc` (`bench/memory.ts`). The machine
 * is shared and noisy, so each figure is the median of the runs and ej01 is
 * shown as a ratio to each reference measured in the same run; the order of
 * the servers rotates from run to run so that none always goes first.
 *
 * Progress goes to stderr, the table (or `--json`) to stdout. Ctrl-C stops
 * every process it started; a second Ctrl-C kills them at once.
 *
 * @module
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand, parsePositive, UsageError } from '../lib/cli.ts';
import { formatEj11Report, renderEj11Svg, runEj11Bench } from './bench/ej11.ts';
import { formatHttpReport, runHttpBenchmark } from './bench/http.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { isMain, runMain } from '../lib/main.ts';
import type { LoadResult } from './bench/load.ts';
import { type GroupMemory, GroupMemoryMonitor } from './bench/memory.ts';
import { formatFigure, formatReport, type Machine, type RatioSpec, type Report, type RowSpec, summarize } from './bench/report.ts';
import { median } from './bench/stats.ts';
import { describeExit, freePort, Supervisor, waitReady } from './proc.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const DENO = join(ROOT, 'node_modules/.bin/deno');
const SOCAT = '/usr/bin/socat';
const HOST = '127.0.0.1';

/** A server under test: how to start it on a given port. */
export interface ServerSpec {
  id: string;
  label: string;
  /** The command line, split into words, for `port` (a number, or `PORT` in the report). */
  command: (port: string) => string[];
  env?: Record<string, string>;
}

/** The servers compared, ej01 under Node first: the ratio columns divide its figures. */
export const SERVERS: readonly ServerSpec[] = [
  {
    id: 'ej01-node',
    label: 'ej01 (node)',
    command: (port) => [TSX, 'ej01/tcp-server.ts', '--quiet', '--host', HOST, '--port', port],
  },
  {
    id: 'ej01-deno',
    label: 'ej01 (deno)',
    command: (port) => [DENO, 'run', '-A', 'ej01/tcp-server.ts', '--quiet', '--host', HOST, '--port', port],
    // Deno would otherwise look for a newer release on the network.
    env: { DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  },
  {
    id: 'node-min',
    label: 'node-min',
    command: (port) => [TSX, 'harness/bench/node-echo.ts', '--host', HOST, '--port', port],
  },
  {
    id: 'socat',
    label: 'socat',
    // socat prints no ready line; waitReady sees the port bound in /proc/net.
    command: (port) => [SOCAT, `TCP-LISTEN:${port},fork,reuseaddr,bind=${HOST}`, 'PIPE'],
  },
];

/** The ratio columns: ej01 under Node over each reference. */
export const RATIOS: readonly RatioSpec[] = [
  { name: 'ej01/node-min', numerator: 'ej01-node', denominator: 'node-min' },
  { name: 'ej01/socat', numerator: 'ej01-node', denominator: 'socat' },
];

/** One run of the load generator. */
export interface LoadSpec {
  mode: 'throughput' | 'rtt';
  connections: number;
}

/** The load runs each server gets, in this order, on each run. */
export const LOADS: readonly LoadSpec[] = [
  { mode: 'throughput', connections: 1 },
  { mode: 'throughput', connections: 100 },
  { mode: 'rtt', connections: 1 },
  { mode: 'rtt', connections: 100 },
];

/** The rows of the table; each load result or memory report fills some of them. */
export const ROWS: readonly RowSpec[] = [
  { id: 'throughput-1', label: 'throughput, 1 client', unit: 'MiB/s', better: 'higher' },
  { id: 'throughput-100', label: 'throughput, 100 clients', unit: 'MiB/s', better: 'higher' },
  { id: 'rtt-rate-1', label: 'round trips, 1 client', unit: '/s', better: 'higher' },
  { id: 'rtt-rate-100', label: 'round trips, 100 clients', unit: '/s', better: 'higher' },
  { id: 'rtt-median-1', label: 'median RTT, 1 client', unit: 'µs', better: 'lower' },
  { id: 'rtt-median-100', label: 'median RTT, 100 clients', unit: 'µs', better: 'lower' },
  { id: 'memory-rss', label: 'peak memory, RSS sum', unit: 'MiB', better: 'lower' },
  { id: 'memory-pss', label: 'peak memory, PSS sum', unit: 'MiB', better: 'lower' },
];

const WARMUP_SECONDS = 0.5;
const CHUNK_BYTES = 64 * 1024;
const WINDOW_BYTES = 1024 * 1024;
const MESSAGE_BYTES = 64;
/** Deno compiles the TypeScript on its first run; tsx is quicker but not instant. */
const READY_TIMEOUT_MS = 30_000;
/**
 * A load run may take its warm-up and measurement plus this: tsx's start,
 * connecting and greeting (15 s at most), draining (10 s), closing (3 s).
 * Beyond it the run is killed and counted as failed.
 */
const LOAD_MARGIN_MS = 40_000;
/** Typical costs, for the estimate printed up front (measured on the 2-core machine). */
const TYPICAL_SERVER_START_S = 1;
const TYPICAL_LOAD_OVERHEAD_S = 0.7;

/** Options of {@link runBenchmark}. */
export interface BenchOptions {
  /** Starts, and at the end stops, every process of the benchmark. */
  supervisor: Supervisor;
  seconds: number;
  runs: number;
  log: Logger;
  signal: AbortSignal;
}

function loadLabel({ mode, connections }: LoadSpec): string {
  return `${mode} with ${connections} client${connections === 1 ? '' : 's'}`;
}

/** The figures a load result contributes, by row id. */
function figuresOf(load: LoadSpec, result: LoadResult): Record<string, number | null> {
  if (result.mode === 'throughput') return { [`throughput-${load.connections}`]: result.mibPerSecond };
  return {
    [`rtt-rate-${load.connections}`]: result.roundTripsPerSecond,
    [`rtt-median-${load.connections}`]: result.medianUs,
  };
}

function headline(load: LoadSpec, result: LoadResult): string {
  if (result.mode === 'throughput') return `${formatFigure(result.mibPerSecond)} MiB/s`;
  return `${formatFigure(result.roundTripsPerSecond)} round trips/s, median ${formatFigure(result.medianUs)} µs`;
}

/** How long a run of the whole benchmark should take, in seconds. */
export function estimateSeconds(seconds: number, runs: number): number {
  const perServer = TYPICAL_SERVER_START_S + LOADS.length * (TYPICAL_LOAD_OVERHEAD_S + WARMUP_SECONDS + seconds);
  return runs * SERVERS.length * perServer;
}

/**
 * Runs one load generator against `port` and returns its result line. It is
 * killed (and this rejects) after the hard timeout, or at once on abort.
 */
async function runLoad(supervisor: Supervisor, port: number, load: LoadSpec, seconds: number, signal: AbortSignal): Promise<LoadResult> {
  signal.throwIfAborted();
  const proc = supervisor.start(`load (${loadLabel(load)})`, [
    TSX,
    'harness/bench/load.ts',
    '--host', HOST,
    '--port', String(port),
    '--mode', load.mode,
    '--connections', String(load.connections),
    '--seconds', String(seconds),
    '--warmup', String(WARMUP_SECONDS),
    '--chunk', String(CHUNK_BYTES),
    '--window', String(WINDOW_BYTES),
    '--size', String(MESSAGE_BYTES),
  ], { cwd: ROOT });
  const onAbort = () => void proc.stop({ graceMs: 500 });
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const exit = await proc.waitForExit((WARMUP_SECONDS + seconds) * 1000 + LOAD_MARGIN_MS);
    signal.throwIfAborted();
    const line = proc.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as LoadResult;
    } catch {
      const why = proc.stderr.trim().split('\n').slice(-2).join(' | ');
      throw new Error(`load generator ${describeExit(exit)} without a result${why ? `: ${why}` : ''}`);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** What one server's turn in one run produced. */
interface ServerRun {
  figures: Record<string, number | null>;
  memory: GroupMemory | null;
  failures: string[];
}

/** Starts `server` fresh, runs every load against it while watching its memory, and stops it. */
async function benchServer(
  supervisor: Supervisor,
  server: ServerSpec,
  what: string,
  { seconds, log, signal }: BenchOptions,
): Promise<ServerRun> {
  const run: ServerRun = { figures: {}, memory: null, failures: [] };
  const port = await freePort(HOST);
  signal.throwIfAborted();
  log(`${what}: starting on ${HOST}:${port}`);
  const proc = supervisor.start(server.id, server.command(String(port)), { cwd: ROOT, env: server.env ?? {} });
  const onAbort = () => void proc.stop({ graceMs: 500 });
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    try {
      await waitReady(proc, port, 'tcp', READY_TIMEOUT_MS);
    } catch (error) {
      signal.throwIfAborted();
      run.failures.push(`${what}: not ready: ${(error as Error).message}`);
      return run;
    }
    // The monitor follows the process group, which is the server's PID (Supervisor starts each in its own group).
    const monitor = new GroupMemoryMonitor(proc.pid);
    monitor.start();
    try {
      for (const load of LOADS) {
        if (proc.exit) {
          run.failures.push(`${what}: server ${describeExit(proc.exit)} before ${loadLabel(load)}`);
          continue;
        }
        try {
          const result = await runLoad(supervisor, port, load, seconds, signal);
          if (result.errors.length > 0) {
            run.failures.push(`${what}: ${loadLabel(load)}: ${result.errors.join('; ')}`);
            log(`${what}: ${loadLabel(load)}: FAILED: ${result.errors[0]}`);
          } else {
            Object.assign(run.figures, figuresOf(load, result));
            log(`${what}: ${loadLabel(load)}: ${headline(load, result)}`);
          }
        } catch (error) {
          signal.throwIfAborted();
          run.failures.push(`${what}: ${loadLabel(load)}: ${(error as Error).message}`);
          log(`${what}: ${loadLabel(load)}: FAILED: ${(error as Error).message}`);
        }
      }
    } finally {
      // Before the server stops: the last sample must still see its processes.
      run.memory = await monitor.stop();
    }
    run.figures['memory-rss'] = run.memory.peakRssMiB;
    run.figures['memory-pss'] = run.memory.peakPssMiB;
    log(`${what}: peak memory ${formatFigure(run.memory.peakRssMiB)} MiB RSS, ${formatFigure(run.memory.peakPssMiB)} MiB PSS`);
  } finally {
    signal.removeEventListener('abort', onAbort);
    await proc.stop();
  }
  return run;
}

/** Runs a short command (a version query) under the supervisor and returns its output. */
async function outputOf(supervisor: Supervisor, command: string[]): Promise<string> {
  const proc = supervisor.start(command[0] ?? '?', command, { cwd: ROOT, env: { NO_COLOR: '1' } });
  try {
    await proc.waitForExit(15_000);
    return proc.stdout + proc.stderr;
  } catch {
    return '';
  }
}

/** The machine and runtime versions the figures belong to. */
async function describeMachine(supervisor: Supervisor): Promise<Machine> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const deno = await outputOf(supervisor, [DENO, '--version']);
  const socat = await outputOf(supervisor, [SOCAT, '-V']);
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    deno: /^deno (\S+)/m.exec(deno)?.[1] ?? 'unknown',
    // `socat -V` prints a banner line first; the version is on the next.
    socat: /^socat version (\S+)/m.exec(socat)?.[1] ?? 'unknown',
  };
}

/**
 * Which figures moved most from run to run: `label server ×spread` where the
 * largest run was more than `threshold` times the smallest. A reader should
 * know which medians to trust less.
 */
function noisyFigures(rows: Report['rows'], servers: Report['servers'], threshold = 1.25): string[] {
  const noisy: string[] = [];
  for (const row of rows) {
    for (const server of servers) {
      const runs = (row.values[server.id]?.runs ?? []).filter((value) => value !== null && value > 0) as number[];
      if (runs.length < 2) continue;
      const spread = Math.max(...runs) / Math.min(...runs);
      if (spread > threshold) noisy.push(`${row.label} ${server.label} x${spread.toFixed(2)}`);
    }
  }
  return noisy;
}

/** Explanations printed under the table, with this run's own figures where they help. */
function notesFor(report: Pick<Report, 'settings' | 'memory' | 'rows' | 'servers'>): string[] {
  const relay = Object.values(report.memory)
    .flat()
    .flatMap((memory) => (memory as GroupMemory | null)?.final ?? [])
    .filter((process) => process.role === 'tsx (relay)')
    .map((process) => process.hwmMiB);
  const socatProcesses = (report.memory['socat'] ?? []).map((memory) => (memory as GroupMemory | null)?.maxProcesses ?? 0);
  const notes = [
    `Figures are medians over ${report.settings.runs} run${report.settings.runs === 1 ? '' : 's'}; each ratio column is the median of the per-run ratios ` +
      '(ej01 under Node divided by the reference, measured in the same run). For rates a ratio below 1 means ej01 is slower; ' +
      'for RTT and memory a ratio above 1 means ej01 is slower or larger.',
    `Throughput: each client writes ${CHUNK_BYTES / 1024} KiB chunks with at most ${WINDOW_BYTES / 2 ** 20} MiB unechoed, ` +
      `and every echoed byte is compared with what was sent. Round trips: each client sends ${MESSAGE_BYTES} bytes and waits for ` +
      'their echo before the next. The load generator is one Node process on the same cores as the server, so the fastest ' +
      'servers may be held back by it rather than by themselves.',
    'Memory: summed over the server\'s process group from /proc, for all four loads of a run (the 100-client throughput ' +
      'load dominates). RSS counts shared pages once per process; PSS divides them among the processes sharing them.' +
      (relay.length > 0 ? ` Both tsx-run servers include tsx's relay process (median ${formatFigure(median(relay) ?? 0)} MiB peak RSS).` : ''),
    'socat forks one child per connection, and the children exit with their connections, so their VmHWM is lost: socat\'s figures ' +
      `are the highest sum sampled every 250 ms over the listener and its live children (up to ${Math.max(0, ...socatProcesses)} processes ` +
      'at once). Its RSS sum counts the shared C library once per child; its PSS sum is the memory the group really took.',
  ];
  const noisy = noisyFigures(report.rows, report.servers);
  if (noisy.length > 0) notes.push(`Largest run over smallest run above 1.25 (trust these medians less): ${noisy.join('; ')}.`);
  return notes;
}

/**
 * Runs the whole benchmark: `runs` rounds, each starting every server fresh
 * (in rotated order) and running every load against it. Failures are
 * collected, not thrown; an abort rejects once every process is stopped.
 */
export async function runBenchmark(options: BenchOptions): Promise<Report> {
  const { supervisor, seconds, runs, log } = options;
  const figures: Record<string, Record<string, (number | null)[]>> = {};
  const memory: Record<string, (GroupMemory | null)[]> = {};
  const failures: string[] = [];
  for (const row of ROWS) figures[row.id] = Object.fromEntries(SERVERS.map((server) => [server.id, []]));
  for (const server of SERVERS) memory[server.id] = [];

  try {
    const machine = await describeMachine(supervisor);
    log(`${machine.cpu}, ${machine.cores} cores; node ${machine.node}, deno ${machine.deno}`);
    for (let run = 0; run < runs; run++) {
      const order = SERVERS.map((_, i) => SERVERS[(i + run) % SERVERS.length]!);
      for (const server of order) {
        const result = await benchServer(supervisor, server, `run ${run + 1}/${runs} ${server.label}`, options);
        for (const row of ROWS) figures[row.id]![server.id]!.push(result.figures[row.id] ?? null);
        memory[server.id]!.push(result.memory);
        failures.push(...result.failures);
      }
    }
    const settings = { seconds, warmupSeconds: WARMUP_SECONDS, runs, chunkBytes: CHUNK_BYTES, windowBytes: WINDOW_BYTES, messageBytes: MESSAGE_BYTES };
    const servers = SERVERS.map((server) => ({ id: server.id, label: server.label, command: server.command('PORT').join(' ').replaceAll(ROOT, '') }));
    const rows = summarize(ROWS, servers, RATIOS, figures);
    return {
      date: new Date().toISOString(),
      machine,
      settings,
      servers,
      ratios: [...RATIOS],
      rows,
      memory,
      notes: notesFor({ settings, memory, rows, servers }),
      failures,
    };
  } finally {
    await supervisor.stopAll(1000);
    const leftovers = await supervisor.reapLeftovers();
    if (leftovers.length > 0) {
      // A leftover is a bug in stopping, not in a server: fail loudly.
      log(`killed ${leftovers.length} process(es) left behind: ${leftovers.join('; ')}`);
      failures.push(`processes left behind: ${leftovers.join('; ')}`);
    }
  }
}

/** The benchmarks `--suite` chooses from. */
const SUITES = ['echo', 'http', 'ej11'];

const command = defineCommand({
  name: 'bench.ts',
  summary:
    'Benchmarks the exercises beside reference peers: ej01 (echo) against a minimal Node echo and socat; ej06 and ej03 (HTTP) against nginx, wget and curl; ej11 (reliable UDP) against TCP under packet loss.',
  options: {
    suite: { type: 'string', multiple: true, metavar: 'echo|http|ej11', help: 'run only this benchmark; repeatable (default: all)' },
    svg: { type: 'string', metavar: 'FILE', help: "write ej11's chart (goodput against loss, UDP and TCP) to FILE" },
    seconds: { type: 'string', default: '3', metavar: 'S', help: 'length of each measurement' },
    runs: { type: 'string', default: '3', metavar: 'N', help: 'runs of every measurement; the median is reported' },
    json: { type: 'boolean', help: 'print the results as JSON instead of a table' },
  },
  epilog: 'Progress on stderr, results on stdout. Exit status: 0 if every measurement succeeded, 1 if any failed, 130 if interrupted.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const seconds = parsePositive(opts.seconds, 'seconds');
  const runs = parsePositive(opts.runs, 'runs', { integer: true });
  const suites = new Set(opts.suite ?? SUITES);
  for (const suite of suites) {
    if (!SUITES.includes(suite)) throw new UsageError(`argument --suite: expected one of ${SUITES.join(', ')}, got '${suite}'`);
  }
  const log = createLogger('bench');
  const supervisor = new Supervisor();

  // The servers and load generators run in process groups of their own, so a
  // Ctrl-C at the terminal does not reach them: stopping them is ours to do.
  const controller = new AbortController();
  let interrupted = false;
  const killAllAndExit = () => {
    for (const proc of supervisor.procs) proc.signal('SIGKILL');
    process.exit(130);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      log(`${signal} again: killing every process started and exiting`);
      killAllAndExit();
    }
    interrupted = true;
    log(`${signal}: stopping every process started (again to kill them at once)`);
    controller.abort(new Error(`interrupted by ${signal}`));
    // Stopping takes a few seconds at most; should it hang, do not hang with it.
    setTimeout(() => {
      log('stopping took too long: killing every process started and exiting');
      killAllAndExit();
    }, 15_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const estimate = estimateSeconds(seconds, runs);
  log(
    `${runs} run(s) x ${SERVERS.length} servers x ${LOADS.length} loads of ${WARMUP_SECONDS} + ${seconds} s: ` +
      `about ${Math.ceil(estimate / 60)} min (${Math.round(estimate)} s); ` +
      `each load run is killed after ${WARMUP_SECONDS + seconds + LOAD_MARGIN_MS / 1000} s`,
  );
  const started = performance.now();
  try {
    const json: Record<string, unknown> = {};
    let failed = false;
    if (suites.has('echo')) {
      const report = await runBenchmark({ supervisor, seconds, runs, log, signal: controller.signal });
      failed ||= report.failures.length > 0;
      if (opts.json) json.echo = report;
      else process.stdout.write(formatReport(report));
    }
    if (suites.has('http') && !controller.signal.aborted) {
      const report = await runHttpBenchmark({ seconds, runs, log });
      if (opts.json) json.http = report;
      else process.stdout.write(`\n${formatHttpReport(report)}`);
    }
    if (suites.has('ej11') && !controller.signal.aborted) {
      // ej11 moves a 16 MiB file at each loss rate, over UDP and TCP: its own sizes, not --seconds.
      const report = await runEj11Bench({ sizeMiB: 16, runs, losses: [0, 1, 2, 5, 10], limitS: 120, log });
      if (opts.svg) await writeFile(opts.svg, renderEj11Svg(report));
      if (opts.json) json.ej11 = report;
      else process.stdout.write(`\n${formatEj11Report(report)}`);
    }
    log(`done in ${Math.round((performance.now() - started) / 1000)} s`);
    if (opts.json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return failed ? 1 : 0;
  } catch (error) {
    if (controller.signal.aborted) {
      log('interrupted: every process stopped');
      return 130;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
