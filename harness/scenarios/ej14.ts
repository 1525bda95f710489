/**
 * Exercise 14: map/reduce word count. Roles: `master` (`in_file out_file`),
 * `mapper` (`host port`) and `reducer` (no arguments), all reading
 * `config.ini` from the current folder, as the assignment runs them.
 *
 * Each requirement writes a config.ini and the input, Don Quijote
 * (ej14/data/pg2000.txt) three times over (6.6 MB, BOM and CRLF inside) with
 * a marker term at the start of each of 64 regions, into a temp folder and
 * starts every role there. config.ini is the target's own (in its folder or
 * beside its master's script) with only host and port values rewritten
 * (rewriteConfig); without one, this project's `[reducer]`, `[mapper1]` ….
 *
 * Tiers. The assignment never says what a term is nor how out_file looks,
 * so its checks are the ones it states: every piece counted once (each
 * region's marker exact), one merged table, totals consistent, a crashed
 * mapper's piece still counted (`pieces-once`, `mapper-killed-counted`).
 * An exact match with this project's tokenisation (`format:project-tokens`)
 * and its options are beyond. The expected count is computed here, by the
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

/** Regions of the input, each with a marker term of its own. */
const REGIONS = 64;

/** Region i's marker: `zqx` and two lower-case ASCII letters, a word to any tokeniser, in no Spanish text. */
export function marker(i: number): string {
  return `zqx${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`;
}

let expected: { input: Buffer; counts: Map<string, number>; markers: Map<string, number> } | undefined;
/**
 * The input (Quijote × 3) and its expected count, computed once per run.
 * After a line end at the start of each of {@link REGIONS} equal regions, a
 * line of that region's marker, 1 to 3 times: whatever the tokenisation, a
 * piece lost or counted twice changes its markers' counts.
 */
function reference(): { input: Buffer; counts: Map<string, number>; markers: Map<string, number> } {
  if (!expected) {
    const one = readFileSync(QUIJOTE);
    const text = Buffer.concat(Array.from({ length: COPIES }, () => one));
    const parts: Buffer[] = [];
    const markers = new Map<string, number>();
    let from = 0;
    for (let i = 0; i < REGIONS; i++) {
      const at = text.indexOf(0x0a, Math.floor((text.length * i) / REGIONS));
      if (at < from) continue;
      parts.push(text.subarray(from, at + 1));
      const times = (i % 3) + 1;
      markers.set(marker(i), times);
      parts.push(Buffer.from(`${Array.from({ length: times }, () => marker(i)).join(' ')}\r\n`));
      from = at + 1;
    }
    parts.push(text.subarray(from));
    const input = Buffer.concat(parts);
    expected = { input, counts: referenceCount(new TextDecoder().decode(input)), markers };
  }
  return expected;
}

/** Every `term <sep> count` pair out_file shows, in lines or as JSON or a printed dict: the assignment fixes no format. */
export function loosePairs(text: string): Map<string, number[]> {
  const pairs = new Map<string, number[]>();
  for (const m of text.matchAll(/(?:^|[\s{,])["']?([^\s"':,{}=]+)["']?\s*[:\t ,=]\s*(\d+)(?=[\s,}]|$)/gmu)) {
    const list = pairs.get(m[1] as string) ?? [];
    list.push(Number(m[2]));
    pairs.set(m[1] as string, list);
  }
  return pairs;
}

/**
 * The assignment's checks of out_file, whatever a "term" is to the
 * submission: every region's marker counted exactly (every piece counted
 * once, none lost), each term once (one merged table), and the total of the
 * counts within 15 % of the number of words (a total that is consistent).
 */
