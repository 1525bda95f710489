/**
 * Exercise 13: a logical ring (token ring). Role: `node` (the assignment's
 * `[--id ID] [--id_dst ID_DST]`, addresses from `config.ini`).
 *
 * Every ring is written to a temp folder: a config.ini with one `[nodoX]`
 * section per node on loopback ports the harness picked, and one message
 * file per node in the documented form (`DESTINATION<TAB>TEXT` per line).
 * Nodes are started with the assignment's `--id` and `--id_dst` plus this
 * project's `--config FILE` and `--messages FILE`; a target whose node
 * refuses those two options skips the ring requirements, saying so. Every
 * message text is unique, so that what each node prints (`from ID: TEXT`)
 * shows whether each message arrived exactly once at its destination.
 *
 * Tiers. The assignment fixes the command line and config.ini's `[nodoX]
 * host = port =` sections; each node reads its messages "from a file", whose
 * name and form it leaves to the student, as it leaves the frame and what a
 * node prints. So the assignment tier (`ring-files`) writes config.ini in
 * the documented form and the message files in the submission's own name
 * and form, learnt from its files (`mensajes_0.txt` with `1;hola`, this
 * project's `nodo0.txt` with `2<TAB>hola`), runs the nodes with `--id` and
 * `--id_dst` alone in that folder, and checks that each message's text is
 * printed by its destination and that every node exits 0 once node 0 has
 * finalised. `--config`, `--messages`, the `from ID: TEXT` lines and the
 * frame of PROTOCOL.md are this project's (beyond).
 *
 * The injection requirement speaks the frame of ej13/PROTOCOL.md from the
 * harness's own socket (the 13-byte header is written here by hand, so the
 * check does not rest on the project's codec).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Proc, describeExit, waitReady } from '../proc.ts';
import { type Context, cliRequirement, defineScenario, TRACEBACK } from '../scenario.ts';

/** How long a whole ring may take, start-up of every process included (a loaded machine starts tsx slowly). */
const RING_MS = 90_000;

interface RingPlan {
  ids: number[];
  /** messages[id] = what node id sends, in order. */
  messages: Record<number, { dst: number; text: string }[]>;
}

interface RingRun {
  procs: Map<number, Proc>;
  ports: Map<number, number>;
  dir: string;
}

async function tempDir(ctx: Context): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej13-ring-'));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes config.ini and nodoX.txt for `plan` in a temp folder, with fresh ports. */
async function writeRing(ctx: Context, plan: RingPlan): Promise<RingRun> {
  const dir = await tempDir(ctx);
  const ports = new Map<number, number>();
  for (const id of plan.ids) ports.set(id, await ctx.port());
  const config = plan.ids.map((id) => `[nodo${id}]\nhost = 127.0.0.1\nport = ${ports.get(id)}\n`).join('\n');
  await writeFile(path.join(dir, 'config.ini'), config);
  for (const id of plan.ids) {
    const lines = (plan.messages[id] ?? []).map(({ dst, text }) => `${dst}\t${text}\n`);
    await writeFile(path.join(dir, `nodo${id}.txt`), `# messages of node ${id}\n${lines.join('')}`);
  }
  return { procs: new Map(), ports, dir };
}

/** Starts node `id` of the ring in `run` (successor: the next id, wrapping). */
function startNode(ctx: Context, plan: RingPlan, run: RingRun, id: number): Proc {
  const index = plan.ids.indexOf(id);
  const successor = plan.ids[(index + 1) % plan.ids.length] as number;
  const command = [
    ...ctx.command('node'),
    '--id', String(id),
    '--id_dst', String(successor),
    '--config', path.join(run.dir, 'config.ini'),
    '--messages', path.join(run.dir, `nodo${id}.txt`),
  ];
  const proc = ctx.supervisor.start(`nodo${id}`, command, { cwd: ctx.target.cwd });
  run.procs.set(id, proc);
  return proc;
}

/** Skips the requirement when a node refused --config/--messages (this project's options). */
function skipIfOptionsRefused(ctx: Context, proc: Proc): void {
  if (proc.exit?.code === 2 && /unrecognized|unknown|--config|--messages/i.test(proc.stderr) && !/line \d+/.test(proc.stderr)) {
    ctx.skip(`the target's node does not accept --config/--messages (this project's options): ${proc.stderr.trim().split('\n').at(-1)}`);
  }
}

