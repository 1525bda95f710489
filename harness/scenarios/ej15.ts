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
 * Tiers. The assignment fixes the command line, the ports (8000–8005) and
 * discovery by a `SOCK_DGRAM` socket with `SO_BROADCAST`; it leaves the
 * listing's form, the messages and any TCP port to the student. So the
 * assignment tier is: a node's broadcast reaches another host of the segment
 * (`broadcast`), and each node's output comes to name every document the
 * other nodes hold (`exchange`), the listing printed on its own or asked for
 * as the manifest declares (`[ej15.declare] listing = stdin:COMMAND`). Every
 * check that reads the block above (`format:project-listing`), speaks this
 * project's datagrams (`format:project-pdu`) or passes its options is beyond.
 *
 * @module
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isPortBound, type Proc } from '../proc.ts';
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

/** Every complete index block printed in `stdout` since offset `from`: a change that was undone at once still shows. */
function indexesSince(stdout: string, from: number): PrintedIndex[] {
  const blocks: PrintedIndex[] = [];
  for (const block of stdout.slice(from).split(/(?=^index at )/m)) {
    const index = lastIndex(block);
    if (index) blocks.push(index);
  }
  return blocks;
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

/** Options of {@link withNodes}. */
interface WorldOptions {
  /** Hosts on the segment; nodes run on the first three, the rest are free for a requirement's own programs. */
  hosts?: number;
  /** More arguments for every node; `(root) => [...]` to name files in the world's temporary folder. */
  args?: (root: string) => Promise<string[]>;
}

/**
 * Builds the segment, starts a node on each of its first three hosts, waits
 * until every node prints the full index, runs `body`, and removes
 * everything, also on failure.
 */
async function withNodes(ctx: Context, body: (world: World) => Promise<void>, { hosts = 3, args }: WorldOptions = {}): Promise<void> {
  const reason = await segmentSupport();
  if (reason) ctx.skip(reason);
  const root = await mkdtemp(path.join(tmpdir(), 'ej15-segment-'));
  let segment: Segment | undefined;
  const nodes: World['nodes'] = [];
  try {
    segment = await createSegment(hosts);
    const extra = args ? await args(root) : [];
    for (const [i, host] of segment.hosts.slice(0, 3).entries()) {
      const dir = path.join(root, `node${i + 1}`);
      await mkdir(dir);
      for (const file of FILES[i] ?? []) await writeFile(path.join(dir, file), `${file} on ${host.address}\n`);
      const seg = segment;
      const server = await ctx.server('node', 'tcp', ['--folder', dir, ...extra], { host: host.address, port: PORT, wrap: (command) => seg.exec(i, command), readyTimeoutMs: 30_000 });
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

/**
 * A forger speaking this project's protocol, run on host `i` of the segment:
 * it listens on port 8001 (a discovery port: every node's hellos reach it,
 * also on 10.78.0.2's own host) until it hears a hello of 10.78.0.2, then
 * sends to the broadcast address a bye naming 10.78.0.2's id and port 8000,
 * from port 8000 when that is free on its host and from a port of its own;
 * with `all`, also from port 8000 an unsigned hello of its own (its list
 * server offers evil.txt), one with a made-up mac, and 10.78.0.2's hello
 * replayed byte for byte. Prints `id ID`, `sent`, then, after 3 s,
 * `fetched N`: how many nodes asked it for its list.
 */
const FORGER = `
const dgram = require('node:dgram');
const net = require('node:net');
const [broadcast, mode] = process.argv.slice(1);
const EVIL = 'eeeeeeeeeeeeeeee';
let fetched = 0;
const tcp = net.createServer((c) => { fetched++; c.on('error', () => {}); c.end(JSON.stringify({ v: 1, type: 'list', id: EVIL, gen: 0, docs: ['evil.txt'] }) + '\\n'); });
tcp.on('error', () => {});
tcp.listen(${PORT}, '0.0.0.0');
const bound = (port) => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  s.once('error', () => resolve(undefined));
  s.bind(port, () => { s.setBroadcast(true); resolve(s); });
});
(async () => {
  const listen = await bound(${PORT + 1});
  const own = await bound(${PORT});
  const other = await bound(0);
  if (!listen || !other) { console.log('cannot bind'); process.exit(0); }
  let heard = false;
  const give = setTimeout(() => { console.log('no hello from 10.78.0.2'); process.exit(0); }, 20000);
  listen.on('message', (bytes, from) => {
    if (from.address !== '10.78.0.2' || heard) return;
    let m;
    try { m = JSON.parse(bytes.toString()); } catch { return; }
    if (m.type !== 'hello' || typeof m.id !== 'string') return;
    clearTimeout(give);
    heard = true;
    console.log('id ' + m.id);
    const bye = { v: 1, type: 'bye', id: m.id, port: ${PORT} };
    const out = [[other, bye]];
    if (own) out.push([own, bye]);
    if (own && mode === 'all') {
      out.push([own, { v: 1, type: 'hello', id: EVIL, port: ${PORT}, gen: 0, count: 1 }]);
      out.push([own, { v: 1, type: 'hello', id: EVIL, port: ${PORT}, gen: 0, count: 1, ts: Date.now(), mac: '0'.repeat(64) }]);
      out.push([own, bytes]);
    }
    let left = out.length;
    for (const [socket, message] of out) socket.send(Buffer.isBuffer(message) ? message : JSON.stringify(message), ${PORT}, broadcast, () => {
      if (--left > 0) return;
      console.log('sent ' + out.length + ' datagrams' + (own ? '' : ', none from port ${PORT} (taken on this host)'));
      setTimeout(() => { console.log('fetched ' + fetched); process.exit(0); }, 3000);
    });
  });
})();
`;

/** Runs {@link FORGER} on host `i`; returns what it printed, or fails the requirement when it saw no hello. */
async function forge(ctx: Context, segment: Segment, i: number, mode: 'bye' | 'all'): Promise<{ id: string; fetched: number; sent: string } | undefined> {
  const run = await ctx.exec('forger', segment.exec(i, [process.execPath, '-e', FORGER, segment.broadcast, mode]), { timeoutMs: 40_000 });
  const id = /^id (\S+)$/m.exec(run.stdout)?.[1];
  const sent = /^sent (.*)$/m.exec(run.stdout)?.[1];
  const fetched = /^fetched (\d+)$/m.exec(run.stdout)?.[1];
  if (!id || !sent || fetched === undefined) {
    ctx.t.fail(`the forger on ${segment.hosts[i]?.address} heard no hello of this project's protocol from 10.78.0.2, or did not finish: ${run.stdout.trim() || run.stderr.trim().slice(0, 300) || 'no output'}`);
    return undefined;
  }
  return { id, fetched: Number(fetched), sent };
}


/** The ports the assignment allows; a node broadcasts to one or more of them. */
const ALLOWED_PORTS = [8000, 8001, 8002, 8003, 8004, 8005];

/**
 * A node started with the assignment's command line alone on host `i`:
 * `--host 10.78.0.N --port 8000 --folder DIR`, stdin kept open as a terminal's
 * would be. Ready when it printed a `listening on` line or has held port 8000
 * (TCP or UDP: the assignment says only SOCK_DGRAM) for a second.
 */
async function startAssignmentNode(ctx: Context, segment: Segment, i: number, dir: string, { port = PORT, withHost = true } = {}): Promise<Proc> {
  const host = segment.hosts[i];
  if (!host) throw new RangeError(`No host ${i} on this segment`);
  const where = withHost ? ['--host', host.address] : [];
  const command = [...ctx.command('node'), ...where, '--port', String(port), '--folder', dir];
  const proc = ctx.supervisor.start('node', segment.exec(i, command), { cwd: ctx.target.cwd, stdin: true });
  let boundSince: number | undefined;
  const poll = setInterval(() => {
    void Promise.all([isPortBound(port, 'tcp', proc.pid), isPortBound(port, 'udp', proc.pid)]).then(([tcp, udp]) => {
      if (!tcp && !udp) boundSince = undefined;
      else boundSince ??= performance.now();
    });
  }, 100);
  try {
    await proc.until(
      () => (/^listening on /m.test(proc.stdout) || (boundSince !== undefined && performance.now() - boundSince >= 1000) ? true : undefined),
      30_000,
      `port ${port} bound on ${host.address} (TCP or UDP), or a "listening on" line`,
    );
  } catch {
    const exit = proc.exit ? `exited ${proc.exit.code ?? proc.exit.signal}` : 'still running';
    ctx.t.fail(`expected the node (${command.slice(-6).join(' ')}) to bind port ${port} within 30 s; observed: ${exit}, stderr: ${proc.stderr.trim().slice(-300) || 'empty'}`);
  } finally {
    clearInterval(poll);
  }
  return proc;
}

/**
 * Waits until each node's output names every document that only the other
 * nodes hold (`docs[i]`: node i's), asking for the listing on stdin every
 * 2 s when the manifest says how; checks it, or ends the requirement n/a
 * when no node printed any such name and there is no declared way to ask.
 */
async function checkExchange(ctx: Context, procs: Proc[], docs: string[][], labels: string[]): Promise<void> {
  const ask = listingCommand(ctx);
  const timer = ask === undefined ? undefined : setInterval(() => { for (const proc of procs) if (!proc.exit) proc.write(`${ask}\n`, { keepOpen: true }); }, 2000);
  try {
    const others = docs.map((own, i) => [...new Set(docs.filter((_, j) => j !== i).flat())].filter((doc) => !own.includes(doc)));
    const named = (i: number) => (others[i] ?? []).filter((doc) => (procs[i]?.stdout ?? '').includes(doc));
    await Promise.all(procs.map((proc, i) => proc.until(() => (named(i).length === others[i]?.length ? true : undefined), DISCOVERY_MS, "the other nodes' documents").catch(() => undefined)));
    if (procs.every((_, i) => named(i).length === 0) && ask === undefined) {
      ctx.notApplicable(`no node printed any other node's document within ${DISCOVERY_MS / 1000} s, and the manifest declares no way to ask for the listing ([ej15.declare] listing = stdin:COMMAND)`);
    }
    for (const [i, proc] of procs.entries()) {
      ctx.t.same(named(i), others[i], `expected ${labels[i]}'s output to name ${others[i]?.join(', ')} within ${DISCOVERY_MS / 1000} s; observed ${named(i).join(', ') || 'none of them'}; stdout tail: ${JSON.stringify(proc.stdout.slice(-200))}`);
      ctx.t.equal(proc.exit, undefined, `${labels[i]} is still running`);
      ctx.t.notMatch(proc.stderr, TRACEBACK, `${labels[i]} printed no stack trace`);
    }
  } finally {
    clearInterval(timer);
  }
}

/**
 * Listens on every allowed port of host `i` (bound to 0.0.0.0, so broadcasts
 * arrive) and records who sent what. The host runs nothing else and sends
 * nothing, so no node knows its address: what arrives was broadcast.
 */
const LISTENER = `
const dgram = require('node:dgram');
const ports = ${JSON.stringify(ALLOWED_PORTS)};
let bound = 0;
for (const port of ports) {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  s.on('error', (e) => console.log('error ' + port + ' ' + e.code));
  s.on('message', (m, r) => console.log('from ' + r.address + ':' + r.port + ' to ' + port + ' ' + m.length + ' bytes'));
  s.bind(port, '0.0.0.0', () => { if (++bound === ports.length) console.log('bound'); });
}
setTimeout(() => process.exit(0), Number(process.argv[1])).unref();
`;

/** The documents each of the three nodes holds, the assignment tier's world. */
const DOCS = [['alfa.txt', 'compartido.txt'], ['beta.txt', 'compartido.txt'], ['gamma.txt']];

/** What line on stdin asks a node for its listing, if the manifest declares one (`listing = stdin:COMMAND`). */
function listingCommand(ctx: Context): string | undefined {
  const declared = ctx.declared('listing');
  if (declared === undefined || declared === 'stdout') return undefined;
  const command = /^stdin:(.*)$/.exec(declared)?.[1];
  if (command === undefined) ctx.notApplicable(`[ej15.declare] listing = ${declared} is not understood (expected stdout or stdin:COMMAND)`);
  return command;
}

const segmentRequirement = (req: Omit<Requirement, 'roles' | 'peers' | 'root'>): Requirement => ({ roles: ['node'], peers: [PEERS.ip], root: true, timeoutMs: 150_000, ...req });

export default defineScenario('ej15', 'Distributed document index over UDP broadcast', [
  { ...cliRequirement({ node: [/--host HOST/, /--port PORT/, /--folder FOLDER/] }), tier: 'assignment' },
  segmentRequirement({
    id: 'example',
    tier: 'assignment',
    title: "the assignment's example, two nodes on one machine (--port 8000 --folder Folder/, --port 8001 --folder Folder2/, default host): each one's listing comes to name the other's documents",
    async run(ctx) {
      const reason = await segmentSupport();
      if (reason) ctx.skip(reason);
      // A namespace of its own: its loopback and its ports 8000-8001 are this requirement's alone.
      const root = await mkdtemp(path.join(tmpdir(), 'ej15-example-'));
      const machine = await createSegment(1);
      const procs: Proc[] = [];
      const docs = [['alfa.txt', 'compartido.txt'], ['beta.txt', 'compartido.txt']];
      try {
        for (const [i, folder] of ['Folder', 'Folder2'].entries()) {
          const dir = path.join(root, folder);
          await mkdir(dir);
          for (const doc of docs[i] ?? []) await writeFile(path.join(dir, doc), `${doc} in ${folder}\n`);
          procs.push(await startAssignmentNode(ctx, machine, 0, `${dir}/`, { port: PORT + i, withHost: false }));
        }
        await checkExchange(ctx, procs, docs, ['the node on port 8000', 'the node on port 8001']);
      } finally {
        await Promise.all(procs.map((proc) => proc.stop({ graceMs: 3000 })));
        await machine.destroy();
        await rm(root, { recursive: true, force: true });
      }
    },
  }),
  segmentRequirement({
    id: 'broadcast',
    tier: 'assignment',
    title: 'a node started as the assignment shows (--host, --port 8000, --folder) sends UDP broadcasts that reach another host of the segment on a port of 8000-8005',
    async run(ctx) {
      const reason = await segmentSupport();
      if (reason) ctx.skip(reason);
      const root = await mkdtemp(path.join(tmpdir(), 'ej15-broadcast-'));
      const segment = await createSegment(2);
      let node: Proc | undefined;
      try {
        const listener = ctx.spawn('listener', segment.exec(1, [process.execPath, '-e', LISTENER, '60000']));
        await listener.until(() => (/^bound$/m.test(listener.stdout) ? true : undefined), 10_000, 'the listener bound on 10.78.0.2');
        await writeFile(path.join(root, 'alfa.txt'), 'alfa\n');
        node = await startAssignmentNode(ctx, segment, 0, root);
        const heardFrom = /^from 10\.78\.0\.1:(\d+) to (\d+) (\d+) bytes$/gm;
        await listener.until(() => (/^from 10\.78\.0\.1:/m.test(listener.stdout) ? true : undefined), 25_000, 'a datagram from 10.78.0.1').catch(() => undefined);
        const from = [...listener.stdout.matchAll(heardFrom)];
        ctx.t.ok(from.length > 0, `expected a datagram from 10.78.0.1 at 10.78.0.2 (which sent nothing) within 25 s of the node's start, on a port of ${ALLOWED_PORTS[0]}-${ALLOWED_PORTS.at(-1)}; observed none (listener: ${listener.stdout.trim().slice(0, 200)}; node ${node.exit ? `exited ${node.exit.code ?? node.exit.signal}` : 'running'}, stderr: ${node.stderr.trim().slice(-300) || 'empty'})`);
        if (from.length > 0) ctx.t.comment(`heard ${from.length} broadcasts, to ports ${[...new Set(from.map((m) => m[2]))].join(', ')}`);
        await listener.stop();
        ctx.t.equal(node.exit, undefined, 'the node is still running while it broadcasts');
        ctx.t.notMatch(node.stderr, TRACEBACK, 'the node printed no stack trace');
      } finally {
        await node?.stop({ graceMs: 3000 });
        await segment.destroy();
        await rm(root, { recursive: true, force: true });
      }
    },
  }),
  segmentRequirement({
    id: 'exchange',
    tier: 'assignment',
    title: "three nodes started as the assignment shows, on three hosts of one segment: each one's listing comes to name every document the other two hold",
    async run(ctx) {
      const reason = await segmentSupport();
      if (reason) ctx.skip(reason);
      const root = await mkdtemp(path.join(tmpdir(), 'ej15-exchange-'));
      const segment = await createSegment(3);
      const procs: Proc[] = [];
      try {
        for (const [i, docs] of DOCS.entries()) {
          const dir = path.join(root, `node${i + 1}`);
          await mkdir(dir);
          for (const doc of docs) await writeFile(path.join(dir, doc), `${doc} on node ${i + 1}\n`);
          procs.push(await startAssignmentNode(ctx, segment, i, dir));
        }
        await checkExchange(ctx, procs, DOCS, segment.hosts.map((h) => h.address));
      } finally {
        await Promise.all(procs.map((proc) => proc.stop({ graceMs: 3000 })));
        await segment.destroy();
        await rm(root, { recursive: true, force: true });
      }
    },
  }),
  segmentRequirement({
    id: 'discover',
    tier: 'beyond',
    features: ['format:project-listing'],
    title: 'three nodes on three hosts of one segment find each other by broadcast and each prints the full index',
    async run(ctx) {
      await withNodes(ctx, async ({ nodes }) => {
        for (const node of nodes) ctx.t.equal(node.proc.exit, undefined, `${node.label} is still running`);
      });
    },
  }),
  segmentRequirement({
    id: 'changes',
    tier: 'beyond',
    features: ['format:project-listing'],
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
    tier: 'beyond',
    features: ['format:project-listing'],
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
    tier: 'beyond',
    features: ['format:project-listing'],
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
    tier: 'beyond',
    features: ['format:project-listing'],
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
    id: 'forged-bye',
    tier: 'beyond',
    features: ['format:project-pdu', 'format:project-listing'],
    title: "a bye naming a node's id, sent by another host of the segment, does not remove that node from the others' index (this project's protocol)",
    async run(ctx) {
      await withNodes(
        ctx,
        async ({ segment, nodes, expected }) => {
          // On 10.78.0.2's own host (same address, another port), then on 10.78.0.4 (another address, port 8000).
          for (const i of [1, 3]) {
            const marks = nodes.map((node) => node.proc.stdout.length);
            const forged = await forge(ctx, segment, i, 'bye');
            if (!forged) return;
            ctx.t.comment(`${segment.hosts[i]?.address} sent ${forged.sent}: byes naming ${forged.id} (10.78.0.2's id)`);
            await new Promise((resolve) => setTimeout(resolve, 1000));
            for (const n of [0, 2]) {
              const node = nodes[n];
              if (!node) continue;
              // 10.78.0.2's next hello would bring it back within seconds: every index printed since counts, not only the last.
              const printed = indexesSince(node.proc.stdout, marks[n] ?? 0);
              const bad = printed.find((index) => !matches(index, expected));
              ctx.t.ok(!bad && matches(lastIndex(node.proc.stdout), expected), `${node.label} kept 10.78.0.2:${PORT} throughout the byes from ${segment.hosts[i]?.address} (${printed.length} indexes printed since): ${describe(bad ?? lastIndex(node.proc.stdout))}`);
            }
          }
        },
        { hosts: 4 },
      );
    },
  }),
  segmentRequirement({
    id: 'key',
    tier: 'beyond',
    features: ['--key-file', 'format:project-pdu', 'format:project-listing'],
    title: 'with --key-file, nodes sharing the key find each other, and an unsigned hello, a made-up mac, a forged bye and a replayed hello from another host are not believed (beyond the assignment)',
    async run(ctx) {
      const help = await ctx.client('node', ['-h']);
      if (!help.stdout.includes('--key-file')) ctx.skip("the target's node has no --key-file option (the assignment's discovery is unauthenticated)");
      const args = async (root: string) => {
        const file = path.join(root, 'segment.key');
        await writeFile(file, 'a key shared by the three nodes, for the test\n', { mode: 0o600 });
        return ['--key-file', file];
      };
      await withNodes(
        ctx,
        async ({ segment, nodes, expected }) => {
          const marks = nodes.map((node) => node.proc.stdout.length);
          const forged = await forge(ctx, segment, 3, 'all');
          if (!forged) return;
          ctx.t.match(forged.sent, /^5 datagrams$/, 'the forger sent two byes, two hellos of its own and the replay');
          ctx.t.equal(forged.fetched, 0, 'no node asked the forger (10.78.0.4) for its list');
          await new Promise((resolve) => setTimeout(resolve, 1000));
          for (const [n, node] of nodes.entries()) {
            const bad = indexesSince(node.proc.stdout, marks[n] ?? 0).find((index) => !matches(index, expected));
            ctx.t.ok(!bad && matches(lastIndex(node.proc.stdout), expected), `${node.label}'s index stayed unchanged (no evil.txt, no 10.78.0.4, 10.78.0.2 kept): ${describe(bad ?? lastIndex(node.proc.stdout))}`);
          }
        },
        { hosts: 4, args },
      );
    },
  }),
  segmentRequirement({
    id: 'list',
    tier: 'beyond',
    features: ['--list', 'format:project-listing'],
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
