import t from 'tap';
import { Buffer } from 'node:buffer';
import dgram from 'node:dgram';
import { Kind, MAGIC, msToUs, PDU_LENGTH, readReply, readRequest, Reply, Request, request, VERSION } from './protocol.ts';
import { answer, createTimeServer, parseSkew, skewedClock } from './server.ts';
import { cristian, probeServer } from './client.ts';

const hex = (buf: Uint8Array) => Buffer.from(buf).toString('hex');

t.test('both PDUs are 16 bytes, laid out as specified', async (t) => {
  t.equal(Request.fixedLength, PDU_LENGTH);
  t.equal(Reply.fixedLength, PDU_LENGTH);
  t.equal(hex(Request.encode(request(0x0a0b0c0d))), '4352' + '01' + '01' + '0a0b0c0d' + '0000000000000000');
  const reply = { magic: MAGIC, version: VERSION, kind: Kind.reply, id: 7, serverTimeUs: 1_795_551_436_986_743n };
  t.equal(hex(Reply.encode(reply)), '4352' + '01' + '02' + '00000007' + '0006610b6593d977');
  t.same(Reply.decode(Reply.encode(reply)), [reply, 16]);
  t.same(Request.decode(Request.encode(request(1))), [request(1), 16]);
  const big = new Uint8Array(20);
  Reply.encode(reply, big, 4);
  t.same(Reply.decode(big, 4), [reply, 20]);
});

t.test('readRequest() says what is wrong with a datagram', async (t) => {
  const good = Request.encode(request(9));
  t.equal(readRequest(good).id, 9);
  t.throws(() => readRequest(good.subarray(0, 15)), { name: 'SyntaxError', message: 'Cannot decode time request: expected 16 bytes, received 15' });
  t.throws(() => readRequest(new Uint8Array(0)), { message: /received 0/ });
  const magic = Buffer.from(good);
  magic[0] = 0;
  t.throws(() => readRequest(magic), { message: /expected magic 0x4352 \("CR"\), received 0x0052/ });
  const version = Buffer.from(good);
  version[2] = 9;
  t.throws(() => readRequest(version), { message: /expected version 1, received 9/ });
  t.throws(() => readRequest(Reply.encode({ magic: MAGIC, version: VERSION, kind: Kind.reply, id: 1, serverTimeUs: 0n })), { message: /expected kind 1, received 2/ });
});

t.test('readReply() accepts only the answer to the current id', async (t) => {
  const wire = Reply.encode({ magic: MAGIC, version: VERSION, kind: Kind.reply, id: 5, serverTimeUs: 1n });
  t.equal(readReply(wire, 5).serverTimeUs, 1n);
  t.throws(() => readReply(wire, 6), { message: 'Cannot decode time reply: it answers request 5, not 6' });
  t.throws(() => readReply(Request.encode(request(5)), 5), SyntaxError);
  t.throws(() => readReply(wire.subarray(1), 5), SyntaxError);
});

t.test('answer() replies with the skewed clock in microseconds, or drops', async (t) => {
  const clock = skewedClock(2500, () => 1_000_000.1234);
  const outcome = answer(Request.encode(request(3)), clock);
  t.ok('reply' in outcome);
  if ('reply' in outcome) t.equal(readReply(outcome.reply, 3).serverTimeUs, 1_002_500_123n);
  t.same(answer(Buffer.from('hola'), clock), { dropped: 'Cannot decode time request: expected 16 bytes, received 4' });
  t.equal(msToUs(1.0005), 1001n);
});

t.test('parseSkew()', async (t) => {
  t.equal(parseSkew('2500'), 2500);
  t.equal(parseSkew('-1000.5'), -1000.5);
  t.equal(parseSkew('+.5'), 0.5);
  for (const bad of ['', 'abc', '1e3', '--5', '2500ms', '1e13']) t.throws(() => parseSkew(bad), { name: 'UsageError', message: /argument --skew/ }, bad);
});