/** Waits for every node to exit by itself within `ms`; returns how each ended. */
async function waitAll(ctx: Context, run: RingRun, ms: number): Promise<Map<number, string>> {
  const deadline = Date.now() + ms;
  const ends = new Map<number, string>();
  for (const [id, proc] of run.procs) {
    try {
      const exit = await proc.waitForExit(Math.max(1000, deadline - Date.now()));
      ends.set(id, describeExit(exit));
    } catch {
      ends.set(id, `still running after ${ms / 1000} s (killed)`);
    }
  }
  for (const proc of run.procs.values()) skipIfOptionsRefused(ctx, proc);
  return ends;
}

/** The `from ID: TEXT` lines a node printed, as `ID:TEXT`. */
function deliveries(stdout: string): string[] {
  return [...stdout.matchAll(/^from (\d+): (.*)$/gm)].map((m) => `${m[1]}:${m[2]}`);
}

/** Checks that each node printed exactly the messages addressed to it, each once. */
function checkDeliveries(ctx: Context, plan: RingPlan, run: RingRun): void {
  for (const id of plan.ids) {
    const expected = plan.ids.flatMap((src) => (plan.messages[src] ?? []).filter((m) => m.dst === id).map((m) => `${src}:${m.text}`));
    const got = deliveries(run.procs.get(id)?.stdout ?? '');
    const missing = expected.filter((e) => !got.includes(e));
    const twice = got.filter((g, i) => got.indexOf(g) !== i);
    const stray = got.filter((g) => !expected.includes(g));
    ctx.t.same(missing, [], `node ${id}: every one of its ${expected.length} messages arrived`);
    ctx.t.same(twice, [], `node ${id}: none arrived twice`);
    ctx.t.same(stray, [], `node ${id}: it printed no message addressed to another node`);
  }
}

function checkExits(ctx: Context, ends: Map<number, string>, run: RingRun): void {
  for (const [id, end] of ends) {
    ctx.t.equal(end, 'exit 0', `node ${id} exits 0 after the finalisation frame (${end})`);
    ctx.t.notMatch(run.procs.get(id)?.stderr ?? '', TRACEBACK, `node ${id} prints no stack trace`);
  }
}

/** A message plan where every node sends to several others, texts unique to this run. */
function plan4(): RingPlan {
  const tag = randomBytes(3).toString('hex');
  const text = (src: number, n: number) => `m${src}.${n}-${tag} ${['hola', 'ñandú', 'tab\there', 'x'.repeat(300)][n % 4]}`;
  return {
    ids: [0, 1, 2, 3],
    messages: {
      0: [{ dst: 2, text: text(0, 0) }, { dst: 1, text: text(0, 1) }, { dst: 3, text: text(0, 2) }],
      1: [{ dst: 3, text: text(1, 0) }, { dst: 0, text: text(1, 1) }],
      2: [{ dst: 1, text: text(2, 0) }, { dst: 1, text: text(2, 1) }, { dst: 0, text: text(2, 2) }, { dst: 3, text: text(2, 3) }],
      3: [],
    },
  };
}

/** Opens a connection to `port`, writes `bytes`, and says whether the node closed it within `ms`. */
function inject(port: number, bytes: Uint8Array, ms: number): Promise<'closed' | 'open' | 'refused'> {
  return new Promise((resolve) => {
    let connected = false;
    const socket = net.connect(port, '127.0.0.1', () => {
      connected = true;
      socket.write(bytes);
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, ms);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(connected ? 'closed' : 'refused');
    });
  });
}

/** A frame as PROTOCOL.md lays it out: ID_SRC u32, ID_DST u32, flags u8, LEN_DAT u32, DATA. */
function frame(src: number, dst: number, flags: number, data = ''): Buffer {
  const body = Buffer.from(data, 'utf8');
  const head = Buffer.alloc(13);
  head.writeUInt32BE(src, 0);
  head.writeUInt32BE(dst, 4);
  head.writeUInt8(flags, 8);
  head.writeUInt32BE(body.length, 9);
  return Buffer.concat([head, body]);
}


// ---------------------------------------------------------------------------
// The assignment tier: the submission's own message files as the template

/** The target's command with the words that name its files made absolute, so it can run in a temp folder. */
function commandElsewhere(ctx: Context, role: string): string[] {
  return ctx.command(role).map((word) => {
    const full = path.resolve(ctx.target.cwd, word);
    return !word.startsWith('-') && existsSync(full) && statSync(full).isFile() ? full : word;
  });
}

/** How a submission names and writes its message files. */
export interface MessageFormat {
  /** The file of node `id`: the template's name with its id replaced. */
  file: (id: number) => string;
  /** What stands between the destination and the text (`;`, a tab, `: `). */
  separator: string;
  /** Where it was learnt from. */
  template: string;
}

