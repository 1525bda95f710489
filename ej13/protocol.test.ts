import t from 'tap';
import { Buffer } from 'node:buffer';
import { FrameReader, ShortBufferError } from '../lib/pdu.ts';
import { FLAG, Frame, HEADER_LENGTH, MAX_DATA, MAX_FRAME_LENGTH, type RingFrame, describeFrame } from './protocol.ts';

const catchError = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
};
const hex = (buf: Uint8Array) => Buffer.from(buf).toString('hex');
/** Hand-made wire bytes: src, dst, flags, declared length, data. */
function raw(src: number, dst: number, flags: number, data: Uint8Array = new Uint8Array(0), length = data.length): Uint8Array {
  const buf = Buffer.alloc(HEADER_LENGTH + data.length);
  buf.writeUInt32BE(src, 0);
  buf.writeUInt32BE(dst, 4);
  buf.writeUInt8(flags, 8);
  buf.writeUInt32BE(length, 9);
  buf.set(data, HEADER_LENGTH);
  return buf;
}

const samples: RingFrame[] = [
  { kind: 'message', src: 1, dst: 3, data: 'hola' },
  { kind: 'ack', src: 1, dst: 3, data: 'hola' },
  { kind: 'token', src: 2, dst: 3, data: '' },
  { kind: 'fin', src: 0, dst: 0, data: '' },
  { kind: 'message', src: 0xffff_ffff, dst: 0, data: 'ñandú\ttab 🦆' },
  { kind: 'message', src: 4, dst: 5, data: '' },
  { kind: 'message', src: 4, dst: 5, data: 'x'.repeat(MAX_DATA) },
];

t.test('the header is 13 bytes laid out as in PROTOCOL.md', async (t) => {
  t.equal(HEADER_LENGTH, 13);
  t.equal(MAX_FRAME_LENGTH, 13 + 65535);
  t.equal(Frame.encodingLength({ kind: 'token', src: 0, dst: 1, data: '' }), HEADER_LENGTH);
  t.equal(hex(Frame.encode({ kind: 'message', src: 1, dst: 0x0a0b0c0d, data: 'hi' })), '00000001' + '0a0b0c0d' + '00' + '00000002' + '6869');
  t.equal(hex(Frame.encode({ kind: 'ack', src: 1, dst: 2, data: '' })).slice(16, 18), '02');
  t.equal(hex(Frame.encode({ kind: 'token', src: 1, dst: 2, data: '' })).slice(16, 18), '01');
  t.equal(hex(Frame.encode({ kind: 'fin', src: 0, dst: 0, data: '' })).slice(16, 18), '04');
  t.same(FLAG, { T: 1, A: 2, F: 4 });
});

t.test('every kind of frame survives a round trip, also at an offset', async (t) => {
  for (const frame of samples) {
    const wire = Frame.encode(frame);
    t.equal(wire.length, Frame.encodingLength(frame), `${describeFrame(frame)}: length is encodingLength`);
    const [decoded, end] = Frame.decode(wire);
    t.same(decoded, frame, `${describeFrame(frame)} decodes to itself`);
    t.equal(end, wire.length);
    t.equal(hex(Frame.encode(decoded)), hex(wire), 'encodes again to the same bytes');
    const shifted = new Uint8Array(wire.length + 7);
    Frame.encode(frame, shifted, 5);
    t.same(Frame.decode(shifted, 5), [frame, wire.length + 5], 'at offset 5');
  }
});

t.test('encode() refuses values the frame cannot carry', async (t) => {
  t.throws(() => Frame.encode({ kind: 'token', src: 1, dst: 2, data: 'x' }), { name: 'RangeError', message: /token frame carries no data/ });
  t.throws(() => Frame.encode({ kind: 'fin', src: 0, dst: 0, data: 'x' }), RangeError);
  t.throws(() => Frame.encode({ kind: 'message', src: -1, dst: 2, data: '' }), { name: 'RangeError', message: /field "src"/ });
  t.throws(() => Frame.encode({ kind: 'message', src: 1, dst: 2 ** 32, data: '' }), { message: /field "dst"/ });
  t.throws(() => Frame.encode({ kind: 'message', src: 1, dst: 2, data: 'x'.repeat(MAX_DATA + 1) }), { message: /at most 65535 bytes/ });
  t.throws(() => Frame.encode({ kind: 'bogus' as 'message', src: 1, dst: 2, data: '' }), { name: 'TypeError', message: /unknown kind/ });
});

