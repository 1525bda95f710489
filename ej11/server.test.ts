/**
 * The server under attack: spawned as a user would run it (one node process,
 * so that its PID is the server's own), and talked to by raw `node:dgram`
 * and `node:net` sockets that do what a faulty or hostile peer does.
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Child } from '../lib/fixtures/spawn.ts';
import { getUdp } from './client.ts';
import { AddressTokens } from './server.ts';
import { encodePacket, Flag, MAX_DATA, Type } from './protocol.ts';
import { encodeRequest, Op } from './tcp.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
// The address-validation exchange (README, "The PDU"): a GET or PUT without a valid token is
// answered with RETRY, whose data is the token; the client sends its request again with the
// TOKEN flag and the token before its data.
const RETRY = 9;
const TOKEN_FLAG = 4;

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Served {
  child: Child;
  port: number;
  pid: number;
  root: string;
  outside: string;
}

/** Starts the server on port 0 over a fresh folder holding `files`; `outside` is a folder next to it. */
async function startServer(t: Test, files: Record<string, string | Buffer>): Promise<Served> {
  const base = realpathSync(mkdtempSync(path.join(tmpdir(), 'ej11-server-')));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), content);
  }
  const child = new Child([process.execPath, '--import', 'tsx', path.join(HERE, 'server.ts'), '--host', '127.0.0.1', '--port', '0', '--dir', root]);
  t.teardown(async () => {
    await child.kill();
    rmSync(base, { recursive: true, force: true });
  });
  const port = await child.ready();
  return { child, port, pid: child.process.pid as number, root, outside };
}

async function udpSocket(t: Test): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

function rawPacket(type: number, flags: number, connection: number, data: Uint8Array, sequence = 7): Buffer {
  return Buffer.from(encodePacket({ sequence, ack: 0, ackBitfield: 0, type, flags, window: 1024, connection, through: 0, data }));
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Reads one TCP reply to the end: the status, then the error message or the file and its SHA-256. */
async function tcpRequest(port: number, request: Buffer): Promise<{ all: Buffer; status: number | undefined; message?: string; body?: Buffer }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setTimeout(20_000, () => socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.write(request);
  await new Promise<void>((resolve) => socket.on('close', () => resolve()).on('error', () => {}));
  const all = Buffer.concat(chunks);
  const status = all[0];
  if (status === 1 && all.length >= 3) return { all, status, message: all.subarray(3, 3 + all.readUInt16BE(1)).toString('utf8') };
  if (status === 0 && all.length >= 9) return { all, status, body: all.subarray(9, 9 + Number(all.readBigUInt64BE(1))) };
  return { all, status };
}

/**
 * Sends a GET of `name` (bytes) from a raw socket, echoing the token if the server asks for
 * one, and resolves with the first ERROR's text (or undefined after 3 s).
 */
async function rawGet(t: Test, port: number, name: (room: number) => Uint8Array): Promise<string | undefined> {
  const socket = await udpSocket(t);
  const connection = 0xc0ffee;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 3000);
    socket.on('message', (datagram) => {
      const type = datagram[12];
      if (type === RETRY) {
        const token = datagram.subarray(24);
        socket.send(rawPacket(Type.GET, Flag.SYN | TOKEN_FLAG, connection, Buffer.concat([token, name(MAX_DATA - token.length)])), port, '127.0.0.1');
      } else if (type === Type.ERROR) {
        clearTimeout(timer);
        resolve(datagram.subarray(24).toString('utf8'));
      }
    });
    socket.send(rawPacket(Type.GET, Flag.SYN, connection, name(MAX_DATA)), port, '127.0.0.1');
  });
}

/** Runs `node -e` swapping `dir` between a real folder and a symbolic link to `outside` until killed. */
function swapper(t: Test, dir: string, outside: string): Child {
  symlinkSync(outside, `${dir}.link`);
  const code = `
    const { renameSync } = require('node:fs');
    const [dir] = process.argv.slice(1);
    const end = Date.now() + 60000;
    for (let i = 0; Date.now() < end; i++) {
      renameSync(dir, dir + '.dir'); renameSync(dir + '.link', dir);
      renameSync(dir, dir + '.link'); renameSync(dir + '.dir', dir);
    }`;
  const child = new Child([process.execPath, '-e', code, dir]);
  t.teardown(() => child.kill());
  return child;
}

