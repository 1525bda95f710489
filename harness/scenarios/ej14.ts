/**
 * Exercise 14: map/reduce word count. Roles: `master` (`in_file out_file`),
 * `mapper` (`host port`) and `reducer` (no arguments), all reading
 * `config.ini` from the current folder, as the assignment runs them.
 *
 * Each requirement writes a config.ini (`[reducer]`, `[mapper1]` … with
 * `host =` and `port =`) and the input, Don Quijote (ej14/data/pg2000.txt)
 * three times over (6.6 MB, BOM and CRLF inside), into a temp folder and
 * starts every role there. The expected count is computed here, by the
 * harness's own tokeniser (not the exercise's): a term is a maximal run of
 * Unicode letters and combining marks, lower-cased, NFC. out_file is read
 * as `term<TAB>count` lines (a space, colon or comma also separates).
 *
 * Where a requirement needs to force a case (a mapper slowed down so it can
 * be killed mid-task, one copy per piece so that a lost mapper must be
 * replaced, a short silence limit) it uses this project's options
 * (`--delay`, `--copies`, `--task-timeout`) only when the target's `-h`
 * lists them, and otherwise runs without, saying so.
 *
 * @module
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Proc, waitReady } from '../proc.ts';
import { type Context, cliRequirement, defineScenario, TRACEBACK } from '../scenario.ts';
import { ROOT } from '../target.ts';

const QUIJOTE = path.join(ROOT, 'ej14', 'data', 'pg2000.txt');
const COPIES = 3;
const MASTER_TIMEOUT_MS = 90_000;

// ---------------------------------------------------------------------------
// The harness's own count

/** True for a letter or a combining mark, tested one code point at a time. */
const LETTER = /^[\p{L}\p{M}]$/u;

/** Counts terms by walking the text code point by code point (independent of ej14/wordcount.ts). */
function referenceCount(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  let word = '';
  const flush = () => {
    if (word === '') return;
    const term = word.toLowerCase().normalize('NFC');
    counts.set(term, (counts.get(term) ?? 0) + 1);
    word = '';
  };
  for (const char of text) {
    if (LETTER.test(char)) word += char;
    else flush();
  }
  flush();
  return counts;
}

let expected: { input: Buffer; counts: Map<string, number> } | undefined;
/** The input (Quijote × 3) and its expected count, computed once per run. */
function reference(): { input: Buffer; counts: Map<string, number> } {
  if (!expected) {
    const one = readFileSync(QUIJOTE);
    const input = Buffer.concat(Array.from({ length: COPIES }, () => one));
    expected = { input, counts: referenceCount(new TextDecoder().decode(input)) };
  }
  return expected;
}

/** Reads out_file: `term<sep>count` per line. */
function parseOutput(text: string): { counts: Map<string, number>; bad: string[] } {
  const counts = new Map<string, number>();
  const bad: string[] = [];
  for (const line of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const match = /^\s*(\S+?)[\t :,]+(\d+)\s*$/.exec(line);
    if (match) counts.set(match[1] as string, (counts.get(match[1] as string) ?? 0) + Number(match[2]));
    else bad.push(line);
  }
  return { counts, bad };
}

/** Checks out_file against the reference, term for term, with a readable first difference. */
async function checkOutput(ctx: Context, file: string): Promise<void> {
  if (!existsSync(file)) {
    ctx.t.fail(`out_file ${file} was written`);
    return;
  }
  const { counts: want } = reference();
  const { counts: got, bad } = parseOutput(await readFile(file, 'utf8'));
  ctx.t.same(bad.slice(0, 3), [], 'every line of out_file is "term<TAB>count"');
  ctx.t.equal(got.size, want.size, `out_file has the ${want.size} terms of the single-process count`);
  const differences: string[] = [];
  for (const [term, n] of want) if (got.get(term) !== n) differences.push(`${term}: expected ${n}, got ${got.get(term) ?? 'none'}`);
  for (const [term, n] of got) if (!want.has(term)) differences.push(`${term}: not a term, got ${n}`);
  ctx.t.same(differences.slice(0, 5), [], `every count equals the single-process count (${differences.length} differences)`);
  const top = [...want].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([term, n]) => `${term} ${n}`).join(', ');
  ctx.t.pass(`most frequent: ${top}`);
}

// ---------------------------------------------------------------------------
// Nodes

/** The target's command with the words that name its files made absolute, so it can run in the temp folder. */
function commandElsewhere(ctx: Context, role: string): string[] {
  return ctx.command(role).map((word) => {
    const full = path.resolve(ctx.target.cwd, word);
    return !word.startsWith('-') && existsSync(full) && statSync(full).isFile() ? full : word;
  });
}

/** Whether `role`'s `-h` lists `option`. */
async function offers(ctx: Context, role: string, option: string): Promise<boolean> {
  const help = await ctx.client(role, ['-h']);
  return help.stdout.includes(option);
}

interface Cluster {
  dir: string;
  input: string;
  output: string;
  reducer: Proc;
  mappers: Map<number, Proc>;
}

