import t from 'tap';
import { Buffer } from 'node:buffer';
import {
  i32,
  i64,
  Kind,
  MAGIC,
  NEVER_SYNCHRONISED,
  readRequest,
  readResponse,
  Request,
  REQUEST_LENGTH,
  request,
  Response,
  RESPONSE_LENGTH,
  Status,
  u64n,
  VERSION,
} from './protocol.ts';
import { answerDatagram, daytimeLine, type Region, systemSource, type TimeSource } from './server.ts';
import { resolveZone } from '../lib/timezone.ts';

const hex = (buf: Uint8Array) => Buffer.from(buf).toString('hex');

const response = (over: Partial<Response> = {}): Response => ({
  magic: MAGIC,
  version: VERSION,
  kind: Kind.response,
  nonce: 0xdeadbeef,
  status: Status.ok,
  stratum: 9,
  reserved: 0,
  unixMs: Date.UTC(2026, 10, 24, 20, 15, 16, 123),
  zoneOffsetSeconds: -10800,
  ntpOffsetUs: -1234,
  ntpDelayUs: 101,
  syncAgeMs: 3200,
  zone: 'America/Argentina/Buenos_Aires',
  abbreviation: '-03',
  ...over,
});

t.test('the declared sizes are the codecs\' fixed lengths', async (t) => {
  t.equal(Request.fixedLength, REQUEST_LENGTH);
  t.equal(Response.fixedLength, RESPONSE_LENGTH);
});

t.test('Request', async (t) => {
  t.test('lays out the bytes as the specification says', async (t) => {
    const wire = Request.encode(request('UTC-03:00', 0x01020304));
    t.equal(wire.length, 56);
    t.equal(hex(wire.subarray(0, 8)), '545a' + '01' + '01' + '01020304');
    t.equal(Buffer.from(wire.subarray(8, 17)).toString(), 'UTC-03:00');
    t.ok(wire.subarray(17).every((b) => b === 0), 'NUL padding to 56 bytes');
  });

  t.test('round-trips, at offset 0 and at an offset', async (t) => {
    for (const zone of ['', 'Europe/Madrid', 'America/Argentina/ComodRivadavia', 'x'.repeat(48), 'Zoné/Ünïcode']) {
      const value = request(zone, 7);
      const wire = Request.encode(value);
      t.same(Request.decode(wire), [value, 56], JSON.stringify(zone));
      t.equal(hex(Request.encode(Request.decode(wire)[0])), hex(wire));
      const big = new Uint8Array(60);
      Request.encode(value, big, 4);
      t.same(Request.decode(big, 4), [value, 60]);
    }
  });

  t.test('refuses a zone that does not fit', async (t) => {
    t.throws(() => Request.encode(request('x'.repeat(49), 1)), { name: 'RangeError', message: /field "zone": expected at most 48 bytes/ });
  });
});

