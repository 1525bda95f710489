/**
 * Benchmark of the HTTP exercises against nginx: ej06's requests per second
 * under `wrk` (keep-alive, 64 connections, a 4 KiB and a 1 MiB file) beside
 * nginx with one worker serving the same folder; and ej03's download time of
 * a 50 MiB file beside `wget` and `curl`, all from that nginx.
 *
 * ```sh
 * npx tsx harness/bench/http.ts                        # 3 runs, 5 s per wrk measurement
 * npx tsx harness/bench/http.ts --seconds 2 --runs 1   # a quick look
 * npx tsx harness/bench/http.ts --json
 * ```
 *
 * Every figure is the median of the runs; the servers' order rotates from
 * run to run. The machine is shared, so the ratios (measured in the same
 * run) mean more than the absolute figures. Progress on stderr, the table
 * (or JSON) on stdout.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand, parsePositive } from '../../lib/cli.ts';
import { createLogger, type Logger } from '../../lib/log.ts';
import { isMain, runMain } from '../../lib/main.ts';
import { nginxCommand, writeNginxConfig } from '../peers/nginx.ts';
import { freePort, Supervisor, waitReady } from '../proc.ts';
import { median } from './stats.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const DENO = join(ROOT, 'node_modules/.bin/deno');
const HOST = '127.0.0.1';

/** An HTTP server compared under wrk. */
interface HttpServer {
  id: string;
  label: string;
  start(supervisor: Supervisor, root: string, port: number): Promise<() => Promise<void>>;
}

const SERVERS: HttpServer[] = [
  {
    id: 'ej06-node',
    label: 'ej06 (node)',
    async start(supervisor, root, port) {
      const proc = supervisor.start('ej06 (node)', [TSX, 'ej06/server.ts', '--quiet', '--root', root, '--host', HOST, '--port', String(port)], { cwd: ROOT });
      await waitReady(proc, port, 'tcp', 30_000);
      return async () => void (await proc.stop());
    },
  },
  {
    id: 'ej06-deno',
    label: 'ej06 (deno)',
    async start(supervisor, root, port) {
      const proc = supervisor.start('ej06 (deno)', [DENO, 'run', '-A', 'ej06/server.ts', '--quiet', '--root', root, '--host', HOST, '--port', String(port)], {
        cwd: ROOT,
        env: { DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
      });
      await waitReady(proc, port, 'tcp', 60_000);
      return async () => void (await proc.stop());
    },
  },
  {
    id: 'nginx',
    label: 'nginx (1 worker)',
    async start(supervisor, root, port) {
      const { dir, conf } = await writeNginxConfig({ root, workers: 1 }, port);
      const proc = supervisor.start('nginx', nginxCommand(dir, conf));
      await waitReady(proc, port, 'tcp', 10_000);
      return async () => {
        await proc.stop();
        await rm(dir, { recursive: true, force: true });
      };
    },
  },
];

/** The files requested under wrk. */
const FILES = [
  { name: '4k.bin', bytes: 4096 },
  { name: '1m.bin', bytes: 1024 * 1024 },
];

/** Runs wrk for `seconds` and returns requests per second (its own figure). */
async function wrk(supervisor: Supervisor, url: string, seconds: number): Promise<number> {
  const proc = supervisor.start('wrk', ['wrk', '-t2', '-c64', `-d${seconds}s`, url]);
  const exit = await proc.waitForExit((seconds + 30) * 1000);
  const match = /Requests\/sec:\s+([\d.]+)/.exec(proc.stdout);
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(proc.stdout);
  if (exit.code !== 0 || !match) throw new Error(`wrk failed (exit ${exit.code}): ${proc.stderr.trim() || proc.stdout.trim()}`);
  if (errors?.[1]) throw new Error(`wrk saw ${errors[1]} non-2xx responses from ${url}`);
  return Number(match[1]);
}

/** Runs a downloader to completion and returns its wall time in seconds. */
async function timeDownload(supervisor: Supervisor, name: string, command: string[]): Promise<number> {
  const started = performance.now();
  const proc = supervisor.start(name, command, { cwd: ROOT });
  const exit = await proc.waitForExit(120_000);
  const seconds = (performance.now() - started) / 1000;
  if (exit.code !== 0) throw new Error(`${name} exit ${exit.code}: ${proc.stderr.trim().split('\n').at(-1)}`);
  return seconds;
}

/** The figures of one benchmark, medians of the runs. */
export interface HttpBenchReport {
  runs: number;
  seconds: number;
  machine: { cpus: number; model: string };
  /** Requests per second by server id, then by file name. */
  rps: Record<string, Record<string, number>>;
  /** Seconds to download 50 MiB, by client. */
  download: Record<string, number>;
}

/** Runs the whole benchmark; every process is stopped at the end, also on failure. */
export async function runHttpBenchmark({ seconds, runs, log }: { seconds: number; runs: number; log: Logger }): Promise<HttpBenchReport> {
  const supervisor = new Supervisor({ PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` });
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-http-'));
  const root = path.join(dir, 'root');
  await mkdir(root);
  for (const file of FILES) await writeFile(path.join(root, file.name), randomBytes(file.bytes));
  await writeFile(path.join(root, '50m.bin'), randomBytes(50 * 1024 * 1024));
  const samples: Record<string, Record<string, number[]>> = {};
  const downloads: Record<string, number[]> = {};
  try {
    for (let run = 0; run < runs; run++) {
      const order = SERVERS.map((_, i) => SERVERS[(i + run) % SERVERS.length] as HttpServer);
      for (const server of order) {
        const port = await freePort(HOST);
        const stop = await server.start(supervisor, root, port);
        try {
          for (const file of FILES) {
            const rps = await wrk(supervisor, `http://${HOST}:${port}/${file.name}`, seconds);
            log(`run ${run + 1}/${runs}: ${server.label} ${file.name}: ${rps.toFixed(0)} requests/s`);
            ((samples[server.id] ??= {})[file.name] ??= []).push(rps);
          }
          if (server.id === 'nginx') {
            const url = `http://${HOST}:${port}/50m.bin`;
            const clients: [string, string[]][] = [
              ['ej03 (node)', [TSX, 'ej03/wget.ts', '--url', url, '-O', '/dev/null', '--log', '/dev/null', '-q']],
              ['ej03 (deno)', [DENO, 'run', '-A', 'ej03/wget.ts', '--url', url, '-O', '/dev/null', '--log', '/dev/null', '-q']],
              ['wget', ['wget', '-q', '-O', '/dev/null', url]],
              ['curl', ['curl', '-s', '-o', '/dev/null', url]],
            ];
            // The runtimes' start-up (tsx compiles the TypeScript each time), to tell apart from the transfer.
            clients.push(['ej03 (node) -h only', [TSX, 'ej03/wget.ts', '-h']], ['ej03 (deno) -h only', [DENO, 'run', '-A', 'ej03/wget.ts', '-h']]);
            for (const [name, command] of clients) {
              const s = await timeDownload(supervisor, name, command);
              log(`run ${run + 1}/${runs}: ${name} ${name.endsWith('only') ? 'started and exited' : 'downloaded 50 MiB'} in ${s.toFixed(2)} s`);
              (downloads[name] ??= []).push(s);
            }
          }
        } finally {
          await stop();
        }
      }
    }
  } finally {
    await supervisor.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
  const rps: HttpBenchReport['rps'] = {};
  for (const [id, files] of Object.entries(samples)) {
    rps[id] = Object.fromEntries(Object.entries(files).map(([name, values]) => [name, median(values) ?? NaN]));
  }
  const download = Object.fromEntries(Object.entries(downloads).map(([name, values]) => [name, median(values) ?? NaN]));
  return { runs, seconds, machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '?' }, rps, download };
}

