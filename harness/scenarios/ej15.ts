/**
 * Exercise 15: a distributed document index. Role: node.
 *
 * Broadcast needs a network segment (loopback has none between hosts), so
 * each requirement builds one (segment.ts): three network namespaces on one
 * bridge, 10.78.0.1–3/24, and starts a node in each with
 * `--host 10.78.0.N --port 8000 --folder DIR`, each folder with its own
 * documents. What a node printed is read as the contract's index: a block
 *
 * ```text
 * index at …: 3 nodes, 4 documents
 *   node 10.78.0.1:8000 (2 documents)
 *   doc shared.txt: 10.78.0.1:8000, 10.78.0.2:8000
 * end of index
 * ```
 *
 * printed whenever the index changes; the last complete block is the node's
 * current view. Bounds are generous (the machine is shared): they check that
 * things happen, never how fast.
 *
 * @module
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Proc } from '../proc.ts';
import { type Context, cliRequirement, defineScenario, PEERS, type Requirement, TRACEBACK } from '../scenario.ts';
import { createSegment, type Segment, segmentSupport } from '../segment.ts';

const PORT = 8000;
/** How long three nodes may take to start and find each other. */
const DISCOVERY_MS = 40_000;
/** How long a change may take to reach the other nodes. */
const CHANGE_MS = 20_000;
/** How long a silent node may stay in the others' index (the project's timeout is 8 s). */
const EXPIRY_MS = 45_000;
/** A departure announced with a bye: sooner than any expiry timeout can explain. */
const BYE_MS = 5_000;

/** The index as one node printed it last. */
export interface PrintedIndex {
  nodes: string[];
  docs: Map<string, string[]>;
}

/** The last complete index block in `stdout`, or undefined if there is none yet. */
export function lastIndex(stdout: string): PrintedIndex | undefined {
  let current: PrintedIndex | undefined;
  let last: PrintedIndex | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('index at ')) current = { nodes: [], docs: new Map() };
    else if (line === 'end of index' && current) {
      current.nodes.sort();
      last = current;
      current = undefined;
    } else if (current) {
      const node = /^ {2}node (\S+)/.exec(line);
      if (node) current.nodes.push(node[1] as string);
      const doc = /^ {2}doc (.+): (\S.*)$/.exec(line);
      if (doc) current.docs.set(doc[1] as string, (doc[2] as string).split(', ').sort());
    }
  }
  return last;
}

function describe(index: PrintedIndex | undefined): string {
  if (!index) return 'no index printed yet';
  return `nodes ${index.nodes.join(' ') || 'none'}; ${[...index.docs].map(([d, n]) => `${d} @ ${n.join(',')}`).join('; ') || 'no documents'}`;
}

/** What the index should be: document → holders; the nodes are given apart (a node may hold nothing). */
type Expected = { nodes: string[]; docs: Record<string, string[]> };

function matches(index: PrintedIndex | undefined, expected: Expected): boolean {
  if (!index) return false;
  const docs = Object.entries(expected.docs);
  return (
    JSON.stringify(index.nodes) === JSON.stringify([...expected.nodes].sort()) &&
    index.docs.size === docs.length &&
    docs.every(([doc, holders]) => JSON.stringify(index.docs.get(doc)) === JSON.stringify([...holders].sort()))
  );
}

/** Waits until `proc`'s last index matches `expected`; returns the ms it took, or a failure message. */
async function waitForIndex(proc: Proc, expected: Expected, timeoutMs: number): Promise<number | string> {
  const started = performance.now();
  try {
    await proc.until(() => (matches(lastIndex(proc.stdout), expected) ? true : undefined), timeoutMs, 'index as expected');
    return performance.now() - started;
  } catch (error) {
    return `${(error as Error).message.split(' (')[0]}; last index: ${describe(lastIndex(proc.stdout))}`;
  }
}

/** Checks that every proc reaches `expected` within `timeoutMs`; returns the slowest time, or undefined on failure. */
async function expectIndex(ctx: Context, procs: { proc: Proc; label: string }[], expected: Expected, timeoutMs: number, what: string): Promise<number | undefined> {
  const results = await Promise.all(procs.map(({ proc }) => waitForIndex(proc, expected, timeoutMs)));
  let slowest = 0;
  let ok = true;
  for (const [i, result] of results.entries()) {
    const label = procs[i]?.label ?? '?';
    if (typeof result === 'number') {
      slowest = Math.max(slowest, result);
      ctx.t.pass(`${label}: ${what} (${(result / 1000).toFixed(1)} s)`);
    } else {
      ok = false;
      ctx.t.fail(`${label}: ${what}: ${result}`);
    }
  }
  return ok ? slowest : undefined;
}