t.test('AddressTokens: a token is valid for its own address and port, in its time bucket and the next', async (t) => {
  let now = 0;
  const tokens = new AddressTokens({ bucketMs: 1000, now: () => now });
  const token = tokens.make('127.0.0.1', 5000);
  t.equal(token.length, 16);
  t.ok(tokens.valid(token, '127.0.0.1', 5000));
  t.notOk(tokens.valid(token, '127.0.0.1', 5001), 'not for another port');
  t.notOk(tokens.valid(token, '127.0.0.2', 5000), 'not for another address');
  t.notOk(new AddressTokens({ bucketMs: 1000, now: () => now }).valid(token, '127.0.0.1', 5000), 'not for another process (secret)');
  now = 1500;
  t.ok(tokens.valid(token, '127.0.0.1', 5000), 'still in the next bucket');
  now = 2000;
  t.notOk(tokens.valid(token, '127.0.0.1', 5000), 'expired two buckets later');
});

t.test('one GET from an address that never answers gets at most 3x its size back', async (t) => {
  const s = await startServer(t, { 'big.bin': Buffer.alloc(8 * MiB, 1) });
  const socket = await udpSocket(t);
  let received = 0;
  let datagrams = 0;
  socket.on('message', (datagram) => {
    received += datagram.length;
    datagrams++;
  });
  const get = rawPacket(Type.GET, Flag.SYN, 0x5eed, utf8('big.bin'));
  socket.send(get, s.port, '127.0.0.1');
  await delay(4000);
  t.ok(received <= 3 * get.length, `one ${get.length}-byte GET brought back ${received} bytes in ${datagrams} datagrams within 4 s (bound ${3 * get.length})`);
  t.equal(s.child.process.exitCode, null, 'the server still runs');
});

t.test('a transfer whose client validated its address but never acknowledges stops after a bounded number of bytes', async (t) => {
  const s = await startServer(t, { 'big.bin': Buffer.alloc(8 * MiB, 1) });
  const socket = await udpSocket(t);
  const connection = 0xbad;
  let received = 0;
  let last = performance.now();
  let echoed = false;
  socket.on('message', (datagram) => {
    received += datagram.length;
    last = performance.now();
    if (datagram[12] === RETRY && !echoed) {
      echoed = true; // a real address: it answers the token, and then never acknowledges anything
      socket.send(rawPacket(Type.GET, Flag.SYN | TOKEN_FLAG, connection, Buffer.concat([datagram.subarray(24), utf8('big.bin')])), s.port, '127.0.0.1');
    }
  });
  socket.send(rawPacket(Type.GET, Flag.SYN, connection, utf8('big.bin')), s.port, '127.0.0.1');
  const started = performance.now();
  while (performance.now() - started < 30_000 && (received === 0 || performance.now() - last < 3000)) await delay(100);
  const quiet = performance.now() - last >= 3000;
  t.ok(quiet, `the server stopped sending (last datagram ${((last - started) / 1000).toFixed(1)} s after the GET)`);
  t.ok(received <= 64 * 1024, `it sent ${received} bytes to a peer that acknowledged nothing (bound 64 KiB)`);
});

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

t.test('datagrams whose error message would exceed a packet leave the server alive and serving', async (t) => {
  // A name as long as the packet allows (it is less by the token's size once the server asks for one).
  const euros = (room: number) => utf8(`../${'€'.repeat(Math.min(465, Math.floor((room - 3) / 3)))}`);
  const nuls = (room: number) => new Uint8Array(Math.min(700, room));
  for (const [what, name] of [['../ + 465 × €', euros], ['700 NULs', nuls]] as const) {
    const s = await startServer(t, { 'ok.txt': 'still here' });
    const error = await rawGet(t, s.port, name);
    await delay(300);
    t.equal(s.child.process.exitCode, null, `${what}: the server still runs (stderr: ${s.child.stderr.trim().split('\n').slice(-2).join(' | ').slice(0, 300)})`);
    t.ok(error !== undefined && Buffer.byteLength(error) <= MAX_DATA, `${what}: refused with an ERROR that fits a packet: ${error?.slice(0, 120)}`);
    const out = path.join(s.outside, 'ok.txt');
    const result = await getUdp('ok.txt', out, { host: '127.0.0.1', port: s.port, idleTimeoutMs: 10_000 }).catch((e: Error) => e);
    t.equal(existsSync(out) && readFileSync(out, 'utf8'), 'still here', `${what}: a normal GET is still served (${result instanceof Error ? result.message : `${result.bytes} bytes`})`);
  }
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