/**
 * Learns the message files' name and form from the files in `dirs`: a file
 * whose name holds the id 0 (`mensajes_0.txt`, `nodo0.txt`) beside one with
 * 1 in its place, whose first line that is not a comment reads
 * `DESTINATION SEPARATOR TEXT`. Undefined when there is none.
 */
export function learnMessageFormat(dirs: readonly string[]): MessageFormat | undefined {
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names.sort()) {
      const m = /^(.*?\D|)0(\.(?:txt|msg|dat|csv|in)|)$/i.exec(name);
      if (!m || !names.includes(`${m[1]}1${m[2]}`)) continue;
      const file = path.join(dir, name);
      if (!statSync(file).isFile()) continue;
      const lines = readFileSync(file, 'utf8').split(/\r?\n/).filter((line) => line.trim() !== '' && !/^\s*[#;]/.test(line));
      const form = lines.map((line) => /^\s*(\d+)([\s;,:|=>-]+)(\S.*)$/.exec(line)).find(Boolean);
      if (!form) continue;
      const [prefix, suffix] = [m[1] as string, m[2] as string];
      return { file: (id) => `${prefix}${id}${suffix}`, separator: form[2] as string, template: file };
    }
  }
  return undefined;
}

/** The folders a submission's files may be in: its own, and each of its node script's. */
function submissionDirs(ctx: Context): string[] {
  const scripts = commandElsewhere(ctx, 'node').filter((word) => path.isAbsolute(word) && existsSync(word) && statSync(word).isFile());
  return [...new Set([ctx.target.cwd, ...scripts.map((script) => path.dirname(script))])];
}

