import t from 'tap';
import { decodeGet, decodePacket, decodePut, encodeGet, isOldServerRefusal, encodePacket, encodePut, encodeSize, encodeText, Flag, HEADER_LENGTH, MAX_DATA, Packet, readSize, splitToken, TOKEN_LENGTH, Type, unwrap, wrap } from './protocol.ts';

const sample = (data = new Uint8Array([1, 2, 3])): Packet => ({
  sequence: 0xfffffffe,
  ack: 7,
  ackBitfield: 0x80000001,
  type: Type.DATA,
  flags: Flag.ACK,
  window: 1024,
  connection: 0xdeadbeef,
  through: 5,
  data,
});

t.test('a packet round-trips: encode, decode, encode again; its length is the header plus data', async (t) => {
  const wire = encodePacket(sample());
  t.equal(wire.length, HEADER_LENGTH + 3);
  t.equal(Packet.encodingLength(sample()), wire.length);
  const back = decodePacket(wire);
  t.same(back, sample());
  t.same(encodePacket(back), wire);
  t.equal(Packet.encodingLength({ ...sample(), data: new Uint8Array(0) }), HEADER_LENGTH, 'HEADER_LENGTH is the empty packet');
});

t.test('the header is laid out as the diagram says (big-endian, sequence first)', async (t) => {
  const wire = Buffer.from(encodePacket(sample()));
  t.equal(wire.readUInt32BE(0), 0xfffffffe, 'sequence at 0');
  t.equal(wire.readUInt32BE(4), 7, 'ack at 4');
  t.equal(wire.readUInt32BE(8), 0x80000001, 'ack_bitfield at 8');
  t.equal(wire[12], Type.DATA, 'type at 12');
  t.equal(wire[13], Flag.ACK, 'flags at 13');
  t.equal(wire.readUInt16BE(14), 1024, 'window at 14');
  t.equal(wire.readUInt32BE(16), 0xdeadbeef, 'connection at 16');
  t.equal(wire.readUInt32BE(20), 5, 'through at 20');
});

t.test('encode writes at a non-zero offset', async (t) => {
  const buf = new Uint8Array(100);
  Packet.encode(sample(), buf, 10);
  t.same(decodePacket(buf.subarray(10, 10 + HEADER_LENGTH + 3)), sample());
});

t.test('decodePacket() refuses short, oversized, unknown-type and unknown-flag datagrams', async (t) => {
  t.throws(() => decodePacket(new Uint8Array(23)), RangeError);
  t.throws(() => decodePacket(new Uint8Array(HEADER_LENGTH + MAX_DATA + 1)), SyntaxError);
  const bad = Buffer.from(encodePacket(sample()));
  bad[12] = 99;
  t.throws(() => decodePacket(bad), { name: 'SyntaxError', message: /unknown type 99/ });
  const flags = Buffer.from(encodePacket(sample()));
  flags[13] = 0x80;
  t.throws(() => decodePacket(flags), /unknown flags/);
});

t.test('wrap() and unwrap() carry sequence numbers across 2^32', async (t) => {
  t.equal(wrap(2 ** 32 + 5), 5);
  t.equal(unwrap(3, 2 ** 32 - 2), 2 ** 32 + 3, 'just past the wrap is ahead, not 4 billion behind');
  t.equal(unwrap(2 ** 32 - 1, 2 ** 32 + 2), 2 ** 32 - 1, 'just before the wrap is behind');
  t.equal(unwrap(100, 50), 100);
  t.equal(unwrap(10, 50), 10);
  for (const ref of [0, 1000, 2 ** 32 - 10, 2 ** 33 + 7]) for (const d of [-1000, -1, 0, 1, 2 ** 31 - 1]) t.equal(unwrap(wrap(ref + d), ref), ref + d);
});

t.test('PUT and OK data carry a u64 size; names must be UTF-8', async (t) => {
  t.same(decodePut(encodePut(123456789012, 'año.txt')), { size: 123456789012, name: 'año.txt' });
  t.equal(readSize(encodeSize(0)), 0);
  t.throws(() => decodePut(new Uint8Array(4)), RangeError);
  t.throws(() => decodePut(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xfe])), SyntaxError);
  t.throws(() => readSize(new Uint8Array(8).fill(0xff)), /too large/);
});

t.test('TOKEN rides only on a first GET or PUT, and splitToken() takes it off the request', async (t) => {
  const token = new Uint8Array(TOKEN_LENGTH).fill(7);
  const get = { ...sample(), type: Type.GET, flags: Flag.SYN | Flag.TOKEN, data: new Uint8Array([...token, ...new TextEncoder().encode('a.txt')]) };
  const { token: got, packet } = splitToken(decodePacket(encodePacket(get)));
  t.same(got, token);
  t.equal(new TextDecoder().decode(packet.data), 'a.txt');
  t.equal(packet.flags, Flag.SYN, 'the request alone carries no TOKEN');
  t.throws(() => decodePacket(encodePacket({ ...get, type: Type.DATA })), /TOKEN on a packet/);
  t.throws(() => decodePacket(encodePacket({ ...get, flags: Flag.TOKEN })), /TOKEN on a packet/);
  t.throws(() => decodePacket(encodePacket({ ...get, data: token.subarray(0, 5) })), RangeError);
  const retry = decodePacket(encodePacket({ ...sample(), type: Type.RETRY, flags: 0, data: token }));
  t.equal(retry.type, Type.RETRY);
  t.equal(splitToken(retry).token, undefined);
});

t.test('encodeText() cuts at a character boundary', async (t) => {
  t.same(encodeText('abc', 10), new TextEncoder().encode('abc'));
  t.equal(new TextDecoder('utf-8', { fatal: true }).decode(encodeText('€€€', 7)), '€€', '7 bytes hold two 3-byte characters, not two and a third');
  t.equal(encodeText('€'.repeat(1000), MAX_DATA).length, 1398);
});

t.test('encodeGet() is the name alone for a plain GET, and name NUL digits to resume; decodeGet() reads both back', async (t) => {
  t.same(Buffer.from(encodeGet('libro.txt')).toString('latin1'), 'libro.txt', 'a plain GET is what it was before -c');
  t.same(Buffer.from(encodeGet('año/libro.txt', 131072)).toString('utf8'), 'año/libro.txt\u0000131072');
  t.same(decodeGet(encodeGet('año/libro.txt', 131072)), { name: 'año/libro.txt', from: 131072 });
  t.same(decodeGet(encodeGet('libro.txt')), { name: 'libro.txt', from: 0 });
  for (const tail of ['', '-1', '01', '1e3', '12x', ' 5', '99999999999999999']) {
    t.throws(() => decodeGet(new TextEncoder().encode(`f\u0000${tail}`)), SyntaxError, `offset '${tail}' refused`);
  }
  t.throws(() => decodeGet(new Uint8Array(700)), SyntaxError, '700 NULs refused');
});

t.test('isOldServerRefusal() recognises how a server without -c refuses a resumed name', async (t) => {
  t.ok(isOldServerRefusal("bad file name 'big.bin\\x00123'"));
  t.notOk(isOldServerRefusal("no such file 'big.bin'"));
  t.notOk(isOldServerRefusal("cannot resume 'f.bin' from byte 400000: it has 300000 bytes"));
});
