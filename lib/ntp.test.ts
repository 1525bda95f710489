import t from 'tap';
import dgram from 'node:dgram';
import { Buffer } from 'node:buffer';
import {
  Mode,
  NTP_PACKET_LENGTH,
  NtpError,
  NtpPacket,
  NtpSynchroniser,
  STRATUM_UNSYNCHRONISED,
  describeReferenceId,
  isLoopback,
  msToNtp,
  ntpToMs,
  offsetAndDelay,
  parseNtpServer,
  sntpQuery,
  validateReply,
} from './ntp.ts';
import { ShortBufferError } from './pdu.ts';

const hex = (buf: Uint8Array) => Buffer.from(buf).toString('hex');

const packet = (over: Partial<NtpPacket> = {}): NtpPacket => ({
  leap: 0,
  version: 4,
  mode: Mode.server,
  stratum: 2,
  poll: 6,
  precision: -20,
  rootDelay: 0x0001_8000,
  rootDispersion: 0x0000_4000,
  referenceId: Uint8Array.of(127, 0, 0, 1),
  reference: msToNtp(Date.UTC(2026, 10, 24, 20)),
  origin: 0x1234_5678_9abc_def0n,
  receive: msToNtp(Date.UTC(2026, 10, 24, 20, 0, 1)),
  transmit: msToNtp(Date.UTC(2026, 10, 24, 20, 0, 1, 1)),
  ...over,
});

/** How a fake server in these tests answers. */
interface FakeOptions {
  aheadMs?: number;
  stratum?: number;
  wrongOrigin?: boolean;
  kiss?: string;
  silent?: boolean;
  /** Send a wrong-origin reply before the real one. */
  staleFirst?: boolean;
  holdMs?: number;
}

