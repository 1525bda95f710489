import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, tsx } from '../lib/fixtures/spawn.ts';
import { freePorts } from '../lib/fixtures/ports.ts';
import { FrameReader } from '../lib/pdu.ts';
import { Frame } from './protocol.ts';
import {
  checkDestinations,
  InputError,
  type NodeSpec,
  type OutgoingMessage,
  parseConfig,
  parseMessages,
  RingNode,
  ringOrder,
  successorOf,
} from './node.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE = path.join(HERE, 'node.ts');

t.test('parseConfig() reads [nodoX] sections in ring order: ascending id, wrapping', async (t) => {
  const nodes = parseConfig('[nodo2]\nhost = 127.0.0.1\nport = 8002\n\n; a comment\n[nodo0]\nhost=localhost\nport=8000\n[nodo10]\nhost = ::1\nport = 8010\n');
  t.same(nodes.map((n) => [n.id, n.host, n.port]), [[0, 'localhost', 8000], [2, '127.0.0.1', 8002], [10, '::1', 8010]]);
  t.equal(successorOf(nodes, 0).id, 2);
  t.equal(successorOf(nodes, 2).id, 10);
  t.equal(successorOf(nodes, 10).id, 0, 'the last wraps to the first');
  t.same(ringOrder(nodes), [0, 2, 10]);
  t.same(ringOrder(nodes, 10), [10, 0, 2]);
  t.throws(() => successorOf(nodes, 1), { name: 'RangeError', message: /node 1/ });
});

t.test('the shipped config.ini is a loopback ring of 3', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const nodes = parseConfig(await readFile(path.join(HERE, 'config.ini'), 'utf8'));
  t.same(ringOrder(nodes), [0, 1, 2]);
  for (const node of nodes) t.equal(node.host, '127.0.0.1');
});

t.test('parseConfig() names the line of each mistake', async (t) => {
  const bad: [string, RegExp][] = [
    ['[node1]\nhost = a\nport = 1\n', /line 1: section \[node1\] must be \[nodoX\]/],
    ['[nodo01]\nhost = a\nport = 1\n', /line 1: section \[nodo01\]/],
    ['[nodo1]\nhost = a\nport = 1\n[nodo1]\n', /line 4 \[nodo1\]: section \[nodo1\] already appears on line 1/],
    ['[nodo1]\nhost = a\n', /line 1 \[nodo1\]: section \[nodo1\] has no port =/],
    ['[nodo1]\nhost = a\nport = 99999\n', /line 3 \[nodo1\]: port "99999" is not a port number/],
    ['[nodo1]\nhost = a b\nport = 1\n', /line 2 \[nodo1\]: host "a b"/],
    ['host = a\n', /line 1: "host" is outside any section/],
    ['[nodo1]\nhots = a\n', /line 2 \[nodo1\]: unknown key "hots"/],
    ['[nodo1]\nhost\n', /line 2 \[nodo1\]: expected "\[nodoX\]" or "key = value"/],
    ['; empty\n', /no nodes/],
  ];
  for (const [text, message] of bad) t.throws(() => parseConfig(text, 'c.ini'), { name: 'InputError', message }, JSON.stringify(text));
});

t.test('parseMessages() reads DESTINATION<TAB>TEXT lines', async (t) => {
  const text = '\uFEFF# comment\n2\thola\r\n\n1\tcon\ttab y ñ\n3\t\n';
  t.same(parseMessages(text), [
    { dst: 2, text: 'hola', line: 2 },
    { dst: 1, text: 'con\ttab y ñ', line: 4 },
    { dst: 3, text: '', line: 5 },
  ]);
  t.same(parseMessages(''), []);
});

t.test('parseMessages() rejects a bad line with an error naming it', async (t) => {
  t.throws(() => parseMessages('1\tok\nhola\n', 'm.txt'), { name: 'InputError', message: 'Cannot use m.txt line 2: expected DESTINATION<TAB>TEXT, got "hola"', line: 2 });
  t.throws(() => parseMessages('2 hola\n', 'm.txt'), { message: /line 1: .*with a tab, not spaces/ });
  t.throws(() => parseMessages('x\thola\n', 'm.txt'), { message: /line 1: expected DESTINATION<TAB>TEXT/ });
  t.throws(() => parseMessages('\n\n-1\thola\n', 'm.txt'), { message: /m\.txt line 3/ });
  t.throws(() => parseMessages('4294967296\thola\n', 'm.txt'), { message: /line 1: destination 4294967296 is not a node id/ });
  t.throws(() => parseMessages(`1\t${'x'.repeat(65536)}\n`, 'm.txt'), { message: /line 1: the text is 65536 bytes, more than the 65535/ });
});

