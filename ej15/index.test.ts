import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { broadcastFor, buildIndex, formatIndexBody, formatIndexHeader, nodeLabel, onSegment, parsePortList, PeerTable, ReplayGuard, scanFolder } from './index.ts';
import type { Hello } from './protocol.ts';

const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const hello = (id: string, gen: number, port = 8000): Hello => ({ v: 1, type: 'hello', id, port, gen, count: 0 });

t.test('buildIndex() merges lists into document → nodes, everything sorted, empty nodes kept', async (t) => {
  const index = buildIndex([
    { label: '10.78.0.2:8000', docs: ['shared.txt', 'b.txt'] },
    { label: '10.78.0.1:8000', docs: ['shared.txt', 'a.txt', 'a.txt'] },
    { label: '10.78.0.3:8000', docs: [] },
  ]);
  t.same(index.nodes, [
    { label: '10.78.0.1:8000', count: 2 },
    { label: '10.78.0.2:8000', count: 2 },
    { label: '10.78.0.3:8000', count: 0 },
  ]);
  t.same([...index.docs], [
    ['a.txt', ['10.78.0.1:8000']],
    ['b.txt', ['10.78.0.2:8000']],
    ['shared.txt', ['10.78.0.1:8000', '10.78.0.2:8000']],
  ]);
  t.equal(
    formatIndexBody(index),
    [
      '  node 10.78.0.1:8000 (2 documents)',
      '  node 10.78.0.2:8000 (2 documents)',
      '  node 10.78.0.3:8000 (0 documents)',
      '  doc a.txt: 10.78.0.1:8000',
      '  doc b.txt: 10.78.0.2:8000',
      '  doc shared.txt: 10.78.0.1:8000, 10.78.0.2:8000',
      'end of index',
      '',
    ].join('\n'),
  );
  t.equal(formatIndexHeader(index, new Date(0)), 'index at 1970-01-01T00:00:00.000Z: 3 nodes, 3 documents\n');
  t.equal(formatIndexHeader(buildIndex([{ label: 'x:1', docs: ['d'] }]), new Date(0)), 'index at 1970-01-01T00:00:00.000Z: 1 node, 1 document\n');
});

t.test('PeerTable: a hello joins a peer, whose list is fetched once and again only for a newer generation', async (t) => {
  const table = new PeerTable();
  const first = table.hello(hello(A, 0), '10.78.0.2', 1000);
  t.ok(first.joined, 'first hello: joined');
  t.ok(first.stale, 'no list yet: fetch it');
  t.same(table.known(), [], 'not in the index before its list arrives');
  t.ok(table.applyList('10.78.0.2:8000', A, 0, ['x.txt']), 'the first list is a change, even if empty');
  t.same(table.known().map((n) => [n.label, [...n.docs]]), [['10.78.0.2:8000', ['x.txt']]]);
  const again = table.hello(hello(A, 0), '10.78.0.2', 2000);
  t.notOk(again.joined);
  t.notOk(again.stale, 'same generation: nothing to fetch');
  t.ok(table.hello(hello(A, 1), '10.78.0.2', 3000).stale, 'a newer generation: fetch');
  t.notOk(table.applyList('10.78.0.2:8000', A, 1, ['x.txt']), 'the same documents again: no change');
  t.ok(table.applyList('10.78.0.2:8000', A, 2, ['x.txt', 'y.txt']), 'a document more: a change');
  t.notOk(table.applyList('10.78.0.2:8000', A, 1, []), 'an older list arriving late is ignored');
  t.same([...(table.peers.get('10.78.0.2:8000')?.docs ?? [])], ['x.txt', 'y.txt']);
  t.notOk(table.applyList('10.78.0.2:8000', B, 9, []), 'a list from another process at that label is ignored');
  t.notOk(table.applyList('10.78.0.9:8000', A, 0, []), 'a list for an unknown peer is ignored');
});