interface ClusterOptions {
  mappers: number;
  /** 1-based indexes of mappers played by a harness socket that accepts and never answers. */
  silent?: number[];
  /** Extra arguments for mapper N (1-based). */
  mapperArgs?: Record<number, string[]>;
}

/** A socket server that accepts, reads everything and never answers. */
async function silentMapper(ctx: Context, port: number): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ctx.host, () => resolve());
  });
  ctx.t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
}

/** Writes config.ini and the input into a temp folder and starts the reducer and the mappers there. */
async function startCluster(ctx: Context, { mappers, silent = [], mapperArgs = {} }: ClusterOptions): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej14-'));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  const reducerPort = await ctx.port();
  const ports: number[] = [];
  for (let i = 0; i < mappers; i++) ports.push(await ctx.port());
  const config = [`[reducer]\nhost = ${ctx.host}\nport = ${reducerPort}\n`, ...ports.map((p, i) => `[mapper${i + 1}]\nhost = ${ctx.host}\nport = ${p}\n`)].join('\n');
  await writeFile(path.join(dir, 'config.ini'), config);
  const input = path.join(dir, 'quijote-x3.txt');
  await writeFile(input, reference().input);

  const reducer = ctx.supervisor.start('reducer', commandElsewhere(ctx, 'reducer'), { cwd: dir });
  const started = new Map<number, Proc>();
  for (const [i, port] of ports.entries()) {
    const n = i + 1;
    if (silent.includes(n)) await silentMapper(ctx, port);
    else started.set(n, ctx.supervisor.start(`mapper${n}`, [...commandElsewhere(ctx, 'mapper'), ...(mapperArgs[n] ?? []), ctx.host, String(port)], { cwd: dir }));
  }
  await waitReady(reducer, reducerPort, 'tcp', 30_000);
  for (const [n, proc] of started) await waitReady(proc, ports[n - 1] as number, 'tcp', 30_000);
  return { dir, input, output: path.join(dir, 'salida.txt'), reducer, mappers: started };
}

/** Starts the master in the cluster's folder, `in_file out_file` plus `extra`. */
function startMaster(ctx: Context, cluster: Cluster, extra: string[] = []): Proc {
  return ctx.supervisor.start('master', [...commandElsewhere(ctx, 'master'), ...extra, cluster.input, cluster.output], { cwd: cluster.dir });
}

async function runMaster(ctx: Context, cluster: Cluster, extra: string[] = []) {
  return ctx.exec('master', [...commandElsewhere(ctx, 'master'), ...extra, cluster.input, cluster.output], { cwd: cluster.dir, timeoutMs: MASTER_TIMEOUT_MS });
}

function noTraces(ctx: Context, procs: Iterable<Proc>): void {
  for (const proc of procs) ctx.t.notMatch(proc.stderr, TRACEBACK, `${proc.name} printed no stack trace`);
}

