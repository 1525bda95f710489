/**
 * Nodes on loopback (127.255.255.255 is its broadcast address): in-process
 * nodes for discovery, changes, bye, expiry and garbage; the script as a
 * process for its command line, --list, and the index on a stdin line.
 */
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';
import { freePorts } from '../lib/fixtures/ports.ts';
import { type Index } from './index.ts';
import { IndexNode, type NodeOptions } from './node.ts';


async function folders(t: Tap.Test, files: Record<string, string[]>): Promise<Record<string, string>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej15-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out: Record<string, string> = {};
  for (const [name, docs] of Object.entries(files)) {
    out[name] = path.join(dir, name);
    await mkdir(out[name], { recursive: true });
    for (const doc of docs) await writeFile(path.join(out[name], doc), doc);
  }
  return out;
}

/** document → ports of its holders, sorted: what the tests compare. */
const docsOf = (index: Index) => Object.fromEntries([...index.docs].map(([doc, nodes]) => [doc, nodes.map((n) => n.replace(/^127\.0\.0\.1:/, '')).sort()]));

/** Polls `check` every 50 ms until it is true, or fails after `ms`. */
async function eventually(check: () => boolean, ms: number, what: string): Promise<number> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return performance.now() - started;
}

function options(port: number, ports: number[], folder: string, more: Partial<NodeOptions> = {}): NodeOptions {
  return { host: '127.0.0.1', port, folder, broadcast: '127.255.255.255', discoveryPorts: ports, intervalMs: 300, timeoutMs: 30_000, scanMs: 200, print: () => {}, ...more };
}

t.test('three nodes find each other, follow a new and a removed file, and drop a node at its bye', async (t) => {
  const ports = await freePorts(3);
  const dirs = await folders(t, { a: ['a.txt', 'shared.txt'], b: ['b.txt', 'shared.txt'], c: [] });
  const nodes = [new IndexNode(options(ports[0]!, ports, dirs.a!)), new IndexNode(options(ports[1]!, ports, dirs.b!)), new IndexNode(options(ports[2]!, ports, dirs.c!))];
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  for (const node of nodes) await node.start();
  const [pa, pb, pc] = ports.map(String) as [string, string, string];
  const full = { 'a.txt': [pa], 'b.txt': [pb], 'shared.txt': [pa, pb].sort() };
  for (const node of nodes) await eventually(() => node.index().nodes.length === 3 && JSON.stringify(docsOf(node.index())) === JSON.stringify(full), 10_000, `${node.label} sees the full index`);
  t.pass('every node holds the full index of three nodes');
  t.same(Object.fromEntries(nodes[2]!.index().nodes.map((n) => [n.label, n.count])), { [`127.0.0.1:${pa}`]: 2, [`127.0.0.1:${pb}`]: 2, [`127.0.0.1:${pc}`]: 0 }, 'the empty node is a node of the index');

  await writeFile(path.join(dirs.c!, 'new.txt'), 'x');
  await rm(path.join(dirs.a!, 'a.txt'));
  const changed = { 'b.txt': [pb], 'new.txt': [pc], 'shared.txt': [pa, pb].sort() };
  for (const node of nodes) await eventually(() => JSON.stringify(docsOf(node.index())) === JSON.stringify(changed), 10_000, `${node.label} sees new.txt and no a.txt`);
  t.pass('a new file and a removed one reach every node');

  await nodes[1]!.stop();
  const took = await eventually(() => nodes[0]!.index().nodes.length === 2 && nodes[2]!.index().nodes.length === 2, 5000, 'b dropped after its bye');
  t.ok(took < 5000, `b left the others' index ${took.toFixed(0)} ms after its bye, long before the 30 s timeout`);
  t.same(docsOf(nodes[0]!.index()), { 'new.txt': [pc], 'shared.txt': [pa] });
});