/** Three nodes on a segment, each with its own folder. */
interface World {
  segment: Segment;
  nodes: { proc: Proc; label: string; dir: string }[];
  expected: Expected;
}

const FILES = [['a.txt', 'shared.txt'], ['b.txt', 'shared.txt'], ['c.txt']];

/**
 * Builds the segment, starts a node on each host, waits until every node
 * prints the full index, runs `body`, and removes everything, also on failure.
 */
async function withNodes(ctx: Context, body: (world: World) => Promise<void>): Promise<void> {
  const reason = await segmentSupport();
  if (reason) ctx.skip(reason);
  const root = await mkdtemp(path.join(tmpdir(), 'ej15-segment-'));
  let segment: Segment | undefined;
  const nodes: World['nodes'] = [];
  try {
    segment = await createSegment(3);
    for (const [i, host] of segment.hosts.entries()) {
      const dir = path.join(root, `node${i + 1}`);
      await mkdir(dir);
      for (const file of FILES[i] ?? []) await writeFile(path.join(dir, file), `${file} on ${host.address}\n`);
      const seg = segment;
      const server = await ctx.server('node', 'tcp', ['--folder', dir], { host: host.address, port: PORT, wrap: (command) => seg.exec(i, command), readyTimeoutMs: 30_000 });
      nodes.push({ proc: server.proc, label: `${host.address}:${PORT}`, dir });
    }
    const [a, b, c] = nodes.map((n) => n.label) as [string, string, string];
    const expected: Expected = { nodes: [a, b, c], docs: { 'a.txt': [a], 'b.txt': [b], 'c.txt': [c], 'shared.txt': [a, b] } };
    const found = await expectIndex(ctx, nodes, expected, DISCOVERY_MS, 'prints the full index of the three nodes');
    if (found === undefined) return;
    await body({ segment, nodes, expected });
    for (const node of nodes) ctx.t.notMatch(node.proc.stderr, TRACEBACK, `${node.label} printed no stack trace`);
  } finally {
    await Promise.all(nodes.map((node) => node.proc.stop({ graceMs: 3000 })));
    await segment?.destroy();
    await rm(root, { recursive: true, force: true });
  }
}

/** A program run on host `i` of the segment that sends garbage to port 8000: broadcast and unicast. */
const GARBAGE = `
const s = require('node:dgram').createSocket('udp4');
const junk = [
  Buffer.from('hola'),
  Buffer.from('{"v":1,"type":"hello"'),
  Buffer.from('{"v":99,"type":"hello","id":"0123456789abcdef","port":8000,"gen":5,"count":1}'),
  Buffer.from('{"v":1,"type":"bye","id":"not-an-id","port":8000}'),
  Buffer.alloc(1400, 0xff),
  Buffer.alloc(0),
];
const to = process.argv.slice(1);
s.bind(0, () => {
  s.setBroadcast(true);
  let left = junk.length * to.length;
  for (const b of junk) for (const a of to) s.send(b, ${PORT}, a, () => { if (--left === 0) { s.close(); console.log('sent'); } });
});
`;

const segmentRequirement = (req: Omit<Requirement, 'roles' | 'peers' | 'root'>): Requirement => ({ roles: ['node'], peers: [PEERS.ip], root: true, timeoutMs: 150_000, ...req });