t.test('checkDestinations() refuses this node itself and unconfigured ids, naming the line', async (t) => {
  const nodes = parseConfig('[nodo0]\nhost=a\nport=1\n[nodo1]\nhost=a\nport=2\n');
  const messages = parseMessages('1\tok\n\n0\tme\n');
  t.doesNotThrow(() => checkDestinations(messages.slice(0, 1), nodes, 0));
  t.throws(() => checkDestinations(messages, nodes, 0, 'm.txt'), { message: 'Cannot use m.txt line 3: destination 0 is this node itself' });
  t.throws(() => checkDestinations(parseMessages('1\tok\n7\tx\n'), nodes, 0, 'm.txt'), { message: /line 2: no node 7 in config\.ini \(there are 0, 1\)/ });
  t.ok(new InputError('x') instanceof SyntaxError);
});

// ---------------------------------------------------------------------------
// In-process rings


interface Ring {
  nodes: RingNode[];
  received: Map<number, string[]>;
  specs: NodeSpec[];
}

/** Builds a ring of `ids` (ascending order) on loopback; `messages[id]` is node id's message file. */
async function makeRing(t: Test, ids: number[], messages: Record<number, OutgoingMessage[]>, { members = ids } = {}): Promise<Ring> {
  const ports = await freePorts(ids.length);
  const specs = ids.map((id, i) => ({ id, host: '127.0.0.1', port: ports[i] as number, line: 0 }));
  const ring = specs.filter((s) => members.includes(s.id));
  const received = new Map<number, string[]>();
  const nodes = ring.map((self) => {
    received.set(self.id, []);
    return new RingNode({
      self,
      successor: successorOf(ring, self.id),
      known: ids,
      messages: messages[self.id] ?? [],
      connectTimeoutMs: 10_000,
      deliver: (src, text) => received.get(self.id)?.push(`${src}:${text}`),
    });
  });
  t.teardown(() => {
    for (const node of nodes) node.close();
  });
  return { nodes, received, specs };
}

const msg = (dst: number, text: string, line = 1): OutgoingMessage => ({ dst, text, line });
const within = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms).unref())]);

t.test('a ring of 3 delivers every message exactly once and finishes', async (t) => {
  const { nodes, received } = await makeRing(t, [0, 1, 2], {
    0: [msg(1, 'a'), msg(2, 'b')],
    1: [msg(0, 'c'), msg(2, 'd'), msg(2, 'e')],
    2: [],
  });
  // Node 0 last: the others retry until it is up.
  for (const node of [...nodes].reverse()) await node.start();
  await within(Promise.all(nodes.map((n) => n.finished)), 15_000, 'finalisation');
  t.same(received.get(0), ['1:c']);
  t.same(received.get(1), ['0:a']);
  t.same(received.get(2), ['0:b', '1:d', '1:e'], 'in the order of the file');
});

t.test('a ring with no messages at all still finalises', async (t) => {
  const { nodes, received } = await makeRing(t, [0, 1], {});
  for (const node of nodes) await node.start();
  await within(Promise.all(nodes.map((n) => n.finished)), 15_000, 'finalisation');
  t.same([...received.values()].flat(), []);
});

t.test('a message for a configured node outside the ring comes back and the ring goes on', async (t) => {
  // nodo2 is in config.ini but the ring is 0 -> 1 -> 0 (as with --id_dst).
  const { nodes, received } = await makeRing(t, [0, 1, 2], { 0: [msg(2, 'lost'), msg(1, 'found')] }, { members: [0, 1] });
  for (const node of nodes) await node.start();
  await within(Promise.all(nodes.map((n) => n.finished)), 15_000, 'finalisation');
  t.same(received.get(1), ['0:found']);
});