/** The report as a table: requests/s with ratios to nginx, then download times with ratios to wget. */
export function formatHttpReport(report: HttpBenchReport): string {
  const lines: string[] = [];
  lines.push(`HTTP benchmark: median of ${report.runs} run(s), wrk -t2 -c64 -d${report.seconds}s, ${report.machine.cpus} CPUs (${report.machine.model})`);
  lines.push('');
  lines.push(`${'requests/s'.padEnd(20)}${FILES.map((f) => f.name.padStart(12)).join('')}${FILES.map((f) => `${f.name} vs nginx`.padStart(20)).join('')}`);
  const nginx = report.rps.nginx ?? {};
  for (const server of SERVERS) {
    const row = report.rps[server.id];
    if (!row) continue;
    const cells = FILES.map((f) => (row[f.name] ?? NaN).toFixed(0).padStart(12)).join('');
    const ratios = FILES.map((f) => `${((row[f.name] ?? NaN) / (nginx[f.name] ?? NaN)).toFixed(2)}×`.padStart(20)).join('');
    lines.push(`${server.label.padEnd(20)}${cells}${ratios}`);
  }
  lines.push('');
  lines.push(`${'50 MiB download'.padEnd(22)}${'seconds'.padStart(10)}${'vs wget'.padStart(10)}${'of it start-up'.padStart(16)}`);
  const wget = report.download.wget ?? NaN;
  for (const [name, seconds] of Object.entries(report.download)) {
    if (name.endsWith('-h only')) continue;
    const startup = report.download[`${name} -h only`];
    lines.push(`${name.padEnd(22)}${seconds.toFixed(2).padStart(10)}${`${(seconds / wget).toFixed(2)}×`.padStart(10)}${startup === undefined ? '' : startup.toFixed(2).padStart(16)}`);
  }
  lines.push('("of it start-up": the same command run with -h, the runtime starting and compiling the script.)');
  return `${lines.join('\n')}\n`;
}

const command = defineCommand({
  name: 'http.ts',
  summary: 'Benchmark ej06 against nginx with wrk, and ej03 against wget and curl.',
  options: {
    seconds: { type: 'string', default: '5', help: 'length of each wrk measurement, in seconds' },
    runs: { type: 'string', default: '3', help: 'how many times to repeat everything (medians are reported)' },
    json: { type: 'boolean', help: 'print the figures as JSON' },
  },
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const seconds = parsePositive(opts.seconds, 'seconds', { integer: true });
  const runs = parsePositive(opts.runs, 'runs', { integer: true });
  const report = await runHttpBenchmark({ seconds, runs, log: createLogger('bench-http') });
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatHttpReport(report));
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
