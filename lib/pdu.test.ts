import t from 'tap';
import { Buffer } from 'node:buffer';
import {
  type Codec,
  type CodecValue,
  DEFAULT_MAX_FRAME_LENGTH,
  FrameReader,
  ShortBufferError,
  bytes,
  decodeExact,
  prefixedBytes,
  prefixedText,
  restBytes,
  struct,
  text,
  u16,
  u32,
  u64,
  u8,
} from './pdu.ts';

// The PDUs of the assignment, as the exercises will declare them.

/** Exercise 11: secuencia u32 | ack u32 | ack_bitfield u32 | data (to the end of the datagram). */
const SEGMENT_HEADER_LENGTH = 12;
const Segment = struct([
  ['sequence', u32],
  ['ack', u32],
  ['ackBitfield', u32],
  ['data', restBytes],
], 'segment');

/** Exercise 12: id_nodo u32 | accion u32 | bytes_path u32 | path | bytes u32 | data. */
const MESSAGE_HEADER_LENGTH = 12; // up to bytes_path
const Message = struct([
  ['id', u32],
  ['action', u32],
  ['path', prefixedText(u32, { max: 4096 })],
  ['data', prefixedBytes(u32)],
], 'message');
type Message = CodecValue<typeof Message>;

/** Exercise 13: ID_SRC u32 | ID_DST u32 | flags u8 (T, A, F) | len u32 | data. */
const RING_FRAME_HEADER_LENGTH = 13;
const RingHeader = struct([
  ['src', u32],
  ['dst', u32],
  ['flags', u8],
], 'ring header');
const RingFrame = struct([
  ['src', u32],
  ['dst', u32],
  ['flags', u8],
  ['data', prefixedBytes(u32)],
], 'ring frame');

/** A fixed-length PDU, as exercise 2 asks for: a time-zone request. */
const TIME_REQUEST_LENGTH = 1 + 2 + 32 + 8;
const TimeRequest = struct([
  ['version', u8],
  ['port', u16],
  ['zone', text(32)],
  ['nonce', u64],
], 'time request');

/** tap's test object, as its callbacks receive it. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const hex = (buf: Uint8Array): string => Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('hex');
const of = (...values: number[]): Uint8Array => Uint8Array.from(values);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Runs `fn`, asserting it throws an instance of `Kind` whose message is `message`. */
function throwsWith(
  t: Tap,
  fn: () => unknown,
  Kind: new (...args: never[]) => Error,
  message: string | RegExp,
): Error | undefined {
  try {
    fn();
  } catch (err) {
    t.type(err, Kind);
    if (typeof message === 'string') t.equal((err as Error).message, message);
    else t.match((err as Error).message, message);
    return err as Error;
  }
  t.fail(`expected a ${Kind.name}`);
  return undefined;
}

/**
 * The round trip every codec owes: encode, decode, encode again to the same
 * bytes; the length is encodingLength; the same at an offset inside a larger
 * buffer (neighbours untouched) and inside a Buffer from Node's shared pool.
 * A codec that reads to the end of the datagram (`toEnd`) is decoded from a
 * view that ends where the value does, as a datagram would.
 */