export default defineScenario('ej14', 'Map/reduce word count', [
  cliRequirement({ master: [/in_file/, /out_file/], mapper: [/host/, /port/], reducer: [] }, async (ctx) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ej14-cli-'));
    ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'config.ini'), '[reducer]\nhost = 127.0.0.1\nport = 8000\n\n[mapper1]\nhost = 127.0.0.1\nport = ochenta\n');
    const badConfig = await ctx.exec('master', [...commandElsewhere(ctx, 'master'), QUIJOTE, path.join(dir, 'out.txt')], { cwd: dir });
    ctx.t.not(badConfig.exit.code, 0, `a bad config.ini: master exits non-zero (${badConfig.exit.code})`);
    ctx.t.match(badConfig.stderr, /mapper1|line 6/, `the error names the section or line: ${badConfig.stderr.trim().split('\n').at(-1)}`);
    ctx.t.notMatch(badConfig.stderr, TRACEBACK, 'no stack trace');
    await writeFile(path.join(dir, 'config.ini'), '[reducer]\nhost = 127.0.0.1\nport = 8000\n\n[mapper1]\nhost = 127.0.0.1\nport = 8001\n');
    const missing = await ctx.exec('master', [...commandElsewhere(ctx, 'master'), path.join(dir, 'no-such.txt'), path.join(dir, 'out.txt')], { cwd: dir });
    ctx.t.not(missing.exit.code, 0, `a missing in_file: master exits non-zero (${missing.exit.code})`);
    ctx.t.match(missing.stderr, /no-such\.txt/, `the error names the file: ${missing.stderr.trim().split('\n').at(-1)}`);
    ctx.t.notMatch(missing.stderr, TRACEBACK, 'no stack trace');
  }),
  {
    id: 'quijote-4-mappers',
    title: 'Don Quijote × 3 (6.6 MB) over 4 mappers: out_file equals the single-process count exactly, term for term',
    roles: ['master', 'mapper', 'reducer'],
    timeoutMs: 180_000,
    async run(ctx) {
      const cluster = await startCluster(ctx, { mappers: 4 });
      ctx.t.ok(reference().input.length >= 5 * 1024 * 1024, `the input has ${reference().input.length} bytes (at least 5 MB)`);
      const run = await runMaster(ctx, cluster);
      ctx.t.equal(run.timedOut, false, `the master finished (${(run.durationMs / 1000).toFixed(1)} s)`);
      ctx.t.equal(run.exit.code, 0, `the master exits 0${run.exit.code ? `: ${run.stderr.trim().split('\n').at(-1)}` : ''}`);
      await checkOutput(ctx, cluster.output);
      const working = [...cluster.mappers.values()].filter((m) => /piece|\d+ bytes/i.test(m.stderr)).length;
      ctx.t.pass(`${working} of 4 mappers logged work`);
      noTraces(ctx, [cluster.reducer, ...cluster.mappers.values()]);
      ctx.t.notMatch(run.stderr, TRACEBACK, 'the master printed no stack trace');
    },
  },
  {
    id: 'mapper-killed',
    title: 'a mapper SIGKILLed while it holds a piece leaves out_file exactly the single-process count',
    roles: ['master', 'mapper', 'reducer'],
    timeoutMs: 180_000,
    async run(ctx) {
      // Slow mapper1 down (if the target can) so it is surely killed mid-task,
      // and give each piece one mapper (if it can) so the piece must be reassigned.
      const delay = (await offers(ctx, 'mapper', '--delay')) ? ['--delay', '4'] : [];
      const copies = (await offers(ctx, 'master', '--copies')) ? ['--copies', '1'] : [];
      if (!delay.length || !copies.length) ctx.t.comment('the target lacks --delay/--copies: mapper1 is killed as soon as it shows work, or after 1 s');
      const cluster = await startCluster(ctx, { mappers: 4, mapperArgs: { 1: delay } });
      const victim = cluster.mappers.get(1) as Proc;
      const master = startMaster(ctx, cluster, copies);
      await victim.until(() => (/received|piece/i.test(victim.stderr) ? true : undefined), delay.length ? 30_000 : 1000, 'work').catch(() => undefined);
      const busy = /received/.test(victim.stderr) && !/announcing|stored|not sent/.test(victim.stderr);
      victim.signal('SIGKILL');
      const exit = await victim.exited;
      ctx.t.equal(exit.signal ?? 'SIGKILL', 'SIGKILL', 'mapper1 was killed');
      if (delay.length) ctx.t.ok(busy, 'mapper1 had received a piece and not yet delivered it when killed');
      const masterExit = await master.waitForExit(MASTER_TIMEOUT_MS).catch(() => master.exit);
      ctx.t.equal(masterExit?.code, 0, `the master exits 0${masterExit?.code ? `: ${master.stderr.trim().split('\n').at(-1)}` : ''}`);
      if (copies.length) ctx.t.match(master.stderr, /reassigned/, 'the master reassigned the lost piece');
      await checkOutput(ctx, cluster.output);
      noTraces(ctx, [master, cluster.reducer]);
    },
  },
  {
    id: 'silent-mapper',
    title: 'a mapper that accepts the piece and never answers is given up and its piece reassigned: out_file still exact',
    roles: ['master', 'mapper', 'reducer'],
    timeoutMs: 180_000,
    async run(ctx) {
      const tuned = (await offers(ctx, 'master', '--copies')) && (await offers(ctx, 'master', '--task-timeout'));
      const extra = tuned ? ['--copies', '1', '--task-timeout', '3'] : [];
      if (!tuned) ctx.t.comment('the target lacks --copies/--task-timeout: run with its defaults');
      // mapper1 (first in config.ini) is the harness's silent socket.
      const cluster = await startCluster(ctx, { mappers: 3, silent: [1] });
      const run = await runMaster(ctx, cluster, extra);
      ctx.t.equal(run.timedOut, false, `the master finished within ${MASTER_TIMEOUT_MS / 1000} s (${(run.durationMs / 1000).toFixed(1)} s)`);
      ctx.t.equal(run.exit.code, 0, `the master exits 0${run.exit.code ? `: ${run.stderr.trim().split('\n').at(-1)}` : ''}`);
      if (tuned) ctx.t.match(run.stderr, /given up|no answer/, 'the master says it gave up the silent mapper');
      await checkOutput(ctx, cluster.output);
    },
  },
  {
    id: 'all-mappers-silent',
    title: 'with every mapper silent the master does not hang: it exits non-zero within a bound, saying why',
    roles: ['master', 'reducer'],
    timeoutMs: 180_000,
    async run(ctx) {
      const cluster = await startCluster(ctx, { mappers: 2, silent: [1, 2] });
      const run = await runMaster(ctx, cluster);
      ctx.t.equal(run.timedOut, false, `the master ended by itself within ${MASTER_TIMEOUT_MS / 1000} s (${(run.durationMs / 1000).toFixed(1)} s)`);
      ctx.t.not(run.exit.code, 0, `it exits non-zero (${run.exit.code})`);
      ctx.t.match(run.stderr, /mapper/i, `it says the mappers failed: ${run.stderr.trim().split('\n').at(-1)}`);
      ctx.t.notMatch(run.stderr, TRACEBACK, 'no stack trace');
    },
  },
]);