t.test('Response', async (t) => {
  t.test('round-trips signed and large fields', async (t) => {
    for (const over of [{}, { zoneOffsetSeconds: 50400, ntpOffsetUs: 3_500_000_123 }, { ntpOffsetUs: -(2 ** 40), zoneOffsetSeconds: -43200 }, { syncAgeMs: NEVER_SYNCHRONISED, stratum: 16 }, { unixMs: 0 }, { unixMs: Number.MAX_SAFE_INTEGER }]) {
      const value = response(over);
      const wire = Response.encode(value);
      t.equal(wire.length, 104);
      t.same(Response.decode(wire), [value, 104], JSON.stringify(over));
      t.equal(hex(Response.encode(Response.decode(wire)[0])), hex(wire));
    }
  });

  t.test('puts each field at its specified offset', async (t) => {
    const wire = Buffer.from(Response.encode(response()));
    t.equal(wire.readUInt16BE(0), 0x545a);
    t.equal(wire[8], 0, 'status');
    t.equal(wire[9], 9, 'stratum');
    t.equal(wire.readBigUInt64BE(12), BigInt(Date.UTC(2026, 10, 24, 20, 15, 16, 123)), 'unix_ms at 12');
    t.equal(wire.readInt32BE(20), -10800, 'zone_offset at 20, two\'s complement');
    t.equal(wire.readBigInt64BE(24), -1234n, 'ntp_offset at 24');
    t.equal(wire.readUInt32BE(32), 101, 'ntp_delay at 32');
    t.equal(wire.readUInt32BE(36), 3200, 'sync_age at 36');
    t.equal(wire.subarray(40, 70).toString(), 'America/Argentina/Buenos_Aires');
    t.equal(wire.subarray(88, 91).toString(), '-03');
  });

  t.test('readResponse() refuses what is not the answer to our request', async (t) => {
    const wire = Response.encode(response());
    t.same(readResponse(wire, 0xdeadbeef).zone, 'America/Argentina/Buenos_Aires');
    t.throws(() => readResponse(wire, 1), { name: 'SyntaxError', message: 'Cannot decode time-zone response: it answers request 3735928559, not 1' });
    t.throws(() => readResponse(wire.subarray(0, 103), 0xdeadbeef), { name: 'SyntaxError', message: /expected 104 bytes, received 103/ });
    t.throws(() => readResponse(Buffer.concat([wire, Buffer.of(0)]), 0xdeadbeef), SyntaxError);
    t.throws(() => readResponse(Response.encode(response({ kind: 1 })), 0xdeadbeef), { message: /expected kind 2, received 1/ });
    t.throws(() => readResponse(Response.encode(response({ magic: 0x4142 })), 0xdeadbeef), { message: /expected magic 0x545a/ });
    t.throws(() => readResponse(Response.encode(response({ version: 2 })), 0xdeadbeef), { message: /expected version 1, received 2/ });
    const badText = Buffer.from(wire);
    badText[40] = 0xff;
    t.throws(() => readResponse(badText, 0xdeadbeef), { name: 'SyntaxError', message: /field "zone": expected UTF-8/ });
  });
});

t.test('signed codecs', async (t) => {
  t.same(i32.decode(i32.encode(-1)), [-1, 4]);
  t.equal(hex(i32.encode(-2)), 'fffffffe');
  t.throws(() => i32.encode(2 ** 31), RangeError);
  t.throws(() => i32.encode(1.5), RangeError);
  t.same(i64.decode(i64.encode(-(2 ** 53) + 1)), [-(2 ** 53) + 1, 8]);
  t.throws(() => i64.decode(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)), { name: 'RangeError', message: /within ±2\^53/ });
  t.throws(() => u64n.encode(-1), RangeError);
  t.throws(() => i32.decode(new Uint8Array(3)), RangeError);
});

t.test('readRequest() classifies every datagram and never throws', async (t) => {
  const good = Request.encode(request('Asia/Tokyo', 42));
  t.same(readRequest(good), { type: 'request', request: request('Asia/Tokyo', 42) });
  t.same(readRequest(new Uint8Array(0)), { type: 'daytime' }, 'an empty datagram is a daytime request');
  t.same(readRequest(Buffer.from('what time is it?\r\n')), { type: 'daytime' });
  t.same(readRequest(Buffer.from('T')), { type: 'daytime' });
  t.match(readRequest(good.subarray(0, 55)), { type: 'error', status: Status.malformedRequest, nonce: 42, reason: 'expected 56 bytes, received 55' });
  t.match(readRequest(Buffer.concat([good, Buffer.of(0)])), { type: 'error', status: Status.malformedRequest, reason: /received 57/ });
  t.match(readRequest(Buffer.from('TZ')), { type: 'error', status: Status.malformedRequest, nonce: 0 }, '"TZ" then nothing is malformed');
  t.match(readRequest(Buffer.of(0x54, 0x5a, 1)), { type: 'error', status: Status.malformedRequest, nonce: 0 });
  const v2 = Buffer.from(good);
  v2[2] = 2;
  t.match(readRequest(v2), { type: 'error', status: Status.unsupportedVersion, nonce: 42, reason: 'version 2 (this server speaks 1)' });
  const kind = Buffer.from(good);
  kind[3] = 2;
  t.match(readRequest(kind), { type: 'error', status: Status.malformedRequest, reason: /kind 2 is not a request/ });
  const utf8 = Buffer.from(good);
  utf8[8] = 0xc3;
  utf8[9] = 0x28;
  t.match(readRequest(utf8), { type: 'error', status: Status.malformedRequest, reason: /expected UTF-8/ });
  const padding = Buffer.from(good);
  padding[55] = 0x41;
  t.match(readRequest(padding), { type: 'error', status: Status.malformedRequest, reason: /expected NUL padding/ });
});

