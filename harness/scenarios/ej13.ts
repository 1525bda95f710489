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
 * The injection requirement speaks the frame of ej13/PROTOCOL.md from the
 * harness's own socket (the 13-byte header is written here by hand, so the
 * check does not rest on the project's codec).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
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

export default defineScenario('ej13', 'Logical ring', [
  cliRequirement({ node: [/--id ID/, /--id_dst ID_DST/] }),
  {
    id: 'ring-delivery',
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