t.test('a malformed frame or one for an unknown id does not disturb the ring', async (t) => {
  const { nodes, received, specs } = await makeRing(t, [0, 1, 2], { 1: [msg(2, 'real')], 2: [msg(0, 'also real')] });
  const [node0, node1, node2] = nodes as [RingNode, RingNode, RingNode];
  await node1.start();
  await node2.start();
  const port1 = specs[1]?.port as number;
  const inject = (bytes: Uint8Array) =>
    new Promise<string>((resolve) => {
      const socket = net.connect(port1, '127.0.0.1', () => socket.write(bytes));
      socket.on('error', () => {});
      socket.on('close', () => resolve('closed'));
      setTimeout(() => {
        socket.destroy();
        resolve('still open');
      }, 3000).unref();
    });
  const malformed = Buffer.from(Frame.encode({ kind: 'token', src: 0, dst: 1, data: '' }));
  malformed[8] = 0x03; // T and A together
  t.equal(await inject(malformed), 'closed', 'the node closes a connection that sent a malformed frame');
  const garbage = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  t.equal(await inject(garbage), 'closed', 'and one that sent garbage');
  // Well formed but naming an unknown id: discarded (no delivery), the connection stays usable.
  t.equal(await inject(Frame.encode({ kind: 'message', src: 99, dst: 1, data: 'forged' })), 'still open');
  await node0.start();
  await within(Promise.all(nodes.map((n) => n.finished)), 15_000, 'finalisation');
  t.same(received.get(1), []);
  t.same(received.get(2), ['1:real']);
  t.same(received.get(0), ['2:also real']);
});

t.test('a node gives up on a successor that never comes, with a clear error', async (t) => {
  const [own, absent] = (await freePorts(2)) as [number, number];
  const node = new RingNode({
    self: { id: 1, host: '127.0.0.1', port: own, line: 0 },
    successor: { id: 0, host: '127.0.0.1', port: absent, line: 0 },
    known: [0, 1],
    messages: [],
    connectTimeoutMs: 600,
  });
  t.teardown(() => node.close());
  await node.start();
  await t.rejects(within(node.finished, 10_000, 'give up'), { name: 'CliError', message: /cannot reach successor nodo0 at 127\.0\.0\.1:\d+ within 1 s: ECONNREFUSED/ });
});

t.test('node 0 gives up when its finalisation frame does not come back', async (t) => {
  const [port0, port1] = (await freePorts(2)) as [number, number];
  const node0 = new RingNode({
    self: { id: 0, host: '127.0.0.1', port: port0, line: 0 },
    successor: { id: 1, host: '127.0.0.1', port: port1, line: 0 },
    known: [0, 1],
    messages: [],
    connectTimeoutMs: 1500,
  });
  t.teardown(() => node0.close());
  // A fake node 1 that forwards every frame back to node 0 except the finalisation.
  const back = new Set<net.Socket>();
  const fake = net.createServer((socket) => {
    const out = net.connect(port0, '127.0.0.1');
    back.add(out);
    out.on('error', () => {});
    socket.on('error', () => {});
    const reader = new FrameReader(Frame);
    socket.on('data', (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        if (frame.kind === 'fin') continue;
        out.write(Frame.encode(frame.kind === 'token' ? { ...frame, src: 1, dst: 0 } : frame));
      }
    });
  });
  await new Promise<void>((resolve) => fake.listen(port1, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of back) s.destroy();
    fake.close();
  });
  await node0.start();
  await t.rejects(within(node0.finished, 10_000, 'give up'), { name: 'CliError', message: /finalisation frame did not come back within 2 s/ });
});

// ---------------------------------------------------------------------------
// The command line

t.test('node.ts -h prints the usage line in the assignment form', async (t) => {
  const help = await run(tsx(NODE, '-h'));
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: node\.ts \[-h\] \[--id ID\] \[--id_dst ID_DST\]/);
  const bad = await run(tsx(NODE, '--bogus'));
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unrecognized arguments: --bogus/);
});

t.test('node.ts exits 2 naming the bad line of a message file or config.ini', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej13-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'config.ini');
  await writeFile(config, '[nodo0]\nhost = 127.0.0.1\nport = 1\n[nodo1]\nhost = 127.0.0.1\nport = 2\n');
  const messages = path.join(dir, 'm.txt');
  await writeFile(messages, '1\tbien\n1 mal\n');
  const bad = await run(tsx(NODE, '--id', '0', '--config', config, '--messages', messages));
  t.equal(bad.code, 2);
  t.match(bad.stderr, /m\.txt line 2: expected DESTINATION<TAB>TEXT, got "1 mal"/);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  await writeFile(config, '[nodo0]\nhost = 127.0.0.1\nport = x\n');
  const badConfig = await run(tsx(NODE, '--id', '0', '--config', config, '--messages', messages));
  t.equal(badConfig.code, 2);
  t.match(badConfig.stderr, /config\.ini line 3 \[nodo0\]: port "x"/);
  await writeFile(config, '[nodo0]\nhost = 127.0.0.1\nport = 1\n');
  const noSection = await run(tsx(NODE, '--id', '5', '--config', config));
  t.equal(noSection.code, 2);
  t.match(noSection.stderr, /has no \[nodo5\] section for --id 5/);
});