function roundTrip<T>(t: Tap, codec: Codec<T>, value: T, { toEnd = false } = {}): void {
  const wire = codec.encode(value);
  t.equal(wire.length, codec.encodingLength(value), 'length equals encodingLength');
  if (codec.fixedLength !== undefined) t.equal(wire.length, codec.fixedLength, 'length equals fixedLength');
  const [decoded, end] = codec.decode(wire);
  t.equal(end, wire.length, 'decode consumes every byte');
  t.equal(hex(codec.encode(decoded)), hex(wire), 'encode(decode(x)) gives the same bytes');

  const offset = 5;
  const big = new Uint8Array(offset + wire.length + 3).fill(0xaa);
  t.equal(codec.encode(value, big, offset), big, 'encode returns the buffer it was given');
  t.equal(hex(big.subarray(offset, offset + wire.length)), hex(wire), 'encodes at the offset');
  t.equal(hex(big.subarray(0, offset)) + hex(big.subarray(offset + wire.length)), 'aa'.repeat(offset + 3), 'neighbours untouched');
  const [atOffset, next] = codec.decode(toEnd ? big.subarray(0, offset + wire.length) : big, offset);
  t.equal(next, offset + wire.length, 'decode at an offset returns the offset after the value');
  t.equal(hex(codec.encode(atOffset)), hex(wire), 'decodes the same value at an offset');

  Buffer.allocUnsafe(1); // make sure the next small allocation is not at the pool's start
  const pooled = Buffer.allocUnsafe(wire.length + 2);
  t.ok(pooled.byteOffset > 0, 'the Buffer is a slice of the shared pool');
  pooled.fill(0x55);
  codec.encode(value, pooled, 1);
  t.equal(hex(pooled.subarray(1, 1 + wire.length)), hex(wire), 'encodes into a pooled Buffer');
  const [fromPool, poolEnd] = codec.decode(toEnd ? pooled.subarray(0, 1 + wire.length) : pooled, 1);
  t.equal(poolEnd, 1 + wire.length);
  t.equal(hex(codec.encode(fromPool)), hex(wire), 'decodes from a pooled Buffer');
}

