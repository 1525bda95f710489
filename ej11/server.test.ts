/**
 * The UDP server under attack (see test-peers.ts): address validation, the
 * bound on a transfer nobody acknowledges, and datagrams that once took the
 * server down.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { getUdp } from './client.ts';
import { Flag, MAX_DATA, Type } from './protocol.ts';
import { AddressTokens } from './server.ts';
import { delay, MiB, RETRY, rawGet, rawPacket, startServer, TOKEN_FLAG, udpSocket, utf8 } from './test-peers.ts';

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