export default defineScenario('ej15', 'Distributed document index over UDP broadcast', [
  cliRequirement({ node: [/--host HOST/, /--port PORT/, /--folder FOLDER/] }),
  segmentRequirement({
    id: 'discover',
    title: 'three nodes on three hosts of one segment find each other by broadcast and each prints the full index',
    async run(ctx) {
      await withNodes(ctx, async ({ nodes }) => {
        for (const node of nodes) ctx.t.equal(node.proc.exit, undefined, `${node.label} is still running`);
      });
    },
  }),
  segmentRequirement({
    id: 'changes',
    title: "a file added to one folder, and one removed from another, show in the other nodes' index",
    async run(ctx) {
      await withNodes(ctx, async ({ nodes, expected }) => {
        const [a, b, c] = nodes as [World['nodes'][0], World['nodes'][0], World['nodes'][0]];
        await writeFile(path.join(a.dir, 'new.txt'), 'new\n');
        await rm(path.join(c.dir, 'c.txt'));
        const docs: Record<string, string[]> = { ...expected.docs, 'new.txt': [a.label] };
        delete docs['c.txt'];
        await expectIndex(ctx, [b, c, a], { nodes: expected.nodes, docs }, CHANGE_MS, 'shows new.txt on the first node and c.txt nowhere');
      });
    },
  }),
  segmentRequirement({
    id: 'sigkill-expires',
    title: "a node killed with SIGKILL (no goodbye) leaves the others' index after their timeout",
    async run(ctx) {
      await withNodes(ctx, async ({ nodes, expected }) => {
        const [a, b, c] = nodes as [World['nodes'][0], World['nodes'][0], World['nodes'][0]];
        c.proc.signal('SIGKILL');
        await c.proc.waitForExit(5000).catch(() => undefined);
        const took = await expectIndex(ctx, [a, b], { nodes: [a.label, b.label], docs: { 'a.txt': [a.label], 'b.txt': [b.label], 'shared.txt': expected.docs['shared.txt'] ?? [] } }, EXPIRY_MS, `drops ${c.label} after it was killed`);
        if (took !== undefined) ctx.t.comment(`${c.label} expired ${(took / 1000).toFixed(1)} s after SIGKILL`);
      });
    },
  }),
  segmentRequirement({
    id: 'sigint-bye',
    title: "a node stopped with SIGINT announces its departure: it leaves the others' index at once, and exits cleanly",
    async run(ctx) {
      await withNodes(ctx, async ({ nodes }) => {
        const [a, b, c] = nodes as [World['nodes'][0], World['nodes'][0], World['nodes'][0]];
        b.proc.signal('SIGINT');
        const expected = { nodes: [a.label, c.label], docs: { 'a.txt': [a.label], 'c.txt': [c.label], 'shared.txt': [a.label] } };
        const took = await expectIndex(ctx, [a, c], expected, BYE_MS, `drops ${b.label} within ${BYE_MS / 1000} s of its SIGINT, before any silence timeout could`);
        if (took !== undefined) ctx.t.comment(`${b.label} left the others' index ${(took / 1000).toFixed(2)} s after SIGINT`);
        const exit = await b.proc.waitForExit(5000).catch(() => undefined);
        ctx.t.ok(exit && (exit.code === 0 || exit.code === 130), `${b.label} exits 0 or 130 within 5 s of SIGINT (was ${exit ? (exit.code ?? exit.signal) : 'still running'})`);
      });
    },
  }),
  segmentRequirement({
    id: 'garbage',
    title: 'garbage datagrams (not JSON, truncated, wrong version, bad id, 1400 bytes of 0xff, empty) are ignored and the nodes work on',
    async run(ctx) {
      await withNodes(ctx, async ({ segment, nodes, expected }) => {
        const targets = [segment.broadcast, ...segment.hosts.map((h) => h.address)];
        const sent = await ctx.exec('garbage', segment.exec(0, [process.execPath, '-e', GARBAGE, ...targets]), { timeoutMs: 15_000 });
        ctx.t.equal(sent.stdout.trim(), 'sent', `the garbage was sent to ${targets.join(', ')} port ${PORT}`);
        await new Promise((resolve) => setTimeout(resolve, 1500));
        for (const node of nodes) {
          ctx.t.equal(node.proc.exit, undefined, `${node.label} is still running`);
          ctx.t.ok(matches(lastIndex(node.proc.stdout), expected), `${node.label}'s index is unchanged: ${describe(lastIndex(node.proc.stdout))}`);
        }
        const [a] = nodes as [World['nodes'][0]];
        await writeFile(path.join(a.dir, 'after.txt'), 'after\n');
        await expectIndex(ctx, nodes, { nodes: expected.nodes, docs: { ...expected.docs, 'after.txt': [a.label] } }, CHANGE_MS, 'still follows changes after the garbage');
      });
    },
  }),
  segmentRequirement({
    id: 'list',
    title: 'node --list, started on one host of the segment, prints the index of the three nodes and exits',
    async run(ctx) {
      await withNodes(ctx, async ({ segment, expected }) => {
        const host = segment.hosts[2]?.address ?? '';
        const listed = await ctx.clientWrapped('node', ['--host', host, '--list'], (command) => segment.exec(2, command), { timeoutMs: 30_000 });
        ctx.t.equal(listed.exit.code, 0, `--list exits 0 (stderr: ${listed.stderr.trim().slice(0, 200) || 'empty'})`);
        ctx.t.ok(matches(lastIndex(listed.stdout), expected), `--list printed the full index: ${describe(lastIndex(listed.stdout))}`);
      });
    },
  }),
]);