t.test('PeerTable: a restarted node (new id, same address) starts over', async (t) => {
  const table = new PeerTable();
  table.hello(hello(A, 5), '10.78.0.2', 0);
  table.applyList('10.78.0.2:8000', A, 5, ['old.txt']);
  const restarted = table.hello(hello(B, 0), '10.78.0.2', 10);
  t.ok(restarted.joined, 'joined again');
  t.ok(restarted.stale, 'its list must be fetched, though its generation is lower');
  t.same(table.known(), [], 'the old list is gone');
});

t.test('PeerTable: bye removes at once, only with the right id; silence expires after the timeout', async (t) => {
  const table = new PeerTable();
  table.hello(hello(A, 0, 8000), '10.78.0.2', 0);
  table.hello(hello(B, 0, 8001), '10.78.0.2', 0);
  t.equal(table.bye('10.78.0.2:8000', B), undefined, 'a bye with another id removes nothing');
  t.equal(table.bye('10.78.0.2:8000', A)?.label, '10.78.0.2:8000');
  t.same([...table.peers.keys()], ['10.78.0.2:8001']);
  table.hello(hello(B, 0, 8001), '10.78.0.2', 5000);
  t.same(table.expire(13_000, 8000), [], 'heard 8 s ago: kept');
  t.same(table.expire(13_001, 8000).map((p) => p.label), ['10.78.0.2:8001'], 'heard more than 8 s ago: expired');
  t.equal(table.peers.size, 0);
});

t.test('scanFolder() lists regular files by relative path, sorted, skipping dot-files', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej15-scan-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'sub', 'deep'), { recursive: true });
  await mkdir(path.join(dir, '.git'));
  for (const file of ['b.txt', 'a.txt', '.hidden', 'sub/c.md', 'sub/deep/d.pdf', '.git/config']) await writeFile(path.join(dir, file), 'x');
  t.same(await scanFolder(dir), ['a.txt', 'b.txt', 'sub/c.md', 'sub/deep/d.pdf']);
  t.same(await scanFolder(dir, { depth: 0 }), ['a.txt', 'b.txt']);
  t.same(await scanFolder(dir, { max: 1 }), ['a.txt']);
  await t.rejects(scanFolder(path.join(dir, 'missing')), { code: 'ENOENT' });
});

