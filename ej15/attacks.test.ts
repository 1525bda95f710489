/**
 * What a hostile host of the segment can send a node, on loopback: forged
 * announcements (raw `node:dgram` sockets on 127.0.0.x), forged byes,
 * announcements naming a port other than their source, more peers than the
 * cap, an oversized list, and list-port clients that send bytes and never
 * read (the descriptor count of a spawned node, from /proc).
 */
import dgram from 'node:dgram';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';
import { freePorts } from '../lib/fixtures/ports.ts';
import { IndexNode, fetchList, type NodeOptions } from './node.ts';
import { MAX_LIST_BYTES } from './protocol.ts';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const EVIL = 'eeeeeeeeeeeeeeee';


async function folder(t: Tap.Test, docs: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej15-attack-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const doc of docs) await writeFile(path.join(dir, doc), doc);
  return dir;
}

/** Polls `check` every 50 ms until it is true, or fails after `ms`. */
async function eventually(check: () => boolean, ms: number, what: string): Promise<void> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function options(port: number, ports: number[], dir: string, more: Partial<NodeOptions> = {}): NodeOptions {
  return { host: '127.0.0.1', port, folder: dir, broadcast: '127.255.255.255', discoveryPorts: ports, intervalMs: 300, timeoutMs: 30_000, scanMs: 200, print: () => {}, ...more };
}

/** A node under test, with its log kept. */
async function startNode(t: Tap.Test, opts: NodeOptions): Promise<{ node: IndexNode; log: string[] }> {
  const log: string[] = [];
  const node = new IndexNode({ ...opts, log: (m) => log.push(m) });
  t.teardown(() => node.stop());
  await node.start();
  return { node, log };
}

/** A UDP socket bound to `address:port` (0: any), closed at teardown. */
async function udpAt(t: Tap.Test, address: string, port = 0): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => resolve());
  });
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

const send = (socket: dgram.Socket, value: unknown, port: number, address = '127.0.0.1') =>
  new Promise((resolve) => socket.send(typeof value === 'string' ? value : JSON.stringify(value), port, address, resolve));

/** A TCP server at `address:port` that counts connections and answers each with `answer` (or holds it open). */
async function tcpAt(t: Tap.Test, address: string, port: number, answer?: string): Promise<{ accepted: () => number }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    if (answer !== undefined) socket.end(answer);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { accepted: () => accepted };
}

const docsOf = (node: IndexNode) => [...node.index().docs.keys()];

t.test('with a key, a forged announcement (no mac, a wrong mac) is not believed; a node with the key is', async (t) => {
  const [pa, pb, px] = (await freePorts(3)) as [number, number, number];
  const ports = [pa, pb, px];
  const { node: a, log } = await startNode(t, options(pa, ports, await folder(t, ['a.txt']), { key: KEY }));
  const { node: b } = await startNode(t, options(pb, ports, await folder(t, ['b.txt']), { key: KEY }));
  // The attacker: a list server and a UDP socket at 127.0.0.1:px, as a node would have.
  await tcpAt(t, '127.0.0.1', px, `${JSON.stringify({ v: 1, type: 'list', id: EVIL, gen: 0, docs: ['evil.txt'] })}\n`);
  const attacker = await udpAt(t, '0.0.0.0', px);
  await eventually(() => a.index().nodes.length === 2, 10_000, 'a sees b, which has the key');
  t.same(docsOf(a), ['a.txt', 'b.txt'], "b's list, authenticated, is in a's index");
  await send(attacker, { v: 1, type: 'hello', id: EVIL, port: px, gen: 0, count: 1 }, pa);
  await send(attacker, { v: 1, type: 'hello', id: EVIL, port: px, gen: 0, count: 1, ts: Date.now(), mac: '00'.repeat(32) }, pa);
  await eventually(() => docsOf(a).includes('evil.txt') || log.filter((m) => m.includes(`127.0.0.1:${px}`) && m.startsWith('dropped')).length >= 2, 10_000, 'the forgeries dropped, or believed');
  t.notOk(docsOf(a).includes('evil.txt'), `no forged entry in a's index (it has ${docsOf(a).join(', ')})`);
  t.equal(a.index().nodes.length, 2, 'a knows only itself and b');
  t.match(log.join('\n'), /dropped a datagram from 127\.0\.0\.1:\d+: .*no mac/);
  t.match(log.join('\n'), /dropped a datagram from 127\.0\.0\.1:\d+: .*wrong mac/);
  t.ok(b, 'b ran');
});