async function checkPiecesOnce(ctx: Context, file: string): Promise<void> {
  if (!existsSync(file)) {
    ctx.t.fail(`expected out_file ${file} to be written; observed no such file`);
    return;
  }
  const { markers, counts } = reference();
  const pairs = loosePairs(await readFile(file, 'utf8'));
  const wrong: string[] = [];
  for (const [term, times] of markers) {
    const got = pairs.get(term);
    if (got?.length !== 1 || got[0] !== times) wrong.push(`${term}: expected ${times}, observed ${got?.join(' and ') ?? 'none'}`);
  }
  ctx.t.same(wrong.slice(0, 5), [], `expected each of the ${markers.size} region markers counted exactly once over (every piece counted once); observed ${wrong.length} wrong`);
  const repeated = [...pairs].filter(([, list]) => list.length > 1).map(([term, list]) => `${term} ${list.join('+')}`);
  ctx.t.same(repeated.slice(0, 5), [], `expected every term once in out_file (one merged table); observed ${repeated.length} terms more than once`);
  const words = [...counts.values()].reduce((a, b) => a + b, 0);
  const total = [...pairs.values()].flat().reduce((a, b) => a + b, 0);
  ctx.t.ok(Math.abs(total - words) <= 0.15 * words, `expected the counts to add up to about the ${words} words of the input (±15 %: the tokenisation is the submission's); observed ${total} over ${pairs.size} terms`);
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
// config.ini from the submission's own file
//
// The assignment names config.ini but fixes no layout (this project has
// `[reducer]` and `[mapper1]` …; a real submission had `[master] [reducer]
// [mappers]`). The submission's file is the template: rewriteConfig() keeps
// its sections, keys and comments and rewrites only host and port values, to
// 127.0.0.1 and the ports the harness chose, with as many mappers as the
// requirement runs.

/** What {@link rewriteConfig} is given: the reducer's port and one port per mapper. */
export interface Ports {
  reducer: number;
  mappers: number[];
  /** Called for any other `port` the file holds (a master's, say). */
  other: () => number;
}

interface Section {
  name: string;
  lines: string[];
}

const HOST_PORT = /^\s*[\w.-]+:\d{1,5}\s*$/;
const KEY = /^(\s*)([^=:;#\s][^=:]*?)(\s*[=:]\s*)(.*?)\s*$/;

function parseSections(text: string): { head: string[]; sections: Section[] } {
  const head: string[] = [];
  const sections: Section[] = [];
  for (const line of text.split(/\r?\n/)) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (header) sections.push({ name: (header[1] as string).trim(), lines: [] });
    else (sections.at(-1)?.lines ?? head).push(line);
  }
  return { head, sections };
}

/** Rewrites the host and port values of one section's lines for one node at `port`. */
function pointAt(lines: string[], port: number, other: () => number): string[] {
  return lines.map((line) => {
    const m = KEY.exec(line);
    if (!m || /^\s*[;#]/.test(line)) return line;
    const [, indent, key, sep, value] = m as unknown as [string, string, string, string, string];
    const k = key.toLowerCase();
    if (/host|ip|addr|direcc/.test(k) && !/port|puerto/.test(k)) return `${indent}${key}${sep}127.0.0.1`;
    if (/port|puerto/.test(k) && /^\d+$/.test(value)) return `${indent}${key}${sep}${port >= 0 ? port : other()}`;
    if (HOST_PORT.test(value)) return `${indent}${key}${sep}127.0.0.1:${port >= 0 ? port : other()}`;
    return line;
  });
}

/**
 * The template with every host made 127.0.0.1 and every port the harness's:
 * the reducer's section (a name containing `reduc`) gets `ports.reducer`;
 * numbered mapper sections (`[mapper1]`, `[nodo_mapper_2]` …) are cloned
 * from the first to one per mapper port; a single mapper section (`[mappers]`)
 * has its list values (`hosts = a, b`, `ports = 1, 2`, `h:p, h:p`, or one
 * `key = h:p` per mapper) remade for the mapper ports. Undefined when the
 * file names no mapper at all (nothing to rewrite honestly).
 */
export function rewriteConfig(template: string, ports: Ports): string | undefined {
  const { head, sections } = parseSections(template);
  const out: string[] = [...head];
  let mappersWritten = false;
  const numbered = sections.filter((s) => /map/i.test(s.name) && /\d+$/.test(s.name));
  for (const section of sections) {
    if (/reduc/i.test(section.name)) {
      out.push(`[${section.name}]`, ...pointAt(section.lines, ports.reducer, ports.other));
    } else if (numbered.includes(section)) {
      if (section !== numbered[0]) continue;
      const prefix = section.name.replace(/\d+$/, '');
      const first = Number(/\d+$/.exec(section.name)?.[0] ?? 1);
      const start = first === 0 ? 0 : 1;
      for (const [i, port] of ports.mappers.entries()) {
        out.push(`[${prefix}${start + i}]`, ...pointAt(section.lines, port, ports.other));
        if (i < ports.mappers.length - 1 && section.lines.at(-1)?.trim() !== '') out.push('');
      }
      mappersWritten = true;
    } else if (/map/i.test(section.name)) {
      const lines = rewriteMapperList(section.lines, ports.mappers);
      if (lines) {
        out.push(`[${section.name}]`, ...lines);
        mappersWritten = true;
      } else out.push(`[${section.name}]`, ...section.lines);
    } else {
      out.push(`[${section.name}]`, ...pointAt(section.lines, -1, ports.other));
    }
  }
  return mappersWritten ? out.join('\n') : undefined;
}

/** A `[mappers]` section remade for `mappers`, or undefined if it holds no list this can read. */
function rewriteMapperList(lines: string[], mappers: number[]): string[] | undefined {
  const entries = lines.map((line) => (/^\s*[;#]/.test(line) ? undefined : KEY.exec(line)));
  const perKey = entries.filter((m) => m && HOST_PORT.test(m[4] as string));
  if (perKey.length >= 1 && perKey.length === entries.filter(Boolean).length) {
    // One `key = host:port` per mapper: as many keys as mappers, named like the first.
    const first = perKey[0] as RegExpExecArray;
    const prefix = (first[2] as string).replace(/\d+$/, '');
    const start = Number(/\d+$/.exec(first[2] as string)?.[0] ?? 1) === 0 ? 0 : 1;
    const kept = lines.filter((line) => !perKey.some((m) => m?.[0] === line));
    return [...kept.filter((l) => l.trim() !== ''), ...mappers.map((port, i) => `${first[1]}${prefix}${start + i}${first[3]}127.0.0.1:${port}`), ''];
  }
  let changed = false;
  const out = lines.map((line, i) => {
    const m = entries[i];
    if (!m) return line;
    const [, indent, key, sep, value] = m as unknown as [string, string, string, string, string];
    const items = value.split(/\s*[,;]\s*|\s+/).filter(Boolean);
    const joiner = /,\s/.test(value) ? ', ' : value.includes(',') ? ',' : value.includes(';') ? ';' : ' ';
    if (items.length > 0 && items.every((item) => HOST_PORT.test(item))) {
      changed = true;
      return `${indent}${key}${sep}${mappers.map((p) => `127.0.0.1:${p}`).join(joiner)}`;
    }
    if (/port|puerto/i.test(key) && items.length > 0 && items.every((item) => /^\d+$/.test(item))) {
      changed = true;
      return `${indent}${key}${sep}${mappers.join(joiner)}`;
    }
    if (/host|ip|addr|direcc/i.test(key) && items.length > 0) {
      changed = true;
      return `${indent}${key}${sep}${mappers.map(() => '127.0.0.1').join(joiner)}`;
    }
    if (/^(count|n|cantidad|num\w*)$/i.test(key.trim()) && /^\d+$/.test(value)) return `${indent}${key}${sep}${mappers.length}`;
    return line;
  });
  return changed ? out : undefined;
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

/** This project's layout: the fallback when the target has no config.ini of its own. */
const PROJECT_LAYOUT = '[reducer]\nhost = 127.0.0.1\nport = 8000\n\n[mapper1]\nhost = 127.0.0.1\nport = 8001\n';

/** The target's own config.ini: in its folder, or beside its master's script. */
function templateConfig(ctx: Context): { file: string; text: string } | undefined {
  const scripts = commandElsewhere(ctx, 'master').filter((word) => path.isAbsolute(word) && existsSync(word) && statSync(word).isFile());
  for (const file of [path.join(ctx.target.cwd, 'config.ini'), ...scripts.map((script) => path.join(path.dirname(script), 'config.ini'))]) {
    if (existsSync(file)) return { file, text: readFileSync(file, 'utf8') };
  }
  return undefined;
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
  const template = templateConfig(ctx);
  // A port of another node (a master's) gets one of its own.
  const spare = [await ctx.port(), await ctx.port()];
  const config = rewriteConfig(template?.text ?? PROJECT_LAYOUT, { reducer: reducerPort, mappers: ports, other: () => spare.shift() ?? 0 });
  if (config === undefined) ctx.notApplicable(`the submission's config.ini (${template?.file}) names no mapper the harness can point at its ports ([mapperN] sections or a [mappers] list)`);
  if (template === undefined) ctx.t.comment(`no config.ini beside the target's scripts: written in this project's layout ([reducer], [mapper1] …)`);
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
  { ...cliRequirement({ master: [/in_file/, /out_file/], mapper: [/host/, /port/], reducer: [] }), tier: 'assignment' },
  {
    id: 'pieces-once',
    tier: 'assignment',
    title: 'Don Quijote × 3 (6.6 MB) over 4 mappers, config.ini from the submission\'s own: every piece is counted once (each region\'s marker term exact), one merged table, totals consistent',
    roles: ['master', 'mapper', 'reducer'],
    timeoutMs: 180_000,
    async run(ctx) {
      const cluster = await startCluster(ctx, { mappers: 4 });
      const run = await runMaster(ctx, cluster);
      ctx.t.equal(run.timedOut, false, `expected the master to finish within ${MASTER_TIMEOUT_MS / 1000} s; observed ${(run.durationMs / 1000).toFixed(1)} s`);
      ctx.t.equal(run.exit.code, 0, `expected the master to exit 0; observed ${run.exit.code ?? run.exit.signal}, stderr: ${run.stderr.trim().split('\n').at(-1) ?? 'empty'}`);
      await checkPiecesOnce(ctx, cluster.output);
      noTraces(ctx, [cluster.reducer, ...cluster.mappers.values()]);
      ctx.t.notMatch(run.stderr, TRACEBACK, 'the master printed no stack trace');
    },
  },
  {
    id: 'mapper-killed-counted',
    tier: 'assignment',
    title: 'a mapper SIGKILLed once the master has started: its piece is still counted, once (every region\'s marker exact)',
    roles: ['master', 'mapper', 'reducer'],
    timeoutMs: 180_000,
    async run(ctx) {
      const cluster = await startCluster(ctx, { mappers: 4 });
      const victim = cluster.mappers.get(1) as Proc;
      const master = startMaster(ctx, cluster);
      // The assignment has no option to slow a mapper: it is killed when it shows work, or after 1 s.
      await victim.until(() => (victim.stderr.length + victim.stdout.length > 0 ? true : undefined), 1000, 'output').catch(() => undefined);
      victim.signal('SIGKILL');
      await victim.exited;
      const exit = await master.waitForExit(MASTER_TIMEOUT_MS).catch(() => master.exit);
      ctx.t.equal(exit?.code, 0, `expected the master to exit 0 with a mapper gone; observed ${exit ? (exit.code ?? exit.signal) : 'still running'}, stderr: ${master.stderr.trim().split('\n').at(-1) ?? 'empty'}`);
      await checkPiecesOnce(ctx, cluster.output);
      noTraces(ctx, [master, cluster.reducer]);
    },
  },
  {
    id: 'bad-input',
    tier: 'beyond',
    features: ['format:project-config'],
    title: "a config.ini with a port that is not a number, and a missing in_file, end the master with one sentence naming the section and the file (this project's layout)",
    roles: ['master'],
    async run(ctx) {
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
    },
  },
  {
    id: 'quijote-4-mappers',
    tier: 'beyond',
    features: ['format:project-tokens'],
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
    tier: 'beyond',
    features: ['format:project-tokens', '--delay', '--copies'],
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
      if (delay.length) ctx.t.ok(busy, `expected mapper1 to hold a piece not yet delivered when killed; observed its stderr ${JSON.stringify(victim.stderr.slice(-200))}`);
      const masterExit = await master.waitForExit(MASTER_TIMEOUT_MS).catch(() => master.exit);
      ctx.t.equal(masterExit?.code, 0, `the master exits 0${masterExit?.code ? `: ${master.stderr.trim().split('\n').at(-1)}` : ''}`);
      if (copies.length) ctx.t.match(master.stderr, /reassigned/, 'the master reassigned the lost piece');
      await checkOutput(ctx, cluster.output);
      noTraces(ctx, [master, cluster.reducer]);
    },
  },
  {
    id: 'silent-mapper',
    tier: 'beyond',
    features: ['format:project-tokens', '--copies', '--task-timeout'],
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
    tier: 'beyond',
    features: ['behaviour:gives-up'],
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