t.test('a node stays silent: the others drop it after the timeout; garbage datagrams change nothing', async (t) => {
  const ports = await freePorts(2);
  const dirs = await folders(t, { a: ['a.txt'], b: ['b.txt'] });
  const log: string[] = [];
  // 4 s, not less: b says hello every 0.3 s, but a busy machine can hold a process back a second or two.
  const a = new IndexNode(options(ports[0]!, ports, dirs.a!, { timeoutMs: 4000, log: (m) => log.push(m) }));
  t.teardown(() => a.stop());
  await a.start();
  // b is a process, killed with SIGKILL: no bye.
  const b = new Child(tsx('ej15/node.ts', '--port', String(ports[1]), '--discovery-ports', ports.join(','), '--folder', dirs.b!, '--interval', '0.3', '--quiet'));
  t.teardown(() => b.kill());
  await b.ready();
  await eventually(() => a.index().nodes.length === 2, 15_000, 'a sees b');

  const junk = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => junk.bind(0, '127.0.0.1', () => resolve()));
  const garbage = ['hola', '{"v":1,"type":"hello","id":"zz","port":1,"gen":0,"count":0}', '{"v":9}', '\u0000\u0001\u0002'];
  for (const g of garbage) await new Promise((resolve) => junk.send(g, ports[0]!, '127.0.0.1', resolve));
  await new Promise((resolve) => junk.send(Buffer.alloc(4000, 0x41), ports[0]!, '127.0.0.1', resolve));
  junk.close();
  await eventually(() => log.filter((m) => m.startsWith('dropped a datagram')).length === 5, 5000, 'five datagrams dropped');
  t.equal(a.index().nodes.length, 2, 'after the garbage a still knows exactly a and b');

  await b.kill();
  const took = await eventually(() => a.index().nodes.length === 1, 20_000, 'b expired');
  t.pass(`b expired ${took.toFixed(0)} ms after SIGKILL (timeout 4 s)`);
  t.match(log.join('\n'), /expired: not heard for 4 s/);
});

t.test('node.ts -h shows the assignment\'s options; mistakes exit 2 with a message', async (t) => {
  const help = await run(tsx('ej15/node.ts', '-h'));
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: node\.ts \[-h\] \[--host HOST\] \[--port PORT\] \[--folder FOLDER\] \[--broadcast ADDR\]/);
  for (const [args, message] of [
    [['--bogus'], /unrecognized arguments: --bogus/],
    [['--port', '9000'], /expected one of the discovery ports 8000-8005/],
    [['--host', '::1'], /expected an IPv4 address/],
    [['--discovery-ports', '9-1'], /argument --discovery-ports: expected ports/],
    [['--timeout', '1', '--interval', '2'], /expected more than --interval/],
  ] as const) {
    const bad = await run(tsx('ej15/node.ts', ...args));
    t.equal(bad.code, 2, `${args.join(' ')} exits 2`);
    t.match(bad.stderr, message);
    t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  }
  const missing = await run(tsx('ej15/node.ts', '--folder', '/nonexistent/ej15', '--port', '8000', '--discovery-ports', '8000'));
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot index folder \/nonexistent\/ej15: no such directory/);
});

t.test('--list prints the index of the nodes that answer and exits; a line on stdin prints the index', async (t) => {
  const ports = await freePorts(2);
  const dirs = await folders(t, { a: ['a.txt'], b: ['b.txt'] });
  const a = new Child(tsx('ej15/node.ts', '--port', String(ports[0]), '--discovery-ports', ports.join(','), '--folder', dirs.a!, '--quiet'));
  t.teardown(() => a.kill());
  await a.ready();
  const b = new IndexNode(options(ports[1]!, ports, dirs.b!));
  t.teardown(() => b.stop());
  await b.start();
  const list = await run(tsx('ej15/node.ts', '--list', '--discovery-ports', ports.join(','), '--wait', '1.5'));
  t.equal(list.code, 0, `--list exits 0 (stderr: ${list.stderr.trim().slice(0, 200)})`);
  t.match(list.stdout, /^index at \S+: 2 nodes, 2 documents$/m);
  t.match(list.stdout, new RegExp(`^  doc a\\.txt: 127\\.0\\.0\\.1:${ports[0]}$`, 'm'));
  t.match(list.stdout, new RegExp(`^  doc b\\.txt: 127\\.0\\.0\\.1:${ports[1]}$`, 'm'));
  await a.waitFor(/2 nodes, 2 documents/, 10_000);
  const before = a.stdout.split('index at').length;
  a.process.stdin?.write('\n');
  await eventually(() => a.stdout.split('index at').length === before + 1, 5000, 'a printed the index again');
  t.pass('a line on stdin printed the index once more');
});

t.test('a port another node holds: one sentence, no raw EADDRINUSE line, and a hint that fits fixed ports (not --port 0)', async (t) => {
  const [port] = await freePorts(1);
  const dirs = await folders(t, { a: ['a.txt'] });
  const args = ['--port', String(port), '--discovery-ports', `${port}`, '--folder', dirs.a!];
  const first = new Child(tsx('ej15/node.ts', ...args, '--quiet'));
  t.teardown(() => first.kill());
  await first.ready();
  const second = await run(tsx('ej15/node.ts', ...args));
  t.equal(second.code, 1, 'exits 1');
  const lines = second.stderr.trim().split('\n').filter((line) => !/ node: node 127\.0\.0\.1/.test(line));
  t.same(lines, [`node.ts: cannot listen: 127.0.0.1:${port} is already in use (another node? each node on a machine needs its own port of ${port}: pick a free one with --port)`]);
});