t.test('without a key, a bye from another address or port does not evict a peer; its own bye does', async (t) => {
  const [pa, pb] = (await freePorts(2)) as [number, number];
  const ports = [pa, pb];
  const { node: a, log } = await startNode(t, options(pa, ports, await folder(t, ['a.txt'])));
  const b = new IndexNode(options(pb, ports, await folder(t, ['b.txt'])));
  t.teardown(() => b.stop());
  await b.start();
  await eventually(() => a.index().nodes.length === 2, 10_000, 'a sees b');
  const samePort = await udpAt(t, '127.0.0.1');
  const otherHost = await udpAt(t, '127.0.0.2');
  const bye = { v: 1, type: 'bye', id: b.id, port: pb };
  await send(samePort, bye, pa);
  await send(otherHost, bye, pa);
  await eventually(() => a.index().nodes.length === 1 || log.filter((m) => m.startsWith('dropped a bye')).length >= 2, 10_000, 'the forged byes dropped, or believed');
  t.equal(a.index().nodes.length, 2, `b is still in a's index after byes from 127.0.0.1:${samePort.address().port} and 127.0.0.2:${otherHost.address().port}`);
  await b.stop();
  await eventually(() => a.index().nodes.length === 1, 5000, "b's own bye removes it");
  t.pass("b's own bye, from 127.0.0.1:" + pb + ', removed it');
});

t.test('an announcement naming a port other than its source, or outside the discovery ports, is not fetched from', async (t) => {
  const [pa, px, py, pv] = (await freePorts(4)) as [number, number, number, number];
  const ports = [pa, px, py];
  const { node: a, log } = await startNode(t, options(pa, ports, await folder(t, ['a.txt'])));
  const notDiscovery = await tcpAt(t, '127.0.0.1', pv, '');
  const otherDiscovery = await tcpAt(t, '127.0.0.1', py, '');
  const attacker = await udpAt(t, '0.0.0.0', px);
  const stranger = await udpAt(t, '127.0.0.1');
  await send(attacker, { v: 1, type: 'hello', id: EVIL, port: pv, gen: 0, count: 1 }, pa);
  await send(attacker, { v: 1, type: 'hello', id: 'eeeeeeeeeeeeeee1', port: py, gen: 0, count: 1 }, pa);
  // From a port that is not a discovery port, naming itself truthfully.
  await send(stranger, { v: 1, type: 'hello', id: 'eeeeeeeeeeeeeee2', port: stranger.address().port, gen: 0, count: 1 }, pa);
  await eventually(() => notDiscovery.accepted() + otherDiscovery.accepted() >= 2 || log.filter((m) => m.startsWith('dropped a hello')).length >= 3, 10_000, 'the hellos dropped, or fetched from');
  t.equal(notDiscovery.accepted(), 0, `no connection to 127.0.0.1:${pv} (not a discovery port)`);
  t.equal(otherDiscovery.accepted(), 0, `no connection to 127.0.0.1:${py} (a discovery port, but not the hello's source)`);
  t.equal(a.table.peers.size, 0, 'no peer recorded');
  t.match(log.join('\n'), new RegExp(`dropped a hello from 127\\.0\\.0\\.1:${px}: it names port ${pv}`));
});

t.test('more peers than maxPeers are refused, with a log line', async (t) => {
  const [pa, px] = (await freePorts(2)) as [number, number];
  const { node: a, log } = await startNode(t, options(pa, [pa, px], await folder(t, ['a.txt']), { maxPeers: 3 }));
  for (let i = 2; i <= 6; i++) {
    const socket = await udpAt(t, `127.0.0.${i}`, px);
    await send(socket, { v: 1, type: 'hello', id: `ffffffffffffff0${i}`, port: px, gen: 0, count: 1 }, pa);
  }
  await eventually(() => a.table.peers.size > 3 || (a.table.peers.size === 3 && log.some((m) => m.startsWith('refused'))), 10_000, 'peers capped, or not');
  t.equal(a.table.peers.size, 3, `a holds 3 peers (${[...a.table.peers.keys()].join(', ')})`);
  t.match(log.join('\n'), /refused node 127\.0\.0\.\d:\d+: already 3 nodes \(the most this node keeps\)/);
});

t.test('list fetches are bounded: at most maxFetches at once', async (t) => {
  const [pa, px] = (await freePorts(2)) as [number, number];
  const { log } = await startNode(t, options(pa, [pa, px], await folder(t, ['a.txt']), { maxFetches: 2, maxPeers: 10 }));
  const servers = [];
  for (let i = 2; i <= 6; i++) servers.push(await tcpAt(t, `127.0.0.${i}`, px));
  for (let i = 2; i <= 6; i++) {
    const socket = await udpAt(t, `127.0.0.${i}`, px);
    await send(socket, { v: 1, type: 'hello', id: `ffffffffffffff0${i}`, port: px, gen: 0, count: 1 }, pa);
  }
  const accepted = () => servers.reduce((sum, s) => sum + s.accepted(), 0);
  await eventually(() => log.filter((m) => / joined /.test(m)).length === 5 && accepted() >= 2, 10_000, 'five peers joined, two fetches accepted');
  // The fetches start as each hello arrives: a third would have come by now.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.equal(accepted(), 2, 'two list fetches, each held open by its peer, and no third');
});