export default defineScenario('ej13', 'Logical ring', [
  { ...cliRequirement({ node: [/--id ID/, /--id_dst ID_DST/] }), tier: 'assignment' },
  {
    id: 'ring-files',
    tier: 'assignment',
    title: "a ring of 4 from config.ini ([nodoX] host, port) and message files in the submission's own form, started with --id and --id_dst alone: each message reaches its destination, and every node exits 0 once node 0 finalises",
    roles: ['node'],
    timeoutMs: RING_MS + 30_000,
    async run(ctx) {
      const format = learnMessageFormat(submissionDirs(ctx));
      if (!format) return ctx.notApplicable(`no message files found beside the submission to learn their name and form from (a file with 0 in its name, e.g. mensajes_0.txt, beside one with 1, lines DESTINATION;TEXT) in ${submissionDirs(ctx).join(', ')}`);
      ctx.t.comment(`message files: ${format.file(0)} … , "DESTINATION${JSON.stringify(format.separator).slice(1, -1)}TEXT", learnt from ${format.template}`);
      const tag = randomBytes(3).toString('hex');
      const text = (src: number, n: number) => `m${src}n${n}x${tag} ${['hola', 'ñandú', 'adiós'][n % 3]}`;
      const plan: RingPlan = {
        ids: [0, 1, 2, 3],
        messages: {
          0: [{ dst: 2, text: text(0, 0) }, { dst: 1, text: text(0, 1) }],
          1: [{ dst: 3, text: text(1, 0) }, { dst: 0, text: text(1, 1) }],
          2: [{ dst: 1, text: text(2, 0) }, { dst: 3, text: text(2, 1) }],
          3: [{ dst: 0, text: text(3, 0) }],
        },
      };
      const dir = await tempDir(ctx);
      const ports = new Map<number, number>();
      for (const id of plan.ids) ports.set(id, await ctx.port());
      await writeFile(path.join(dir, 'config.ini'), plan.ids.map((id) => `[nodo${id}]\nhost = 127.0.0.1\nport = ${ports.get(id)}\n`).join('\n'));
      for (const id of plan.ids) {
        await writeFile(path.join(dir, format.file(id)), (plan.messages[id] ?? []).map(({ dst, text: body }) => `${dst}${format.separator}${body}\n`).join(''));
      }
      const run: RingRun = { procs: new Map(), ports, dir };
      // The successors first, each seen listening; node 0, which starts the token, last.
      for (const id of [1, 2, 3, 0]) {
        const successor = plan.ids[(plan.ids.indexOf(id) + 1) % plan.ids.length] as number;
        const proc = ctx.supervisor.start(`nodo${id}`, [...commandElsewhere(ctx, 'node'), '--id', String(id), '--id_dst', String(successor)], { cwd: dir });
        run.procs.set(id, proc);
        if (id !== 0) await waitReady(proc, ports.get(id) as number, 'tcp', 30_000).catch(() => ctx.t.comment(`node ${id} did not show a listening TCP port ${ports.get(id)} within 30 s (${proc.exit ? describeExit(proc.exit) : 'running'})`));
      }
      const deadline = Date.now() + RING_MS;
      const ends = new Map<number, string>();
      for (const [id, proc] of run.procs) {
        const exit = await proc.waitForExit(Math.max(1000, deadline - Date.now())).catch(() => undefined);
        ends.set(id, exit ? describeExit(exit) : `still running after ${RING_MS / 1000} s`);
      }
      for (const id of plan.ids) {
        const out = run.procs.get(id)?.stdout ?? '';
        const expected = plan.ids.flatMap((src) => (plan.messages[src] ?? []).filter((m) => m.dst === id).map((m) => m.text));
        const missing = expected.filter((body) => !out.includes(body));
        ctx.t.same(missing, [], `expected node ${id} to print the ${expected.length} messages addressed to it; observed ${missing.length} missing; stdout tail: ${JSON.stringify(out.slice(-200))}`);
      }
      for (const [id, end] of ends) {
        ctx.t.equal(end, 'exit 0', `expected node ${id} to exit 0 by itself after node 0's finalisation; observed ${end}, stderr: ${(run.procs.get(id)?.stderr ?? '').trim().slice(-200) || 'empty'}`);
        ctx.t.notMatch(run.procs.get(id)?.stderr ?? '', TRACEBACK, `node ${id} prints no stack trace`);
      }
    },
  },
  {
    id: 'ring-delivery',
    tier: 'beyond',
    features: ['--config', '--messages', 'format:project-listing'],
    title: 'a ring of 4 delivers every message exactly once to its destination, and every node exits 0 after node 0 finalises',
    roles: ['node'],
    timeoutMs: RING_MS + 30_000,
    async run(ctx) {
      const plan = plan4();
      const run = await writeRing(ctx, plan);
      // All at once, node 0 first: the others are not listening yet, so node 0
      // (and each after it) must retry until its successor is up.
      for (const id of plan.ids) startNode(ctx, plan, run, id);
      const ends = await waitAll(ctx, run, RING_MS);
      checkDeliveries(ctx, plan, run);
      checkExits(ctx, ends, run);
      const total = Object.values(plan.messages).flat().length;
      ctx.t.comment(`${total} messages around a ring of ${plan.ids.length}`);
    },
  },
  {
    id: 'malformed-frame',
    tier: 'beyond',
    features: ['--config', '--messages', 'format:project-pdu'],
    title: 'a malformed frame, garbage or a frame for an unknown id sent to a node is rejected, and the ring still completes',
    roles: ['node'],
    timeoutMs: RING_MS + 40_000,
    async run(ctx) {
      const tag = randomBytes(3).toString('hex');
      const plan: RingPlan = {
        ids: [0, 1, 2],
        messages: { 0: [{ dst: 2, text: `a-${tag}` }], 1: [{ dst: 0, text: `b-${tag}` }], 2: [{ dst: 1, text: `c-${tag}` }] },
      };
      const run = await writeRing(ctx, plan);
      // Nodes 1 and 2 first; node 0 (which starts the token) only after the injections.
      const node1 = startNode(ctx, plan, run, 1);
      startNode(ctx, plan, run, 2);
      const port1 = run.ports.get(1) as number;
      try {
        await waitReady(node1, port1, 'tcp', 30_000);
      } catch (error) {
        skipIfOptionsRefused(ctx, node1);
        throw error;
      }
      const badFlags = frame(0, 1, 0x03); // T and A together
      const reserved = frame(2, 1, 0x40, 'x'); // a reserved bit
      const garbage = Buffer.from('GET / HTTP/1.1\r\nHost: ring\r\n\r\n');
      for (const [what, bytes] of [['flags T+A', badFlags], ['a reserved flag bit', reserved], ['an HTTP request', garbage]] as const) {
        const outcome = await inject(port1, bytes, 5000);
        ctx.t.equal(outcome, 'closed', `node 1 closes a connection that sent ${what}`);
      }
      const forged = `forged-${tag}`;
      await inject(port1, frame(99, 1, 0x00, forged), 1000);
      ctx.t.equal(node1.exit, undefined, 'node 1 is still running after the injections');
      startNode(ctx, plan, run, 0);
      const ends = await waitAll(ctx, run, RING_MS);
      checkDeliveries(ctx, plan, run);
      checkExits(ctx, ends, run);
      ctx.t.notMatch(node1.stdout, forged, 'the frame from unknown node 99 was not delivered');
    },
  },
]);