t.test('property: random datagrams starting with "TZ" get a well-formed answer (seeded)', async (t) => {
  let seed = 2026;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const region: Region = { zone: resolveZone('UTC')!, locale: 'en-US' };
  let bad = 0;
  for (let i = 0; i < 500; i++) {
    const datagram = Buffer.alloc(Math.floor(random() * 120));
    for (let j = 0; j < datagram.length; j++) datagram[j] = Math.floor(random() * 256);
    if (datagram.length >= 2) datagram.writeUInt16BE(MAGIC, 0);
    if (datagram.length >= 3 && random() < 0.5) datagram[2] = 1;
    try {
      const { reply } = answerDatagram(datagram, systemSource, region);
      if (datagram.length >= 2 && reply.length !== RESPONSE_LENGTH) throw new Error(`reply of ${reply.length} bytes`);
    } catch (error) {
      bad++;
      t.fail(`datagram ${i} (${hex(datagram)}): ${(error as Error).message}`);
    }
  }
  t.equal(bad, 0, '500 random datagrams answered');
});

t.test('answerDatagram()', async (t) => {
  const fixed: TimeSource = {
    now: () => Date.UTC(2026, 6, 1, 12, 0, 0, 500),
    state: () => ({ synchronised: true, offsetMs: 3500.25, delayMs: 0.2, stratum: 9, sourceStratum: 8, source: '127.0.0.1:123', ageMs: 1500 }),
  };
  const region: Region = { zone: resolveZone('America/Argentina/Buenos_Aires')!, locale: 'es-AR' };

  t.test('answers a zone with its offset at the instant and the sync state', async (t) => {
    const { reply } = answerDatagram(Request.encode(request('Europe/Madrid', 5)), fixed, region);
    const value = readResponse(reply, 5);
    t.match(value, { status: Status.ok, stratum: 9, unixMs: Date.UTC(2026, 6, 1, 12, 0, 0, 500), zoneOffsetSeconds: 7200, ntpOffsetUs: 3_500_250, ntpDelayUs: 200, syncAgeMs: 1500, zone: 'Europe/Madrid', abbreviation: 'CEST' });
  });

  t.test('an empty zone means the server\'s own', async (t) => {
    const value = readResponse(answerDatagram(Request.encode(request('', 6)), fixed, region).reply, 6);
    t.match(value, { status: Status.ok, zone: 'America/Argentina/Buenos_Aires', zoneOffsetSeconds: -10800, abbreviation: '-03' });
  });

  t.test('an unknown zone gets status 1 with the name echoed', async (t) => {
    const value = readResponse(answerDatagram(Request.encode(request('Mars/Olympus_Mons', 7)), fixed, region).reply, 7);
    t.match(value, { status: Status.unknownZone, zone: 'Mars/Olympus_Mons', zoneOffsetSeconds: 0, abbreviation: '' });
    const far = readResponse(answerDatagram(Request.encode(request('UTC+25:00', 8)), fixed, region).reply, 8);
    t.equal(far.status, Status.unknownZone, 'an offset beyond ±18:00 is unknown, not a crash');
  });

  t.test('a never-synchronised source says so', async (t) => {
    const value = readResponse(answerDatagram(Request.encode(request('UTC', 9)), systemSource, region).reply, 9);
    t.match(value, { stratum: 16, syncAgeMs: NEVER_SYNCHRONISED, ntpOffsetUs: 0 });
  });

  t.test('anything else gets the daytime line in the server\'s zone and locale', async (t) => {
    const { reply, what } = answerDatagram(Buffer.from('hola'), fixed, region);
    t.equal(Buffer.from(reply).toString(), daytimeLine(fixed.now(), region));
    // ICU's exact wording changes between versions; the parts do not.
    t.match(Buffer.from(reply).toString(), /^miércoles, 1 de julio de 2026,? 9:00:00 .*\r\n$/);
    t.match(what, /daytime \(4-byte datagram\)/);
  });

  t.test('the daytime line in English and for a fixed offset', async (t) => {
    const at = Date.UTC(2026, 10, 24, 20, 15, 16);
    t.equal(daytimeLine(at, { zone: resolveZone('UTC')!, locale: 'en-US' }), 'Tuesday, November 24, 2026 at 8:15:16 PM UTC\r\n');
    t.match(daytimeLine(at, { zone: resolveZone('UTC-03:00')!, locale: 'en-GB' }), /^Tuesday,? 24 November 2026,? (at )?17:15:16 GMT-(3|03:00)\r\n$/);
  });
});