/** mulberry32: a tiny seeded PRNG, so that a failing property run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}
const int = (random: () => number, max: number): number => Math.floor(random() * (max + 1));
const randomBytes = (random: () => number, max: number): Uint8Array =>
  Uint8Array.from({ length: int(random, max) }, () => int(random, 255));
const ALPHABET = ['a', 'Z', '0', ' ', '/', '.', 'ñ', 'á', 'Ü', '€', '日', '😀', '\uFEFF'];
const randomText = (random: () => number, maxChars: number): string =>
  Array.from({ length: int(random, maxChars) }, () => ALPHABET[int(random, ALPHABET.length - 1)]).join('');
const randomMessage = (random: () => number): Message => ({
  id: int(random, 2 ** 32 - 1),
  action: int(random, 5),
  path: randomText(random, 12),
  data: randomBytes(random, 40),
});

t.test('integers', async (t) => {
  t.test('u8, u16, u32 and u64 round-trip their boundaries', async (t) => {
    for (const v of [0, 1, 0x7f, 0xff]) roundTrip(t, u8, v);
    for (const v of [0, 1, 0x1234, 0xffff]) roundTrip(t, u16, v);
    for (const v of [0, 1, 0x01020304, 2 ** 31, 2 ** 32 - 1]) roundTrip(t, u32, v);
    for (const v of [0n, 1n, 2n ** 53n + 1n, 2n ** 64n - 1n]) roundTrip(t, u64, v);
  });

  t.test('integers are big-endian (network byte order)', async (t) => {
    t.equal(hex(u16.encode(0x0102)), '0102');
    t.equal(hex(u32.encode(0x01020304)), '01020304');
    t.equal(hex(u64.encode(0x0102030405060708n)), '0102030405060708');
  });

  t.test('encode() refuses negative, too large and fractional numbers', async (t) => {
    throwsWith(t, () => u8.encode(256), RangeError, 'Cannot encode u8: expected an integer from 0 to 255, received 256');
    throwsWith(t, () => u16.encode(-1), RangeError, 'Cannot encode u16: expected an integer from 0 to 65535, received -1');
    throwsWith(t, () => u32.encode(2 ** 32), RangeError, 'Cannot encode u32: expected an integer from 0 to 4294967295, received 4294967296');
    throwsWith(t, () => u32.encode(1.5), RangeError, 'Cannot encode u32: expected an integer from 0 to 4294967295, received 1.5');
    throwsWith(t, () => u32.encode(NaN), RangeError, /received NaN$/);
    throwsWith(t, () => u32.encode(Infinity), RangeError, /received Infinity$/);
    throwsWith(t, () => u64.encode(-1n), RangeError, 'Cannot encode u64: expected an integer from 0 to 18446744073709551615, received -1');
    throwsWith(t, () => u64.encode(2n ** 64n), RangeError, /received 18446744073709551616$/);
    t.equal(u32.encodingLength(4), 4);
    throwsWith(t, () => u32.encodingLength(-4), RangeError, /received -4$/);
  });

  t.test('encode() refuses a value of the wrong type', async (t) => {
    throwsWith(t, () => u32.encode('7' as unknown as number), TypeError, 'Cannot encode u32: expected a number, received string');
    throwsWith(t, () => u64.encode(7 as unknown as bigint), TypeError, 'Cannot encode u64: expected a bigint, received number');
  });

  t.test('decode() rejects a buffer shorter than the integer, counting from the offset', async (t) => {
    const err = throwsWith(t, () => u32.decode(of(1, 2, 3)), RangeError, 'Cannot decode u32: expected 4 bytes, received 3');
    t.type(err, ShortBufferError);
    throwsWith(t, () => u32.decode(of(1, 2, 3, 4, 5, 6), 3), RangeError, 'Cannot decode u32: expected 4 bytes, received 3');
    throwsWith(t, () => u8.decode(of(1), 1), RangeError, 'Cannot decode u8: expected 1 bytes, received 0');
    throwsWith(t, () => u64.decode(new Uint8Array(7)), RangeError, 'Cannot decode u64: expected 8 bytes, received 7');
  });

  t.test('decode() rejects an offset outside the buffer', async (t) => {
    throwsWith(t, () => u32.decode(new Uint8Array(8), 9), RangeError, 'Cannot decode u32: expected an offset from 0 to 8, received 9');
    throwsWith(t, () => u32.decode(new Uint8Array(8), -1), RangeError, /received -1$/);
    throwsWith(t, () => u32.decode(new Uint8Array(8), 0.5), RangeError, /received 0.5$/);
    throwsWith(t, () => u32.decode([1, 2, 3, 4] as unknown as Uint8Array), TypeError, 'Cannot decode u32: expected a Uint8Array, received an array');
  });

  t.test('encode() rejects a buffer without room at the offset', async (t) => {
    throwsWith(t, () => u32.encode(1, new Uint8Array(6), 3), RangeError, 'Cannot encode u32: expected 4 bytes of space, received 3');
    throwsWith(t, () => u32.encode(1, new Uint8Array(6), 7), RangeError, 'Cannot encode u32: expected an offset from 0 to 6, received 7');
  });

  t.test('encode() without a buffer allocates room for the offset too', async (t) => {
    t.equal(hex(u16.encode(0xabcd, undefined, 2)), '0000abcd');
  });
});

t.test('bytes()', async (t) => {
  t.test('round-trips exactly its length', async (t) => {
    roundTrip(t, bytes(0), new Uint8Array(0));
    roundTrip(t, bytes(4), of(0, 1, 254, 255));
  });

  t.test('decode() returns a plain copy that does not follow the source buffer', async (t) => {
    const source = Buffer.from([9, 8, 7]);
    const [value] = bytes(3).decode(source);
    source[0] = 0;
    t.equal(hex(value), '090807');
    t.equal(Object.getPrototypeOf(value), Uint8Array.prototype);
  });

  t.test('encode() refuses a value of another length', async (t) => {
    throwsWith(t, () => bytes(4).encode(of(1, 2, 3)), RangeError, 'Cannot encode bytes: expected 4 bytes, received 3');
    throwsWith(t, () => bytes(4).encode('abcd' as unknown as Uint8Array), TypeError, 'Cannot encode bytes: expected a Uint8Array, received string');
  });

  t.test('refuses a negative length when defined', async (t) => {
    throwsWith(t, () => bytes(-1), RangeError, 'Cannot define bytes: expected a length of 0 or more bytes, received -1');
  });
});

t.test('text()', async (t) => {
  t.test('round-trips ASCII, UTF-8, empty and exactly-full text', async (t) => {
    for (const s of ['', 'a', 'America/Argentina/Buenos_Aires', 'ñandú', '日本', '😀', '\uFEFFbom', '12345678']) {
      roundTrip(t, text(32), s);
    }
    roundTrip(t, text(8), '12345678');
  });

  t.test('encode() pads with NUL and decode() strips it', async (t) => {
    t.equal(hex(text(5).encode('ab')), '6162000000');
    t.same(text(5).decode(of(0x61, 0x62, 0, 0, 0)), ['ab', 5]);
  });

  t.test('encode() refuses text longer than the field, in bytes of UTF-8', async (t) => {
    throwsWith(t, () => text(4).encode('abcde'), RangeError, 'Cannot encode text: expected at most 4 bytes of UTF-8, received 5');
    throwsWith(t, () => text(4).encode('ññé'), RangeError, 'Cannot encode text: expected at most 4 bytes of UTF-8, received 6');
  });

  t.test('encode() refuses text that would not read back the same', async (t) => {
    throwsWith(t, () => text(8).encode('a\0b'), RangeError, 'Cannot encode text: expected text without NUL characters, received one');
    throwsWith(t, () => text(8).encode('a\uD800'), RangeError, 'Cannot encode text: expected well-formed Unicode, received a lone surrogate');
    throwsWith(t, () => text(8).encode(5 as unknown as string), TypeError, 'Cannot encode text: expected a string, received number');
  });

  t.test('decode() rejects bytes after the padding and invalid UTF-8 as malformed', async (t) => {
    throwsWith(t, () => text(5).decode(of(0x61, 0, 0x62, 0, 0)), SyntaxError, 'Cannot decode text: expected NUL padding after byte 1, received 98 at byte 2');
    throwsWith(t, () => text(3).decode(of(0xc3, 0x28, 0)), SyntaxError, 'Cannot decode text: expected UTF-8, received invalid bytes');
  });

  t.test('decode() rejects a short buffer', async (t) => {
    throwsWith(t, () => text(8).decode(utf8('abc')), RangeError, 'Cannot decode text: expected 8 bytes, received 3');
  });
});

t.test('prefixedBytes() and prefixedText()', async (t) => {
  t.test('round-trip with the length written first', async (t) => {
    roundTrip(t, prefixedBytes(u32), new Uint8Array(0));
    roundTrip(t, prefixedBytes(u32), of(1, 2, 3));
    roundTrip(t, prefixedBytes(u8), new Uint8Array(255));
    roundTrip(t, prefixedText(u16), '');
    roundTrip(t, prefixedText(u16), 'dir/ñandú.txt\0with NUL');
    t.equal(hex(prefixedBytes(u32).encode(of(0xaa, 0xbb))), '00000002aabb');
    t.equal(hex(prefixedText(u16).encode('ñ')), '0002c3b1', 'the length counts bytes, not characters');
  });

  t.test('decode() rejects a buffer shorter than the declared length, without reading past it', async (t) => {
    const err = throwsWith(t, () => prefixedBytes(u32).decode(of(0, 0, 0, 5, 1, 2)), RangeError, 'Cannot decode bytes: expected 9 bytes, received 6');
    t.type(err, ShortBufferError);
    throwsWith(t, () => prefixedBytes(u32).decode(of(0, 0)), RangeError, 'Cannot decode bytes: expected 4 bytes, received 2');
    throwsWith(t, () => prefixedBytes(u32).decode(of(0xff, 0xff, 0xff, 0xff)), RangeError, 'Cannot decode bytes: expected 4294967299 bytes, received 4');
  });

  t.test('a declared length over the maximum is refused before the data arrives', async (t) => {
    const path = prefixedText(u32, { max: 16 });
    throwsWith(t, () => path.decode(of(0, 0, 0, 17)), RangeError, 'Cannot decode text: expected a length of at most 16, received 17');
    throwsWith(t, () => path.encode('x'.repeat(17)), RangeError, 'Cannot encode text: expected at most 16 bytes, received 17');
    roundTrip(t, path, 'x'.repeat(16));
  });

  t.test('encode() refuses data longer than its length field can say', async (t) => {
    throwsWith(t, () => prefixedBytes(u8).encode(new Uint8Array(256)), RangeError, 'Cannot encode bytes: expected a length the length field can hold, received 256 bytes');
  });

  t.test('prefixedText() decode() rejects invalid UTF-8', async (t) => {
    throwsWith(t, () => prefixedText(u8).decode(of(1, 0xff)), SyntaxError, 'Cannot decode text: expected UTF-8, received invalid bytes');
  });
});

t.test('struct()', async (t) => {
  const message: Message = { id: 7, action: 3, path: 'docs/año.txt', data: utf8('hola') };

  t.test('fixed header sizes match their named constants', async (t) => {
    t.equal(TimeRequest.fixedLength, TIME_REQUEST_LENGTH);
    t.equal(RingHeader.fixedLength, RING_FRAME_HEADER_LENGTH - 4);
    t.equal(RingFrame.fixedLength, undefined, 'a struct with a variable field has no fixed length');
    t.equal(Message.encodingLength({ ...message, path: '', data: new Uint8Array(0) }), MESSAGE_HEADER_LENGTH + 4);
    t.equal(RingFrame.encodingLength({ src: 0, dst: 1, flags: 0, data: new Uint8Array(0) }), RING_FRAME_HEADER_LENGTH);
    t.equal(Segment.encodingLength({ sequence: 0, ack: 0, ackBitfield: 0, data: new Uint8Array(0) }), SEGMENT_HEADER_LENGTH);
  });

  t.test('round-trips fixed, prefixed and to-the-end PDUs', async (t) => {
    roundTrip(t, TimeRequest, { version: 1, port: 13, zone: 'America/Argentina/Cordoba', nonce: 2n ** 63n });
    roundTrip(t, Message, message);
    roundTrip(t, RingFrame, { src: 0, dst: 3, flags: 0b101, data: utf8('hola') });
    roundTrip(t, Segment, { sequence: 1, ack: 2, ackBitfield: 0xffffffff, data: utf8('chunk') }, { toEnd: true });
    roundTrip(t, Segment, { sequence: 0, ack: 0, ackBitfield: 0, data: of() }, { toEnd: true });
    roundTrip(t, restBytes, of(1, 2, 3), { toEnd: true });
  });

  t.test('lays fields end to end in the declared order', async (t) => {
    t.equal(
      hex(Message.encode({ id: 1, action: 2, path: 'ab', data: of(0xff) })),
      '00000001' + '00000002' + '00000002' + '6162' + '00000001' + 'ff',
    );
    t.same(Message.decode(Message.encode(message))[0], message);
  });

  t.test('nests: a struct is a field like any other', async (t) => {
    const Outer = struct([['header', RingHeader], ['body', prefixedText(u16)]], 'outer');
    t.equal(Outer.fixedLength, undefined);
    roundTrip(t, Outer, { header: { src: 1, dst: 2, flags: 3 }, body: 'x' });
    throwsWith(t, () => Outer.encode({ header: { src: -1, dst: 2, flags: 3 }, body: '' }), RangeError,
      'Cannot encode outer field "header.src": expected an integer from 0 to 4294967295, received -1');
  });

  t.test('decode() rejects a 7-byte buffer with the whole header length', async (t) => {
    const err = throwsWith(t, () => RingFrame.decode(new Uint8Array(7)), RangeError, 'Cannot decode ring frame: expected 13 bytes, received 7');
    t.type(err, ShortBufferError);
    throwsWith(t, () => TimeRequest.decode(new Uint8Array(7)), RangeError, 'Cannot decode time request: expected 43 bytes, received 7');
  });

  t.test('decode() counts bytes from the offset, not from the buffer start', async (t) => {
    const wire = RingFrame.encode({ src: 1, dst: 2, flags: 0, data: of(1, 2, 3, 4) });
    const big = new Uint8Array(5 + wire.length);
    big.set(wire, 5);
    t.equal(RingFrame.decode(big, 5)[1], big.length);
    throwsWith(t, () => RingFrame.decode(big.subarray(0, big.length - 1), 5), RangeError,
      `Cannot decode ring frame: expected ${wire.length} bytes, received ${wire.length - 1}`);
    throwsWith(t, () => RingFrame.decode(big, 9), RangeError, /^Cannot decode ring frame: expected \d+ bytes, received \d+$/);
  });

  t.test('encode() names the field whose value is out of range', async (t) => {
    throwsWith(t, () => RingFrame.encode({ src: 1, dst: 2 ** 32, flags: 0, data: of() }), RangeError,
      'Cannot encode ring frame field "dst": expected an integer from 0 to 4294967295, received 4294967296');
    throwsWith(t, () => TimeRequest.encode({ version: 1, port: 13, zone: 'x'.repeat(33), nonce: 0n }), RangeError,
      'Cannot encode time request field "zone": expected at most 32 bytes of UTF-8, received 33');
    throwsWith(t, () => TimeRequest.encodingLength({ version: 1 } as never), TypeError,
      'Cannot encode time request field "port": expected a number, received undefined');
    throwsWith(t, () => Message.encode(null as never), TypeError, 'Cannot encode message: expected an object, received null');
  });

  t.test('decode() names the field that is malformed', async (t) => {
    const wire = Message.encode({ ...message, path: 'ab' });
    wire[12] = 0xff;
    throwsWith(t, () => Message.decode(wire), SyntaxError, 'Cannot decode message field "path": expected UTF-8, received invalid bytes');
  });

  t.test('refuses duplicate names and a field after restBytes', async (t) => {
    throwsWith(t, () => struct([['a', u8], ['a', u8]]), TypeError, /field "a" is named twice/);
    throwsWith(t, () => struct([['data', restBytes], ['a', u8]]), TypeError, /follows a field that takes the rest of the datagram/);
  });
});

t.test('decodeExact()', async (t) => {
  const wire = RingFrame.encode({ src: 1, dst: 2, flags: 1, data: of(9) });

  t.test('decodes a datagram that is exactly one PDU', async (t) => {
    t.same(decodeExact(RingFrame, wire), { src: 1, dst: 2, flags: 1, data: of(9) });
    t.same(decodeExact(Segment, Segment.encode({ sequence: 1, ack: 0, ackBitfield: 0, data: of(1, 2) })).data, of(1, 2));
  });

  t.test('rejects trailing bytes in a datagram as malformed', async (t) => {
    const longer = new Uint8Array(wire.length + 1);
    longer.set(wire);
    throwsWith(t, () => decodeExact(RingFrame, longer), SyntaxError, `Cannot decode datagram: expected ${wire.length} bytes, received ${wire.length + 1}`);
  });

  t.test('rejects a short datagram as a RangeError', async (t) => {
    throwsWith(t, () => decodeExact(RingFrame, wire.subarray(0, 7)), RangeError, 'Cannot decode ring frame: expected 13 bytes, received 7');
  });
});

t.test('FrameReader', async (t) => {
  const messages: Message[] = [
    { id: 1, action: 0, path: '', data: of() },
    { id: 2, action: 3, path: 'a/b/ñ.txt', data: utf8('contenido') },
    { id: 3, action: 5, path: 'x', data: new Uint8Array(300).fill(7) },
    { id: 4294967295, action: 4, path: '😀', data: of(0) },
  ];
  const stream = Buffer.concat(messages.map((m) => Message.encode(m)));

  t.test('yields exactly the frames when fed one byte at a time', async (t) => {
    const reader = new FrameReader(Message);
    const got: Message[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...reader.push(stream.subarray(i, i + 1)));
    t.same(got, messages);
    t.equal(reader.bufferedLength, 0);
    reader.end();
  });

  t.test('yields exactly the frames when the stream is split at every byte boundary', async (t) => {
    for (let i = 0; i <= stream.length; i++) {
      const reader = new FrameReader(Message);
      const got = [...reader.push(stream.subarray(0, i)), ...reader.push(stream.subarray(i))];
      if (got.length !== messages.length || reader.bufferedLength !== 0) {
        t.fail(`split at ${i}: ${got.length} frames, ${reader.bufferedLength} bytes left`);
      }
      t.same(got, messages, `split at ${i}`);
    }
  });

  t.test('yields exactly the frames for random chunkings (seeded)', async (t) => {
    const random = prng(0x5eed);
    for (let run = 0; run < 200; run++) {
      const frames = Array.from({ length: 1 + int(random, 5) }, () => randomMessage(random));
      const wire = Buffer.concat(frames.map((m) => Message.encode(m)));
      const reader = new FrameReader(Message);
      const got: Message[] = [];
      for (let at = 0; at < wire.length; ) {
        const size = 1 + int(random, 40);
        got.push(...reader.push(wire.subarray(at, at + size)));
        at += size;
      }
      t.same(got, frames, `run ${run}`);
      t.equal(reader.bufferedLength, 0);
    }
  });

  t.test('keeps the tail, not a view of the caller\'s chunk', async (t) => {
    const wire = Message.encode(messages[1]!);
    const chunk = Buffer.from(wire);
    const reader = new FrameReader(Message);
    t.same(reader.push(chunk.subarray(0, 20)), []);
    t.equal(reader.bufferedLength, 20);
    const rest = Buffer.from(chunk.subarray(20));
    chunk.fill(0); // the caller reuses its buffer
    t.same(reader.push(rest), [messages[1]]);
  });

  t.test('a declared length over the maximum is refused as soon as the header arrives', async (t) => {
    const reader = new FrameReader(RingFrame, { maxFrameLength: 1024 });
    const header = RingFrame.encode({ src: 1, dst: 2, flags: 0, data: of() });
    header.set(of(0xff, 0xff, 0xff, 0xff), 9); // declares a 4 GiB payload
    t.same(reader.push(header.subarray(0, 12)), [], 'a partial length field is not yet an error');
    throwsWith(t, () => reader.push(header.subarray(12)), RangeError,
      'Cannot decode ring frame: expected a frame of at most 1024 bytes, received a length of 4294967308');
    throwsWith(t, () => reader.push(of(1)), RangeError, /at most 1024 bytes/, );
  });

  t.test('the default maximum refuses a frame of gigabytes', async (t) => {
    const reader = new FrameReader(Message);
    throwsWith(t, () => reader.push(of(0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0, 0, 0)), RangeError,
      `Cannot decode message: expected a frame of at most ${DEFAULT_MAX_FRAME_LENGTH} bytes, received a length of 1073741840`);
  });

  t.test('a whole frame over the maximum in one chunk is refused too', async (t) => {
    const reader = new FrameReader(RingFrame, { maxFrameLength: 20 });
    throwsWith(t, () => reader.push(RingFrame.encode({ src: 1, dst: 2, flags: 0, data: new Uint8Array(8) })), RangeError,
      'Cannot decode frame: expected a frame of at most 20 bytes, received a length of 21');
  });

  t.test('a malformed frame throws, and keeps throwing', async (t) => {
    const reader = new FrameReader(Message);
    const bad = Message.encode({ id: 1, action: 1, path: 'ab', data: of() });
    bad[12] = 0xff;
    const good = Message.encode(messages[0]!);
    t.same(reader.push(good), [messages[0]]);
    throwsWith(t, () => reader.push(bad), SyntaxError, 'Cannot decode message field "path": expected UTF-8, received invalid bytes');
    throwsWith(t, () => reader.push(good), SyntaxError, /expected UTF-8/);
  });

  t.test('end() rejects a stream that stops inside a frame', async (t) => {
    const reader = new FrameReader(RingFrame);
    reader.push(RingFrame.encode({ src: 1, dst: 2, flags: 0, data: of(1, 2, 3) }).subarray(0, 10));
    throwsWith(t, () => reader.end(), RangeError, 'Cannot decode ring frame: expected 13 bytes, received 10');
  });

  t.test('refuses a codec that reads to the end of the buffer', async (t) => {
    throwsWith(t, () => new FrameReader(Segment), TypeError, /only a datagram has/);
    throwsWith(t, () => new FrameReader(restBytes), TypeError, /only a datagram has/);
  });
});

t.test('property: random PDUs round-trip (seeded, replayable)', async (t) => {
  const random = prng(20240611);
  let failures = 0;
  for (let i = 0; i < 500; i++) {
    const message = randomMessage(random);
    const request = {
      version: int(random, 255),
      port: int(random, 65535),
      zone: randomText(random, 8),
      nonce: BigInt(int(random, 2 ** 32 - 1)) * 2n ** 32n + BigInt(int(random, 2 ** 32 - 1)),
    };
    for (const [codec, value] of [[Message, message], [TimeRequest, request]] as [Codec<unknown>, unknown][]) {
      const wire = codec.encode(value);
      const [back, end] = codec.decode(wire);
      if (end !== wire.length || hex(codec.encode(back)) !== hex(wire) || wire.length !== codec.encodingLength(value)) {
        failures++;
        t.fail(`value ${i} does not round-trip: ${hex(wire)}`);
      }
    }
  }
  t.equal(failures, 0, '1000 random values round-trip');
});