t.test('cristian()', async (t) => {
  t.test('uses the probe with the smallest round trip and bounds the error by RTT/2', async (t) => {
    // Server 100 ms ahead; probe 2 has the smallest RTT (4 ms).
    const probes = [
      { t0: 0, serverMs: 105, t1: 10 },
      { t0: 20, serverMs: 122, t1: 24 },
      { t0: 30, serverMs: 140, t1: 50 },
    ];
    const e = cristian(probes);
    t.equal(e.best, 1);
    t.equal(e.rttMs, 4);
    t.equal(e.estimateMs, 124);
    t.equal(e.offsetMs, 100);
    t.equal(e.boundMs, 2);
  });

  t.test('a known minimum one-way time tightens the bound, never below 0', async (t) => {
    t.equal(cristian([{ t0: 0, serverMs: 5, t1: 10 }], 3).boundMs, 2);
    t.equal(cristian([{ t0: 0, serverMs: 5, t1: 10 }], 8).boundMs, 0);
  });

  t.test('asymmetric legs err by half their difference, within the bound', async (t) => {
    // True offset 0; 30 ms out, 10 ms back: the server reads 30, the estimate says 50 at t1 = 40.
    const e = cristian([{ t0: 0, serverMs: 30, t1: 40 }]);
    t.equal(e.offsetMs, 10, 'error = (30 − 10) / 2');
    t.ok(Math.abs(e.offsetMs) <= e.boundMs, 'still within ±RTT/2');
  });

  t.test('refuses an empty set', async (t) => {
    t.throws(() => cristian([]), { name: 'RangeError', message: /at least one answered probe/ });
  });
});

t.test('probeServer() against the server on loopback', async (t) => {
  const server = createTimeServer('127.0.0.1', skewedClock(-750));
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address();
  const result = await probeServer('127.0.0.1', port, { probes: 6 });
  t.equal(result.probes.length, 6);
  t.equal(result.lost, 0);
  const e = cristian(result.probes);
  t.ok(Math.abs(e.offsetMs + 750) <= e.boundMs, `offset ${e.offsetMs.toFixed(3)} ms is −750 within ±${e.boundMs.toFixed(3)} ms`);

  t.test('retries a lost reply with a new id and ignores the late one', async (t) => {
    // A server that answers the first request late (after the client's
    // timeout, while its retry is pending) and the others after 10 ms.
    const flaky = dgram.createSocket('udp4');
    const timers = new Set<ReturnType<typeof setTimeout>>();
    let seen = 0;
    flaky.on('message', (message, peer) => {
      const outcome = answer(message, skewedClock(0));
      if (!('reply' in outcome)) return;
      seen += 1;
      const timer = setTimeout(() => {
        timers.delete(timer);
        flaky.send(outcome.reply, peer.port, peer.address);
      }, seen === 1 ? 105 : 10);
      timers.add(timer);
    });
    await new Promise<void>((resolve) => flaky.bind(0, '127.0.0.1', resolve));
    t.teardown(() => {
      for (const timer of timers) clearTimeout(timer);
      return new Promise<void>((resolve) => flaky.close(() => resolve()));
    });
    const lostTries: number[] = [];
    const result = await probeServer('127.0.0.1', flaky.address().port, { probes: 3, timeoutMs: 100, onLost: (i) => lostTries.push(i) });
    t.equal(result.probes.length, 3);
    t.equal(result.lost, 1);
    t.same(lostTries, [0]);
    t.equal(seen, 4, 'four requests: the lost try, its retry, two more probes');
    t.ok(result.probes.every((p) => p.t1 - p.t0 >= 9 && p.t1 - p.t0 < 50), `every probe took its own reply (${result.probes.map((p) => (p.t1 - p.t0).toFixed(1)).join(', ')} ms), not the late one`);
  });

  t.test('total silence rejects with a clear error after every try', async (t) => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const port = silent.address().port;
    await t.rejects(probeServer('127.0.0.1', port, { probes: 4, timeoutMs: 50, retries: 2 }), {
      name: 'CliError',
      message: `no reply from 127.0.0.1:${port} after 3 tries (0.05 s each): is the server running?`,
    });
  });
});