t.test('broadcastFor() and onSegment() follow the interface of --host', async (t) => {
  const interfaces = [
    { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4' },
    { address: '10.78.0.1', netmask: '255.255.255.0', family: 'IPv4' },
    { address: '192.0.2.7', netmask: '255.255.255.255', family: 'IPv4' },
  ];
  t.equal(broadcastFor('127.0.0.1', interfaces), '127.255.255.255');
  t.equal(broadcastFor('10.78.0.1', interfaces), '10.78.0.255');
  t.equal(broadcastFor('0.0.0.0', interfaces), '255.255.255.255');
  t.equal(broadcastFor('192.0.2.7', interfaces), '255.255.255.255', 'a /32 has no directed broadcast');
  t.equal(broadcastFor('10.9.9.9', interfaces), '255.255.255.255', 'not an address here');
  t.ok(onSegment('10.78.0.3', '10.78.0.1', interfaces));
  t.notOk(onSegment('10.78.1.3', '10.78.0.1', interfaces));
  t.notOk(onSegment('192.0.2.1', '127.0.0.1', interfaces));
  t.ok(onSegment('192.0.2.1', '0.0.0.0', interfaces), 'a wildcard host hears everyone');
});

t.test('nodeLabel() and parsePortList()', async (t) => {
  t.equal(nodeLabel('10.78.0.1', 8000), '10.78.0.1:8000');
  t.equal(nodeLabel('fe80::1', 8000), '[fe80::1]:8000');
  t.same(parsePortList('8000-8005'), [8000, 8001, 8002, 8003, 8004, 8005]);
  t.same(parsePortList('8003,8000-8001,8000'), [8000, 8001, 8003]);
  for (const bad of ['', '8005-8000', '0', '70000', 'a', '1-100']) t.throws(() => parsePortList(bad), { name: 'RangeError' }, `'${bad}' refused`);
});

t.test('formatIndexBody() escapes C0/C1 controls and bidi overrides in names, so a peer cannot drive the terminal', async (t) => {
  const hostile = ['csi\u009b31m.txt', 'invoice\u202efdp.exe', 'bell\u0007.txt', 'esc\u001b[2J.txt', 'del\u007f.txt', 'nel\u0085.txt', 'iso\u2066x\u2069.txt', 'ls\u2028.txt'];
  const body = formatIndexBody(buildIndex([{ label: '10.78.0.2:8000', docs: hostile }]));
  t.notMatch(body, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/, 'no control or bidi character reaches the output');
  t.match(body, /^ {2}doc csi\\u\{9b\}31m\.txt: 10\.78\.0\.2:8000$/m, 'U+009B (CSI) printed as \\u{9b}');
  t.match(body, /^ {2}doc invoice\\u\{202e\}fdp\.exe: /m, 'U+202E (RLO) printed as \\u{202e}');
  t.match(body, /^ {2}doc esc\\u\{1b\}\[2J\.txt: /m);
  t.equal(formatIndexBody(buildIndex([{ label: 'x:1', docs: ['a/ñandú.pdf'] }])), '  node x:1 (1 document)\n  doc a/ñandú.pdf: x:1\nend of index\n', 'other Unicode is printed as it is');
});

t.test('PeerTable keeps at most maxPeers peers; known ones and restarts still get in', async (t) => {
  const table = new PeerTable(2);
  table.hello(hello(A, 0, 8000), '10.78.0.2', 0);
  table.hello(hello(A, 0, 8000), '10.78.0.3', 0);
  t.notOk(table.admits('10.78.0.4:8000'), 'a third is not admitted');
  t.throws(() => table.hello(hello(A, 0, 8000), '10.78.0.4', 0), { name: 'RangeError', message: /already 2 nodes, at most 2/ });
  t.ok(table.admits('10.78.0.2:8000'), 'a known peer is');
  t.ok(table.hello(hello(B, 0, 8000), '10.78.0.2', 1).joined, 'a restart at a known label joins again');
  table.expire(100_000, 8000);
  t.ok(table.admits('10.78.0.4:8000'), 'room again after expiry');
});

t.test('ReplayGuard refuses a ts outside the window and one not newer than the last from that id', async (t) => {
  const guard = new ReplayGuard(30_000);
  const now = 1_700_000_000_000;
  t.equal(guard.check(A, now - 1000, now), undefined, 'fresh');
  t.match(guard.check(A, now - 1000, now) ?? '', /not newer than the last one from aaaaaaaaaaaaaaaa \(a replay\)/, 'the same datagram again');
  t.match(guard.check(A, now - 2000, now) ?? '', /a replay/, 'an older one');
  t.equal(guard.check(A, now, now), undefined, 'a newer one');
  t.equal(guard.check(B, now - 1000, now), undefined, 'another id has its own sequence');
  t.match(guard.check(B, now - 31_000, now + 1) ?? '', /more than 30 s/, 'too old');
  t.match(guard.check(B, now + 31_000, now) ?? '', /more than 30 s/, 'too far ahead');
  t.equal(guard.check(A, now + 40_000, now + 40_000), undefined);
  t.equal(guard.size, 1, 'ids last heard outside the window are forgotten');
  t.equal(guard.check(B, now + 40_000, now + 40_000, '10.78.0.2:8000'), undefined);
  t.match(guard.check(B, now + 40_001, now + 40_000, '10.78.0.4:8000') ?? '', /id bbbbbbbbbbbbbbbb was heard from 10\.78\.0\.2:8000, not from here \(a replay\)/, 'a fresher datagram of that id, re-sent from another host');
  t.equal(guard.check(B, now + 40_002, now + 40_000, '10.78.0.2:8000'), undefined, 'its own source goes on');
});