/** A tiny NTP server on loopback, written from RFC 5905 without this module's codec. */
async function fakeServer(t: Tap, options: FakeOptions = {}): Promise<{ port: number; requests: number }> {
  const socket = dgram.createSocket('udp4');
  const state = { port: 0, requests: 0 };
  socket.on('message', (request, peer) => {
    state.requests++;
    // A hold delays the request on its way in, as a slow path would.
    if (options.holdMs) setTimeout(() => answer(request, peer), options.holdMs);
    else answer(request, peer);
  });
  const answer = (request: Buffer, peer: dgram.RemoteInfo) => {
    if (options.silent) return;
    const preciseNow = () => performance.timeOrigin + performance.now();
    const receive = preciseNow() + (options.aheadMs ?? 0);
    const reply = Buffer.alloc(48);
    reply[0] = (0 << 6) | (4 << 3) | 4;
    reply[1] = options.kiss ? 0 : (options.stratum ?? 3);
    if (options.kiss) reply.write(options.kiss, 12, 'latin1');
    else reply.set([127, 0, 0, 1], 12);
    request.copy(reply, 24, 40, 48); // origin = the request's transmit
    if (options.wrongOrigin) reply[31] = (reply[31] ?? 0) ^ 0xff;
    const stamp = (ms: number, at: number) => {
      const seconds = Math.floor(ms / 1000) + 2_208_988_800;
      reply.writeUInt32BE(seconds >>> 0, at);
      reply.writeUInt32BE(Math.floor((((ms % 1000) / 1000) * 2 ** 32)) >>> 0, at + 4);
    };
    stamp(receive, 32);
    const send = () => {
      stamp(preciseNow() + (options.aheadMs ?? 0), 40);
      if (options.staleFirst) {
        const stale = Buffer.from(reply);
        stale[31] = (stale[31] ?? 0) ^ 0x55;
        socket.send(stale, peer.port, peer.address);
      }
      socket.send(reply, peer.port, peer.address);
    };
    send();
  };
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  state.port = socket.address().port;
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return state;
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('NtpPacket', async (t) => {
  t.test('round-trips every header field, at offset 0 and at an offset', async (t) => {
    const value = packet();
    const wire = NtpPacket.encode(value);
    t.equal(wire.length, NTP_PACKET_LENGTH);
    t.equal(NtpPacket.encodingLength(value), NTP_PACKET_LENGTH);
    const [back, end] = NtpPacket.decode(wire);
    t.same(back, value);
    t.equal(end, 48);
    t.equal(hex(NtpPacket.encode(back)), hex(wire));
    const big = new Uint8Array(53);
    NtpPacket.encode(value, big, 5);
    t.same(NtpPacket.decode(big, 5), [value, 53]);
  });

  t.test('lays out the first word as RFC 5905 figure 8 does', async (t) => {
    const wire = NtpPacket.encode(packet({ leap: 3, version: 4, mode: 3, stratum: 0, poll: -6, precision: -20 }));
    t.equal(hex(wire.subarray(0, 4)), 'e300faec', 'LI 3, VN 4, mode 3 = 0xe3; poll -6 = 0xfa; precision -20 = 0xec');
  });

  t.test('decodes a capture of a real chronyd reply', async (t) => {
    // chronyd 4.3 with `local stratum 8` on loopback (captured for this test,
    // 2026-11-24), answering a request whose transmit was 0xeeb07061_a2661000.
    const wire = Buffer.from('240800e600000000000000007f7f0101eeb070605fbe36cbeeb07061a2661000eeb07061a2689231eeb07061a26df3c4', 'hex');
    const [reply] = NtpPacket.decode(wire);
    t.equal(reply.mode, Mode.server);
    t.equal(reply.stratum, 8);
    t.equal(reply.precision, -26);
    t.equal(describeReferenceId(reply.referenceId, reply.stratum), '127.127.1.1');
    t.doesNotThrow(() => validateReply(reply, 0xeeb07061a2661000n));
    t.equal(new Date(ntpToMs(reply.transmit)).toISOString().slice(0, 16), '2026-11-24T20:21', 'its transmit time');
    t.ok(ntpToMs(reply.transmit) - ntpToMs(reply.receive) < 1, 'under a millisecond inside chronyd');
  });

  t.test('refuses a short buffer and out-of-range fields', async (t) => {
    t.throws(() => NtpPacket.decode(new Uint8Array(47)), { code: 'ERR_SHORT_BUFFER', expected: 48, received: 47 });
    try {
      NtpPacket.decode(new Uint8Array(10));
    } catch (error) {
      t.type(error, ShortBufferError, 'a ShortBufferError, so a reader can tell short from malformed');
    }
    t.throws(() => NtpPacket.decode(new Uint8Array(47)), { message: 'Cannot decode NTP packet: expected 48 bytes, received 47' });
    t.throws(() => NtpPacket.encode(packet({ mode: 8 })), { name: 'RangeError', message: /field "mode": expected an integer from 0 to 7, received 8/ });
    t.throws(() => NtpPacket.encode(packet({ poll: 200 })), RangeError);
    t.throws(() => NtpPacket.encode(packet({ referenceId: new Uint8Array(3) })), RangeError);
  });
});

t.test('timestamps', async (t) => {
  t.equal(msToNtp(0), BigInt(2_208_988_800) << 32n, 'the Unix epoch is 2208988800 s after 1900');
  t.equal(msToNtp(500), (BigInt(2_208_988_800) << 32n) | 0x8000_0000n, 'half a second is 2^31 of fraction');
  for (const ms of [0, 1.5, 999.9999, Date.UTC(2026, 10, 24, 20, 15, 16, 123) + 0.456, Date.UTC(2036, 1, 7, 6, 28, 15), Date.UTC(2036, 1, 7, 6, 28, 17), Date.UTC(2100, 0, 1)]) {
    t.ok(Math.abs(ntpToMs(msToNtp(ms)) - ms) < 0.001, `${new Date(ms).toISOString()} round-trips within a microsecond`);
  }
  t.equal(msToNtp(Date.UTC(2036, 1, 7, 6, 28, 16)) >> 32n, 0n, 'era 1 starts on 2036-02-07T06:28:16Z and wraps to 0');
  t.equal(ntpToMs(1n << 32n), Date.UTC(2036, 1, 7, 6, 28, 17), 'a small seconds field is read as era 1');
});

t.test('offsetAndDelay() follows RFC 5905 with the textbook numbers', async (t) => {
  // Client 100 ms behind, 10 ms each way, 1 ms in the server.
  t.same(offsetAndDelay(1000, 1110, 1111, 1021), { offsetMs: 100, delayMs: 20 });
  // Asymmetric legs (30 ms out, 10 ms back) bias the offset by half the difference.
  t.same(offsetAndDelay(0, 30, 30, 40), { offsetMs: 10, delayMs: 40 });
});

t.test('validateReply()', async (t) => {
  const origin = 0x1234_5678_9abc_def0n;
  t.doesNotThrow(() => validateReply(packet(), origin));
  const code = (p: NtpPacket) => {
    try {
      validateReply(p, origin);
      return 'accepted';
    } catch (error) {
      return `${(error as NtpError).code} ${(error as NtpError).message}`;
    }
  };
  t.match(code(packet({ origin: origin + 1n })), /^ERR_NTP_ORIGIN origin timestamp 123456789abcdef1 does not match/);
  t.match(code(packet({ mode: Mode.client })), /^ERR_NTP_INVALID mode 3/);
  t.match(code(packet({ mode: Mode.broadcast })), /^ERR_NTP_INVALID mode 5/);
  t.match(code(packet({ stratum: 16 })), /^ERR_NTP_INVALID stratum 16/);
  t.match(code(packet({ leap: 3 })), /^ERR_NTP_INVALID leap indicator 3/);
  t.match(code(packet({ transmit: 0n })), /^ERR_NTP_INVALID transmit timestamp is zero/);
  t.match(code(packet({ version: 0 })), /^ERR_NTP_INVALID version 0/);
  t.match(code(packet({ stratum: 0, referenceId: new TextEncoder().encode('RATE') })), /^ERR_NTP_KISS kiss-o'-death "RATE"/);
  t.match(code(packet({ stratum: 0, origin: 1n, referenceId: new TextEncoder().encode('DENY') })), /^ERR_NTP_ORIGIN/, 'a kiss with a wrong origin is not believed');
});

t.test('parseNtpServer() and isLoopback()', async (t) => {
  t.same(parseNtpServer('pool.ntp.org'), { host: 'pool.ntp.org', port: 123 });
  t.same(parseNtpServer('127.0.0.1:11123'), { host: '127.0.0.1', port: 11123 });
  t.same(parseNtpServer('[::1]:123'), { host: '::1', port: 123 });
  for (const bad of ['', 'host:', 'host:99999', 'host:0', '[nope]:1', 'a b', ':123']) t.throws(() => parseNtpServer(bad), TypeError, JSON.stringify(bad));
  t.ok(isLoopback('127.0.0.1') && isLoopback('127.8.9.10') && isLoopback('::1') && isLoopback('localhost'));
  t.notOk(isLoopback('pool.ntp.org') || isLoopback('10.0.0.1') || isLoopback('127.example.com'));
});

t.test('sntpQuery() against fake servers on loopback', async (t) => {
  t.test('measures a server 3.5 s ahead within the delay', async (t) => {
    const fake = await fakeServer(t, { aheadMs: 3500 });
    const sample = await sntpQuery('127.0.0.1', fake.port);
    t.ok(Math.abs(sample.offsetMs - 3500) <= sample.delayMs / 2 + 0.1, `offset ${sample.offsetMs.toFixed(3)} ms is 3500 within δ/2 + 0.1 ms`);
    // Sanity, not speed: a loopback round trip, however busy the machine, is not seconds long.
    t.ok(sample.delayMs >= 0 && sample.delayMs < 2000, `delay ${sample.delayMs.toFixed(3)} ms`);
    t.equal(sample.stratum, 3);
    t.equal(sample.server, `127.0.0.1:${fake.port}`);
  });

  t.test('ignores a reply with the wrong origin and times out naming it', async (t) => {
    const fake = await fakeServer(t, { wrongOrigin: true });
    const error = await sntpQuery('127.0.0.1', fake.port, { timeoutMs: 300 }).catch((e: NtpError) => e);
    t.type(error, NtpError);
    t.equal((error as NtpError).code, 'ERR_NTP_TIMEOUT');
    t.match((error as Error).message, /no valid reply from 127\.0\.0\.1:\d+ within 0\.3 s; ignored 1 reply: origin timestamp [0-9a-f]{16} does not match/);
  });

  t.test('takes the real reply after a stale one', async (t) => {
    const fake = await fakeServer(t, { staleFirst: true });
    const sample = await sntpQuery('127.0.0.1', fake.port, { timeoutMs: 1000 });
    // The fake answers with the true time: the offset is 0 within half the round trip.
    t.ok(Math.abs(sample.offsetMs) <= sample.delayMs / 2 + 0.1, `offset ${sample.offsetMs.toFixed(3)} ms, δ/2 ${(sample.delayMs / 2).toFixed(3)} ms`);
  });

  t.test('a kiss-o\'-death rejects at once with its code', async (t) => {
    const fake = await fakeServer(t, { kiss: 'RATE' });
    const error = (await sntpQuery('127.0.0.1', fake.port).catch((e: unknown) => e)) as NtpError;
    t.equal(error.code, 'ERR_NTP_KISS');
    t.equal(error.kissCode, 'RATE');
    t.match(error.message, /127\.0\.0\.1:\d+ sent kiss-o'-death "RATE"/);
  });

  t.test('silence is a timeout; nothing listening is a socket error', async (t) => {
    const fake = await fakeServer(t, { silent: true });
    const silent = (await sntpQuery('127.0.0.1', fake.port, { timeoutMs: 200 }).catch((e: unknown) => e)) as NtpError;
    t.equal(silent.code, 'ERR_NTP_TIMEOUT');
    t.equal(silent.message, `no valid reply from 127.0.0.1:${fake.port} within 0.2 s`);
    const closed = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => closed.bind(0, '127.0.0.1', resolve));
    const port = closed.address().port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = (await sntpQuery('127.0.0.1', port, { timeoutMs: 1000 }).catch((e: unknown) => e)) as NtpError;
    t.equal(refused.code, 'ERR_NTP_SOCKET');
    t.match(refused.message, /nothing listens there/);
  });

  t.test('an aborted signal stops the query', async (t) => {
    const fake = await fakeServer(t, { silent: true });
    const controller = new AbortController();
    const pending = sntpQuery('127.0.0.1', fake.port, { timeoutMs: 5000, signal: controller.signal });
    controller.abort(new Error('stop'));
    await t.rejects(pending, { message: 'stop' });
  });
});

t.test('NtpSynchroniser', async (t) => {
  t.test('applies the offset of the best sample and reports stratum + 1', async (t) => {
    const fake = await fakeServer(t, { aheadMs: 3500, stratum: 8 });
    const lines: string[] = [];
    const sync = new NtpSynchroniser({ servers: [{ host: '127.0.0.1', port: fake.port }], samples: 4, log: (l) => lines.push(l) });
    t.equal(sync.state().stratum, STRATUM_UNSYNCHRONISED, 'unsynchronised before the first round');
    const sample = await sync.round();
    t.ok(sample);
    t.equal(fake.requests, 4, '4 samples in a round');
    const state = sync.state();
    t.equal(state.synchronised, true);
    t.equal(state.stratum, 9);
    t.equal(state.sourceStratum, 8);
    // Within half the round trip of the sample it kept, plus a millisecond for the two clock reads.
    const ahead = sync.now() - Date.now();
    t.ok(Math.abs(ahead - 3500) <= state.delayMs / 2 + 1, `now() is 3.5 s ahead of the system clock (${ahead.toFixed(3)} ms)`);
    t.match(lines.join('\n'), /synchronised with 127\.0\.0\.1:\d+ \(stratum 8\): offset \+3\d{3}\.\d{3} ms/);
  });

  t.test('prefers the server with the smaller synchronisation distance', async (t) => {
    const slow = await fakeServer(t, { aheadMs: 1000, holdMs: 60 });
    const fast = await fakeServer(t, { aheadMs: 2000 });
    const sync = new NtpSynchroniser({ servers: [{ host: '127.0.0.1', port: slow.port }, { host: '127.0.0.1', port: fast.port }], samples: 2 });
    const sample = await sync.round();
    t.equal(sample?.server, `127.0.0.1:${fast.port}`);
    t.ok(Math.abs(sync.state().offsetMs - 2000) <= sync.state().delayMs / 2 + 0.1, `offset ${sync.state().offsetMs.toFixed(3)} ms is 2000 within δ/2`);
  });

  t.test('serves on unsynchronised when no server answers, and says why', async (t) => {
    const fake = await fakeServer(t, { wrongOrigin: true, aheadMs: 3500 });
    const lines: string[] = [];
    const sync = new NtpSynchroniser({ servers: [{ host: '127.0.0.1', port: fake.port }], samples: 2, timeoutMs: 200, log: (l) => lines.push(l) });
    t.equal(await sync.round(), undefined);
    t.equal(sync.state().synchronised, false);
    t.equal(sync.state().stratum, 16);
    t.ok(Math.abs(sync.now() - Date.now()) < 5, 'no offset applied');
    t.match(lines.join('\n'), /no usable NTP reply this round .*origin timestamp .* does not match.*serving unsynchronised/);
  });

  t.test('becomes unsynchronised once its last sample is too old', async (t) => {
    let now = Date.now();
    const fake = await fakeServer(t);
    const sync = new NtpSynchroniser({ servers: [{ host: '127.0.0.1', port: fake.port }], samples: 1, maxAgeMs: 1000, clock: () => now });
    await sync.round();
    t.equal(sync.state().synchronised, true);
    now += 1500;
    t.equal(sync.state().synchronised, false);
    t.equal(sync.state().stratum, 16);
    t.equal(sync.state().ageMs, 1500);
  });

  t.test('backs off on RATE and drops a server on DENY', async (t) => {
    const rate = await fakeServer(t, { kiss: 'RATE' });
    const deny = await fakeServer(t, { kiss: 'DENY' });
    const lines: string[] = [];
    const sync = new NtpSynchroniser({ servers: [{ host: '127.0.0.1', port: rate.port }, { host: '127.0.0.1', port: deny.port }], samples: 3, log: (l) => lines.push(l) });
    await sync.round();
    t.equal(rate.requests, 1, 'no more samples after a RATE kiss');
    t.equal(deny.requests, 1, 'no more samples after a DENY kiss');
    await sync.round();
    await sync.round();
    t.equal(rate.requests, 1, 'RATE: skipped for 2 rounds');
    t.equal(deny.requests, 1, 'DENY: never asked again');
    await sync.round();
    t.equal(rate.requests, 2, 'asked again after the back-off');
    t.match(lines[0], /"RATE": skipping it for 2 rounds.*"DENY": not asking it again/);
  });

  t.test('start() polls on its interval and stop() ends it', async (t) => {
    const fake = await fakeServer(t);
    const sync = new NtpSynchroniser({ servers: [{ host: '127.0.0.1', port: fake.port }], samples: 1, intervalMs: 100 });
    sync.start();
    await new Promise((resolve) => setTimeout(resolve, 450));
    sync.stop();
    sync.stop();
    const seen = fake.requests;
    t.ok(seen >= 3 && seen <= 6, `${seen} rounds in 450 ms at 100 ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    t.equal(fake.requests, seen, 'none after stop()');
  });
});