t.test('decode() refuses malformed frames with a SyntaxError or RangeError that says why', async (t) => {
  t.throws(() => Frame.decode(raw(1, 2, 0x08)), { name: 'SyntaxError', message: 'Cannot decode ring frame: reserved flag bits must be zero, received flags 0x08' });
  t.throws(() => Frame.decode(raw(1, 2, 0x80)), { name: 'SyntaxError', message: /reserved flag bits/ });
  t.throws(() => Frame.decode(raw(1, 2, FLAG.T | FLAG.A)), { name: 'SyntaxError', message: /flags T\+A together are not a valid frame/ });
  t.throws(() => Frame.decode(raw(0, 0, FLAG.F | FLAG.T)), { message: /flags T\+F/ });
  t.throws(() => Frame.decode(raw(1, 2, FLAG.T, Buffer.from('x'))), { name: 'SyntaxError', message: /token frame must have LEN_DAT 0, received 1/ });
  t.throws(() => Frame.decode(raw(0, 0, FLAG.F, Buffer.from('xyz'))), { message: /fin frame must have LEN_DAT 0, received 3/ });
  t.throws(() => Frame.decode(raw(1, 2, 0, Buffer.from([0xff, 0xfe]))), { name: 'SyntaxError', message: /expected UTF-8/ });
  t.throws(() => Frame.decode(raw(1, 2, 0, new Uint8Array(0), MAX_DATA + 1)), { name: 'RangeError', message: /at most 65535, received 65536/ });
});

t.test('a short buffer is "wait for more", not malformed', async (t) => {
  const wire = Frame.encode({ kind: 'message', src: 1, dst: 2, data: 'hola' });
  t.throws(() => Frame.decode(wire.subarray(0, 7)), { code: 'ERR_SHORT_BUFFER', expected: 13, received: 7 });
  t.ok(catchError(() => Frame.decode(wire.subarray(0, 7))) instanceof ShortBufferError);
  t.throws(() => Frame.decode(wire.subarray(0, 15)), { name: 'RangeError', message: /expected 17 bytes, received 15/ });
});

t.test('FrameReader reads frames split and joined at any byte', async (t) => {
  const wire = Buffer.concat(samples.slice(0, 5).map((frame) => Frame.encode(frame)));
  for (const size of [1, 3, 13, 14, 1000]) {
    const reader = new FrameReader(Frame, { maxFrameLength: MAX_FRAME_LENGTH });
    const frames: RingFrame[] = [];
    for (let at = 0; at < wire.length; at += size) frames.push(...reader.push(wire.subarray(at, at + size)));
    t.same(frames, samples.slice(0, 5), `chunks of ${size}`);
    t.equal(reader.bufferedLength, 0);
    reader.end();
  }
});

t.test('FrameReader stops at a malformed frame and a stream cut inside a frame', async (t) => {
  const reader = new FrameReader(Frame, { maxFrameLength: MAX_FRAME_LENGTH });
  const good = Frame.encode({ kind: 'token', src: 1, dst: 2, data: '' });
  t.same(reader.push(good), [{ kind: 'token', src: 1, dst: 2, data: '' }]);
  t.throws(() => reader.push(raw(1, 2, 0x03)), SyntaxError);
  t.throws(() => reader.push(good), SyntaxError, 'keeps failing: the stream cannot be resynchronised');
  const cut = new FrameReader(Frame);
  t.same(cut.push(good.subarray(0, 5)), []);
  t.throws(() => cut.end(), { name: 'RangeError', message: /expected 13 bytes, received 5/ });
});

t.test('describeFrame() names kind, ids and size', async (t) => {
  t.equal(describeFrame({ kind: 'message', src: 1, dst: 3, data: 'ñ' }), 'message 1->3 (2 bytes)');
  t.equal(describeFrame({ kind: 'token', src: 1, dst: 2, data: '' }), 'token 1->2');
});

t.test('the first frame of PROTOCOL.md section 11 has the bytes shown there', async (t) => {
  t.equal(hex(Frame.encode({ kind: 'message', src: 0, dst: 2, data: 'hola' })), '00000000' + '00000002' + '00' + '00000004' + '686f6c61');
});
