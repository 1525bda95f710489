/**
 * The TCP side and the folder confinement under attack (see test-peers.ts):
 * symbolic-link races, planted temporary names, awkward names, and clients
 * that reset mid-transfer.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { encodeRequest, Op } from './tcp.ts';
import { delay, MiB, startServer, swapper, tcpRequest } from './test-peers.ts';

t.test('a GET while a folder of its path is swapped for a symlink out never returns the outside file', async (t) => {
  const s = await startServer(t, { 'sub/file.txt': 'inside' });
  writeFileSync(path.join(s.outside, 'file.txt'), 'SECRET');
  swapper(t, path.join(s.root, 'sub'), s.outside);
  let leaked = 0;
  let inside = 0;
  let tries = 0;
  const started = performance.now();
  for (; tries < 400 && performance.now() - started < 40_000; tries++) {
    const reply = await tcpRequest(s.port, encodeRequest(Op.GET, 'sub/file.txt'));
    if (reply.all.includes('SECRET')) leaked++;
    else if (reply.body?.toString() === 'inside') inside++;
  }
  t.equal(leaked, 0, `${leaked} of ${tries} GETs returned the file outside the folder (${inside} the inside one)`);
});

t.test('a PUT while its folder is swapped for a symlink out never writes outside', async (t) => {
  const s = await startServer(t, { 'sub/keep.txt': 'x' });
  swapper(t, path.join(s.root, 'sub'), s.outside);
  let stored = 0;
  let tries = 0;
  const started = performance.now();
  const body = Buffer.from('uploaded');
  for (; tries < 300 && performance.now() - started < 40_000; tries++) {
    const request = Buffer.concat([encodeRequest(Op.PUT, `sub/up-${tries}.bin`, body.length), body, createHash('sha256').update(body).digest()]);
    const reply = await tcpRequest(s.port, request);
    if (reply.status === 0) stored++;
  }
  const escaped = readdirSync(s.outside);
  t.same(escaped, [], `after ${tries} PUTs (${stored} stored), the outside folder holds ${JSON.stringify(escaped)}`);
});

t.test('a PUT does not follow a symlink planted at a temporary name', async (t) => {
  const s = await startServer(t, {});
  const victim = path.join(s.outside, 'victim.txt');
  writeFileSync(victim, 'victim');
  // Today's names are NAME.part-tcp-PORT (TCP) and NAME.part-CONNECTION (UDP): plant the one
  // this client will use, as a local user of the server's machine could.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const localPort = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  symlinkSync(victim, path.join(s.root, `up.bin.part-tcp-${localPort}`));
  const body = Buffer.from('HELLO');
  const socket = net.connect({ host: '127.0.0.1', port: s.port, localAddress: '127.0.0.1', localPort });
  socket.on('error', () => {});
  socket.on('data', () => {});
  socket.end(Buffer.concat([encodeRequest(Op.PUT, 'up.bin', body.length), body, createHash('sha256').update(body).digest()]));
  await new Promise((resolve) => socket.on('close', resolve));
  t.equal(readFileSync(victim, 'utf8'), 'victim', 'the file the planted link points at is untouched');
  const stored = lstatSync(path.join(s.root, 'up.bin'), { throwIfNoEntry: false });
  t.ok(stored === undefined || stored.isFile(), 'up.bin is a regular file, or was not stored');
});

t.test('a name that starts with two dots, such as ..hidden, is served', async (t) => {
  const s = await startServer(t, { '..hidden': 'dotted', '..dir/x.txt': 'x' });
  const reply = await tcpRequest(s.port, encodeRequest(Op.GET, '..hidden'));
  t.equal(reply.body?.toString(), 'dotted', `..hidden: ${reply.message ?? 'served'}`);
  const nested = await tcpRequest(s.port, encodeRequest(Op.GET, '..dir/x.txt'));
  t.equal(nested.body?.toString(), 'x', `..dir/x.txt: ${nested.message ?? 'served'}`);
  const up = await tcpRequest(s.port, encodeRequest(Op.GET, '../root/..hidden'));
  t.equal(up.status, 1, `../root/..hidden is still refused: ${up.message}`);
});

t.test('a TCP GET of a folder is refused with an error and nothing else', async (t) => {
  const s = await startServer(t, { 'sub/x.txt': 'x' });
  const reply = await tcpRequest(s.port, encodeRequest(Op.GET, 'sub'));
  t.equal(reply.status, 1, `the reply starts with the error status (was ${reply.status})`);
  t.match(reply.message, /folder/, `it says why: ${reply.message}`);
  t.equal(reply.all.length, 3 + Buffer.byteLength(reply.message ?? ''), `nothing follows the error (${reply.all.length} bytes in all)`);
});


t.test('TCP clients that reset or stop reading mid-transfer leave no file descriptor behind', async (t) => {
  const s = await startServer(t, { 'big.bin': Buffer.alloc(16 * MiB, 7), 'small.txt': 'warm' });
  const fds = () => readdirSync(`/proc/${s.pid}/fd`).length;
  t.equal((await tcpRequest(s.port, encodeRequest(Op.GET, 'small.txt'))).body?.toString(), 'warm', 'a whole GET first, to open what the runtime opens lazily');
  await delay(200);
  const before = fds();
  const n = 20;
  for (let i = 0; i < n; i++) {
    const socket = net.connect({ host: '127.0.0.1', port: s.port });
    socket.on('error', () => {});
    socket.write(encodeRequest(Op.GET, 'big.bin'));
    // Half read a little and reset; half never read, so that the server's writes back up first.
    if (i % 2 === 0) await new Promise((resolve) => socket.once('data', resolve));
    else await delay(300);
    socket.pause();
    socket.resetAndDestroy();
    await new Promise((resolve) => socket.once('close', resolve));
  }
  const started = performance.now();
  while (fds() > before && performance.now() - started < 10_000) await delay(100);
  t.ok(fds() <= before, `the server holds ${fds()} descriptors after ${n} resetting clients (${before} before)`);
});