t.test('fetchList() refuses a list over MAX_LIST_BYTES as soon as it passes the bound', async (t) => {
  t.equal(MAX_LIST_BYTES, 2 ** 20, 'the bound is 1 MiB');
  const start = `{"v":1,"type":"list","id":"${EVIL}","gen":0,"docs":["`;
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    // 1.5 MiB of one name, then nothing: no end, no newline.
    socket.write(start + 'a'.repeat(1.5 * 2 ** 20));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    server.closeAllConnections?.();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as net.AddressInfo;
  const started = performance.now();
  await t.rejects(fetchList('127.0.0.1', port, { timeoutMs: 20_000 }), { message: /more than 1048576 bytes/ });
  t.ok(performance.now() - started < 15_000, 'refused without waiting for the rest or the timeout');
});

/** The PID of the process running the script: tsx's child, the leaf of the tree under `pid`. */
async function scriptPid(pid: number): Promise<number> {
  for (;;) {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean).map(Number);
    if (children.length === 0) return pid;
    pid = children[0] as number;
  }
}

const fds = async (pid: number) => (await readdir(`/proc/${pid}/fd`)).length;

t.test('the list port does not leak a descriptor for clients that send 3 bytes and never read, or never leave', async (t) => {
  const [port] = (await freePorts(1)) as [number];
  const child = new Child(tsx('ej15/node.ts', '--port', String(port), '--discovery-ports', String(port), '--folder', await folder(t, ['a.txt']), '--quiet'));
  t.teardown(() => child.kill());
  await child.ready();
  const pid = await scriptPid(child.process.pid as number);
  // One ordinary fetch first, so that what the first connection allocates is in the baseline.
  await fetchList('127.0.0.1', port);
  const before = await fds(pid);
  const clients: net.Socket[] = [];
  t.teardown(() => clients.forEach((c) => c.destroy()));
  const connect = (leave: boolean) =>
    new Promise<void>((resolve, reject) => {
      // allowHalfOpen: a client that stays does not end its side even after the node has ended its own.
      const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: !leave }, () => {
        socket.write('abc');
        if (leave) socket.end();
        resolve();
      });
      socket.on('error', reject);
      clients.push(socket);
    });
  for (let i = 0; i < 20; i++) await connect(true);
  for (let i = 0; i < 10; i++) await connect(false);
  let after = await fds(pid);
  const started = performance.now();
  while (after > before + 2 && performance.now() - started < 30_000) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    after = await fds(pid);
  }
  t.ok(after <= before + 2, `node (pid ${pid}) holds ${after} descriptors after 30 such clients, ${before} before`);
});

t.test('--key-file: a missing or short key file is refused with a message; -h names the option', async (t) => {
  const help = await run(tsx('ej15/node.ts', '-h'));
  t.match(help.stdout, /--key-file FILE/);
  const missing = await run(tsx('ej15/node.ts', '--port', '8000', '--discovery-ports', '8000', '--key-file', '/nonexistent/ej15.key'));
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read key file \/nonexistent\/ej15\.key: no such file/);
  const dir = await folder(t, []);
  await mkdir(path.join(dir, 'k'));
  await writeFile(path.join(dir, 'k', 'short'), 'abc\n');
  const short = await run(tsx('ej15/node.ts', '--port', '8000', '--discovery-ports', '8000', '--key-file', path.join(dir, 'k', 'short')));
  t.equal(short.code, 1);
  t.match(short.stderr, /key file .*short: expected at least 16 bytes, got 3/);
  t.notMatch(short.stderr, /\n\s+at /, 'no stack trace');
});

t.test('--key-file: nodes sharing the key and --list with it see each other; --list without it sees no one', async (t) => {
  const [pa, pb] = (await freePorts(2)) as [number, number];
  const ports = [pa, pb].join(',');
  const dir = await folder(t, []);
  const keyFile = path.join(dir, 'key');
  await writeFile(keyFile, `${KEY.toString()}\n`);
  await mkdir(path.join(dir, 'a'));
  await writeFile(path.join(dir, 'a', 'a.txt'), 'a');
  const a = new Child(tsx('ej15/node.ts', '--port', String(pa), '--discovery-ports', ports, '--folder', path.join(dir, 'a'), '--key-file', keyFile, '--quiet'));
  t.teardown(() => a.kill());
  await a.ready();
  // The key file's bytes less its newline: the same key as KEY.
  const { node: b } = await startNode(t, options(pb, [pa, pb], await folder(t, ['b.txt']), { key: KEY }));
  await eventually(() => b.index().nodes.length === 2, 15_000, 'b (in-process, KEY) sees a (--key-file)');
  t.same(docsOf(b), ['a.txt', 'b.txt']);
  const keyed = await run(tsx('ej15/node.ts', '--list', '--discovery-ports', ports, '--wait', '1.5', '--key-file', keyFile));
  t.match(keyed.stdout, /^index at \S+: 2 nodes, 2 documents$/m, `--list with the key sees both (stderr: ${keyed.stderr.trim().slice(0, 200)})`);
  const plain = await run(tsx('ej15/node.ts', '--list', '--discovery-ports', ports, '--wait', '1.5', '--quiet'));
  t.match(plain.stdout, /^index at \S+: 0 nodes, 0 documents$/m, 'an unsigned query gets no answer');
});
