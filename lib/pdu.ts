/**
 * Fixed-length and length-prefixed PDUs: the one codec shape every binary
 * protocol in the project shares, after dns-packet.
 *
 * A codec is three functions, `encode(value, buf?, offset?)`,
 * `decode(buf, offset?) -> [value, nextOffset]` and `encodingLength(value)`.
 * Integers are unsigned and big-endian (network byte order), so a capture
 * reads the same as the byte diagram at the top of each exercise. Codecs
 * compose: `struct()` lays named fields end to end, and a length-prefixed
 * field writes its own length first, so a value can never disagree with the
 * length on the wire. Exercise 12's PDU, for instance:
 *
 * ```ts
 * import { struct, u32, prefixedText, prefixedBytes, FrameReader } from '../lib/pdu.ts';
 *
 * // id_nodo u32 | accion u32 | bytes_path u32 | path | bytes u32 | data
 * export const Message = struct([
 *   ['id', u32],
 *   ['action', u32],
 *   ['path', prefixedText(u32, { max: 4096 })],
 *   ['data', prefixedBytes(u32)],
 * ], 'message');
 *
 * const wire = Message.encode({ id: 1, action: 3, path: 'a.txt', data: bytes });
 * const reader = new FrameReader(Message);            // TCP: frames from chunks
 * socket.on('data', (chunk) => { for (const m of reader.push(chunk)) handle(m); });
 * ```
 *
 * For a datagram, `decodeExact(Codec, msg)` refuses trailing bytes. A fixed
 * header's size is `Header.fixedLength`; an exercise exports it under a name
 * (`export const HEADER_LENGTH = 12`) and a test checks the two agree.
 *
 * Errors follow the project's conventions: `RangeError` for a short buffer or
 * a value out of range (a short buffer is the subclass `ShortBufferError`, so
 * a stream reader can tell "wait for more" from "malformed"), `SyntaxError`
 * for malformed wire input, `TypeError` for an argument of the wrong kind.
 *
 * @module
 */

/**
 * Encodes and decodes one kind of value. Every PDU in the project has this
 * shape so that they all compose, test and stream the same way; `fixedLength`
 * is present when every value takes the same number of bytes, which is what
 * lets a header's size be a constant and a short buffer be refused up front.
 */
export interface Codec<T> {
  /** Writes `value` at `offset` (allocating when `buf` is omitted) and returns the buffer. */
  encode(value: T, buf?: Uint8Array, offset?: number): Uint8Array;
  /** Reads a value at `offset`; returns it with the offset just past it. */
  decode(buf: Uint8Array, offset?: number): [T, number];
  /** The number of bytes `encode(value)` writes. */
  encodingLength(value: T): number;
  /** The length of every encoding, when it does not depend on the value. */
  readonly fixedLength?: number;
}

/**
 * The value type a codec encodes, so that an exercise declares its PDU once
 * and derives the TypeScript type from it: `type Message = CodecValue<typeof Message>`.
 */
export type CodecValue<C> = C extends Codec<infer T> ? T : never;

/**
 * A buffer too short for what it declares. A subclass of `RangeError` (it is
 * one, by the conventions) with counts that start at the decode offset, so a
 * stream reader knows how many bytes to wait for before trying again and a
 * datagram receiver can report exactly what was missing.
 */
export class ShortBufferError extends RangeError {
  readonly code = 'ERR_SHORT_BUFFER';
  /** What was being decoded, as named in the message. */
  readonly subject: string;
  /** Bytes needed from the decode offset; for a variable frame, the least known so far. */
  readonly expected: number;
  /** Bytes there were from the decode offset. */
  readonly received: number;
  constructor(subject: string, expected: number, received: number) {
    super(`Cannot decode ${subject}: expected ${expected} bytes, received ${received}`);
    this.subject = subject;
    this.expected = expected;
    this.received = received;
  }
}

// ---------------------------------------------------------------------------
// Errors. struct() re-words a field's error to name the field; this side table
// keeps the bare detail ("expected …, received …") so that it never has to
// parse a message back out of a string.

type Verb = 'encode' | 'decode';
type ErrorClass = new (message: string, options?: ErrorOptions) => Error;
interface Detail {
  verb: Verb;
  field: string | undefined;
  detail: string;
}
const details = new WeakMap<Error, Detail>();

function fail(
  Kind: ErrorClass,
  verb: Verb,
  subject: string,
  detail: string,
  field?: string,
  cause?: unknown,
): Error {
  const where = field === undefined ? subject : `${subject} field "${field}"`;
  const err = new Kind(`Cannot ${verb} ${where}: ${detail}`, cause === undefined ? undefined : { cause });
  details.set(err, { verb, field, detail });
  return err;
}

/** The same error, told from the struct's side: which field, and counts from the struct's start. */
function inField(err: unknown, structName: string, field: string, bytesBefore: number): unknown {
  if (err instanceof ShortBufferError) {
    return new ShortBufferError(structName, bytesBefore + err.expected, bytesBefore + err.received);
  }
  const known = err instanceof Error ? details.get(err) : undefined;
  if (known === undefined) return err; // not ours: pass it on untouched
  const path = known.field === undefined ? field : `${field}.${known.field}`;
  return fail((err as Error).constructor as ErrorClass, known.verb, structName, known.detail, path, err);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

// ---------------------------------------------------------------------------
// The one place that checks arguments, allocates and checks room, so that each
// building block below only says how to measure, write and read its value.

interface Parts<T> {
  fixedLength?: number;
  /** For a variable length: the fewest bytes any value takes (a length prefix, say). */
  minLength?: number;
  /** Validates the value (throwing through fail()) and measures it. */
  measure(value: T): number;
  /** Writes a value already measured into room already checked. */
  write(value: T, buf: Uint8Array, offset: number): void;
  /** Reads at a checked offset; with a fixedLength, the room is checked too. */
  read(buf: Uint8Array, offset: number): [T, number];
}

// The fewest bytes a variable-length codec of this module ever reads, so that a
// struct can refuse a short header in one message that counts the whole header.
const minLengths = new WeakMap<Codec<unknown>, number>();
const minLength = (codec: Codec<unknown>): number => codec.fixedLength ?? minLengths.get(codec) ?? 0;

function define<T>(name: string, parts: Parts<T>): Codec<T> {
  const { fixedLength } = parts;
  const codec: Codec<T> = {
    encodingLength: (value) => parts.measure(value),
    encode(value, buf, offset = 0) {
      const length = parts.measure(value);
      if (buf === undefined) {
        checkOffset('encode', name, offset, undefined);
        buf = new Uint8Array(offset + length);
      } else {
        checkBuffer('encode', name, buf);
        checkOffset('encode', name, offset, buf.length);
        const room = buf.length - offset;
        if (room < length) {
          throw fail(RangeError, 'encode', name, `expected ${length} bytes of space, received ${room}`);
        }
      }
      parts.write(value, buf, offset);
      return buf;
    },
    decode(buf, offset = 0) {
      checkBuffer('decode', name, buf);
      checkOffset('decode', name, offset, buf.length);
      if (fixedLength !== undefined && buf.length - offset < fixedLength) {
        throw new ShortBufferError(name, fixedLength, buf.length - offset);
      }
      return parts.read(buf, offset);
    },
  };
  if (fixedLength !== undefined) return { ...codec, fixedLength };
  if (parts.minLength !== undefined) minLengths.set(codec as Codec<unknown>, parts.minLength);
  return codec;
}

function checkBuffer(verb: Verb, name: string, buf: unknown): void {
  if (!(buf instanceof Uint8Array)) {
    throw fail(TypeError, verb, name, `expected a Uint8Array, received ${describe(buf)}`);
  }
}

function checkOffset(verb: Verb, name: string, offset: number, max: number | undefined): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || (max !== undefined && offset > max)) {
    const range = max === undefined ? 'of 0 or more' : `from 0 to ${max}`;
    throw fail(RangeError, verb, name, `expected an offset ${range}, received ${offset}`);
  }
}

/** Node Buffers are views into a shared pool: the view must start where the bytes do. */
function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A copy, as a plain Uint8Array: a decoded value must not change when the caller reuses its buffer. */
function copy(buf: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(buf.subarray(start, end));
}

// ---------------------------------------------------------------------------
// Integers.

function unsigned(bits: 8 | 16 | 32): Codec<number> {
  const name = `u${bits}`;
  const size = bits / 8;
  const max = 2 ** bits - 1;
  return define<number>(name, {
    fixedLength: size,
    measure(value) {
      if (typeof value !== 'number') {
        throw fail(TypeError, 'encode', name, `expected a number, received ${describe(value)}`);
      }
      if (!Number.isInteger(value) || value < 0 || value > max) {
        throw fail(RangeError, 'encode', name, `expected an integer from 0 to ${max}, received ${value}`);
      }
      return size;
    },
    // DataView is big-endian unless told otherwise: network byte order.
    write(value, buf, offset) {
      if (bits === 8) buf[offset] = value;
      else if (bits === 16) view(buf).setUint16(offset, value);
      else view(buf).setUint32(offset, value);
    },
    read(buf, offset) {
      const value =
        bits === 8 ? view(buf).getUint8(offset) : bits === 16 ? view(buf).getUint16(offset) : view(buf).getUint32(offset);
      return [value, offset + size];
    },
  });
}

/** An unsigned 8-bit integer: a flags byte, a version, a small enumeration. */
export const u8: Codec<number> = unsigned(8);

/** An unsigned big-endian 16-bit integer, the width of a port number. */
export const u16: Codec<number> = unsigned(16);

/**
 * An unsigned big-endian 32-bit integer: the assignment's "int 4byte" fields
 * (sequence numbers, node ids, lengths). Negative, fractional and too-large
 * numbers are refused rather than wrapped, because a wrapped sequence number
 * is a bug that only shows up on the wire.
 */
export const u32: Codec<number> = unsigned(32);

const U64_MAX = 2n ** 64n - 1n;

/**
 * An unsigned big-endian 64-bit integer, as a bigint because a JavaScript
 * number is exact only up to 2^53; NTP timestamps and byte counters need all
 * 64 bits.
 */
export const u64: Codec<bigint> = define<bigint>('u64', {
  fixedLength: 8,
  measure(value) {
    if (typeof value !== 'bigint') {
      throw fail(TypeError, 'encode', 'u64', `expected a bigint, received ${describe(value)}`);
    }
    if (value < 0n || value > U64_MAX) {
      throw fail(RangeError, 'encode', 'u64', `expected an integer from 0 to ${U64_MAX}, received ${value}`);
    }
    return 8;
  },
  write(value, buf, offset) {
    view(buf).setBigUint64(offset, value);
  },
  read(buf, offset) {
    return [view(buf).getBigUint64(offset), offset + 8];
  },
});

// ---------------------------------------------------------------------------
// Bytes and text.

function checkSize(what: string, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`Cannot define ${what}: expected a length of 0 or more bytes, received ${size}`);
  }
}

function checkBytes(verb: Verb, name: string, value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw fail(TypeError, verb, name, `expected a Uint8Array, received ${describe(value)}`);
  }
}

/**
 * Exactly `length` raw bytes: a hash, a nonce, a key. A value of any other
 * length is refused instead of padded or cut, because either would silently
 * change a value the peer is going to compare.
 */
export function bytes(length: number): Codec<Uint8Array> {
  checkSize('bytes', length);
  return define<Uint8Array>('bytes', {
    fixedLength: length,
    measure(value) {
      checkBytes('encode', 'bytes', value);
      if (value.length !== length) {
        throw fail(RangeError, 'encode', 'bytes', `expected ${length} bytes, received ${value.length}`);
      }
      return length;
    },
    write(value, buf, offset) {
      buf.set(value, offset);
    },
    read(buf, offset) {
      return [copy(buf, offset, offset + length), offset + length];
    },
  });
}

const encoder = new TextEncoder();
// fatal: invalid UTF-8 is malformed input, not something to paper over with U+FFFD.
// ignoreBOM: keep a leading U+FEFF as text, or it would vanish in a round trip.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// In a `u` regular expression a well-formed pair is one code point, so this
// matches only lone surrogates, which TextEncoder would turn into U+FFFD.
const LONE_SURROGATE = /\p{Surrogate}/u;

function utf8(name: string, value: unknown): Uint8Array {
  if (typeof value !== 'string') {
    throw fail(TypeError, 'encode', name, `expected a string, received ${describe(value)}`);
  }
  if (LONE_SURROGATE.test(value)) {
    throw fail(RangeError, 'encode', name, 'expected well-formed Unicode, received a lone surrogate');
  }
  return encoder.encode(value);
}

function fromUtf8(name: string, buf: Uint8Array): string {
  try {
    return decoder.decode(buf);
  } catch (err) {
    throw fail(SyntaxError, 'decode', name, 'expected UTF-8, received invalid bytes', undefined, err);
  }
}

/**
 * Text in a field of exactly `length` bytes, UTF-8 (so ASCII as it stands),
 * padded with NUL the way C's `strncpy` and Python's `struct.pack('16s')` do,
 * which is what keeps a PDU fixed-length. Decoding strips the padding. Text
 * that does not fit is refused, never cut, and so is text containing NUL,
 * which would read back shorter; bytes other than NUL after the padding begins
 * are malformed, so that one value has exactly one encoding.
 */
export function text(length: number): Codec<string> {
  checkSize('text', length);
  return define<string>('text', {
    fixedLength: length,
    measure(value) {
      const encoded = utf8('text', value);
      if (encoded.includes(0)) {
        throw fail(RangeError, 'encode', 'text', 'expected text without NUL characters, received one');
      }
      if (encoded.length > length) {
        throw fail(RangeError, 'encode', 'text', `expected at most ${length} bytes of UTF-8, received ${encoded.length}`);
      }
      return length;
    },
    write(value, buf, offset) {
      const encoded = encoder.encode(value);
      buf.set(encoded, offset);
      buf.fill(0, offset + encoded.length, offset + length);
    },
    read(buf, offset) {
      const field = buf.subarray(offset, offset + length);
      let end = field.indexOf(0);
      if (end === -1) end = length;
      for (let i = end; i < length; i++) {
        if (field[i] !== 0) {
          throw fail(SyntaxError, 'decode', 'text', `expected NUL padding after byte ${end}, received ${field[i]} at byte ${i}`);
        }
      }
      return [fromUtf8('text', field.subarray(0, end)), offset + length];
    },
  });
}

/** Options of a length-prefixed field. */
export interface PrefixedOptions {
  /**
   * The largest length accepted, in bytes, on encode and on decode. A decoder
   * checks it before waiting for or copying the data, so a peer cannot ask
   * for more than the protocol allows.
   */
  max?: number;
}

function prefixed<T>(
  name: string,
  lengthCodec: Codec<number>,
  options: PrefixedOptions,
  toBytes: (value: T) => Uint8Array,
  fromBytes: (data: Uint8Array) => T,
): Codec<T> {
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  checkSize(name, max);
  const measure = (value: T): [Uint8Array, number] => {
    const data = toBytes(value);
    if (data.length > max) {
      throw fail(RangeError, 'encode', name, `expected at most ${max} bytes, received ${data.length}`);
    }
    let prefix: number;
    try {
      prefix = lengthCodec.encodingLength(data.length);
    } catch (err) {
      const known = err instanceof Error ? details.get(err) : undefined;
      if (known === undefined) throw err;
      throw fail(RangeError, 'encode', name, `expected a length the length field can hold, received ${data.length} bytes`, undefined, err);
    }
    return [data, prefix + data.length];
  };
  return define<T>(name, {
    minLength: minLength(lengthCodec as Codec<unknown>),
    measure: (value) => measure(value)[1],
    write(value, buf, offset) {
      const [data, total] = measure(value);
      lengthCodec.encode(data.length, buf, offset);
      buf.set(data, offset + total - data.length);
    },
    read(buf, offset) {
      let length: number;
      let start: number;
      try {
        [length, start] = lengthCodec.decode(buf, offset);
      } catch (err) {
        if (err instanceof ShortBufferError) throw new ShortBufferError(name, err.expected, err.received);
        throw err;
      }
      if (length > max) {
        throw fail(RangeError, 'decode', name, `expected a length of at most ${max}, received ${length}`);
      }
      const end = start + length;
      if (end > buf.length) throw new ShortBufferError(name, end - offset, buf.length - offset);
      return [fromBytes(buf.subarray(start, end)), end];
    },
  });
}

/**
 * Variable-length bytes preceded by their length, written with `lengthCodec`
 * (usually `u32`): the "bytes u32, then data" pair of exercises 12 and 13 as
 * one field. The length is derived from the value, never stored beside it,
 * so the two cannot disagree.
 */
export function prefixedBytes(lengthCodec: Codec<number>, options: PrefixedOptions = {}): Codec<Uint8Array> {
  return prefixed<Uint8Array>(
    'bytes',
    lengthCodec,
    options,
    (value) => {
      checkBytes('encode', 'bytes', value);
      return value;
    },
    (data) => new Uint8Array(data),
  );
}

/**
 * Variable-length UTF-8 text preceded by its length in bytes (not
 * characters: `ñ` is two), such as exercise 12's `bytes_path` and `path`.
 * Unlike `text()` there is no padding, so NUL is allowed; invalid UTF-8 is
 * malformed.
 */
export function prefixedText(lengthCodec: Codec<number>, options: PrefixedOptions = {}): Codec<string> {
  return prefixed<string>(
    'text',
    lengthCodec,
    options,
    (value) => utf8('text', value),
    (data) => fromUtf8('text', data),
  );
}

// Codecs whose end is the end of the buffer: right for a datagram, wrong for a
// stream, where a chunk boundary is not a frame boundary. FrameReader refuses them.
const toEndOfBuffer = new WeakSet<Codec<unknown>>();

/**
 * All the bytes from here to the end of the datagram, like exercise 11's
 * `data` after its three u32 fields: UDP keeps message boundaries, so the
 * datagram's length is the data's length and a prefix would only repeat it.
 * It must be a struct's last field, and such a codec cannot be read from a
 * TCP stream.
 */
export const restBytes: Codec<Uint8Array> = define<Uint8Array>('bytes', {
  measure(value) {
    checkBytes('encode', 'bytes', value);
    return value.length;
  },
  write(value, buf, offset) {
    buf.set(value, offset);
  },
  read(buf, offset) {
    return [copy(buf, offset, buf.length), buf.length];
  },
});
toEndOfBuffer.add(restBytes);

// ---------------------------------------------------------------------------
// Structs.

/** One named field of a struct: its name in the decoded object and its codec. */
export type Field = readonly [name: string, codec: Codec<unknown>];

/** The object a struct of these fields encodes. */
export type StructValue<F extends readonly Field[]> = {
  -readonly [E in F[number] as E[0]]: CodecValue<E[1]>;
};

/**
 * A codec for an object whose fields lie end to end in the order given: the
 * byte diagram of a PDU, written as code. The order is an array rather than an
 * object's keys because the wire order is the whole point and must be
 * explicit. `name` is what error messages call the PDU ("Cannot decode ring
 * frame: expected 13 bytes, received 7"), and an error in a field names the
 * field. `fixedLength` is the sum when every field has one.
 */
export function struct<const F extends readonly Field[]>(fields: F, name = 'frame'): Codec<StructValue<F>> {
  const seen = new Set<string>();
  let least = 0; // the fewest bytes a frame takes, checked before reading any field
  let fixed = true;
  let toEnd = false;
  for (const [field, codec] of fields) {
    if (seen.has(field) || field === '__proto__') {
      throw new TypeError(`Cannot define ${name}: field "${field}" is named twice or reserved`);
    }
    if (toEnd) {
      throw new TypeError(`Cannot define ${name}: field "${field}" follows a field that takes the rest of the datagram`);
    }
    seen.add(field);
    toEnd = toEndOfBuffer.has(codec);
    least += minLength(codec);
    if (codec.fixedLength === undefined) fixed = false;
  }
  type Value = StructValue<F>;
  const record = (value: Value) => value as Record<string, unknown>;
  const codec = define<Value>(name, {
    ...(fixed ? { fixedLength: least } : { minLength: least }),
    measure(value) {
      if (typeof value !== 'object' || value === null) {
        throw fail(TypeError, 'encode', name, `expected an object, received ${describe(value)}`);
      }
      let length = 0;
      for (const [field, codec] of fields) {
        try {
          length += codec.encodingLength(record(value)[field]);
        } catch (err) {
          throw inField(err, name, field, length);
        }
      }
      return length;
    },
    write(value, buf, offset) {
      let at = offset;
      for (const [field, codec] of fields) {
        const v = record(value)[field];
        try {
          codec.encode(v, buf, at);
          at += codec.encodingLength(v);
        } catch (err) {
          throw inField(err, name, field, at - offset);
        }
      }
    },
    read(buf, offset) {
      if (buf.length - offset < least) throw new ShortBufferError(name, least, buf.length - offset);
      const value: Record<string, unknown> = {};
      let at = offset;
      for (const [field, codec] of fields) {
        try {
          [value[field], at] = codec.decode(buf, at);
        } catch (err) {
          throw inField(err, name, field, at - offset);
        }
      }
      return [value as Value, at];
    },
  });
  if (toEnd) toEndOfBuffer.add(codec as Codec<unknown>);
  return codec;
}

// ---------------------------------------------------------------------------
// Datagrams and streams.

/**
 * Decodes one whole datagram. A datagram is exactly one PDU, so bytes left
 * over mean the peer and this program disagree on the format: that is
 * malformed input (`SyntaxError`), not something to ignore. A short datagram
 * is a `RangeError` as usual.
 */
export function decodeExact<T>(codec: Codec<T>, buf: Uint8Array): T {
  const [value, end] = codec.decode(buf, 0);
  if (end !== buf.length) {
    throw fail(SyntaxError, 'decode', 'datagram', `expected ${end} bytes, received ${buf.length}`);
  }
  return value;
}

/** Options of a FrameReader. */
export interface FrameReaderOptions {
  /**
   * The largest frame accepted, in bytes (default 16 MiB). A frame that
   * declares more is refused as soon as its length field arrives, before any
   * of it is buffered, so a hostile peer cannot make the reader hold gigabytes.
   */
  maxFrameLength?: number;
}

/** 16 MiB: room for the files of exercise 12, small enough that a lying peer costs nothing. */
export const DEFAULT_MAX_FRAME_LENGTH = 16 * 1024 * 1024;

/**
 * Turns the arbitrary chunks a TCP socket delivers into whole frames. TCP is
 * a byte stream: one `data` event may hold half a frame or three and a half,
 * so the reader keeps the tail and waits ("not enough bytes yet" is not an
 * error). It tries to decode again only once the bytes the codec last asked
 * for have arrived, so a large frame in small chunks is not re-parsed on every
 * chunk. A malformed frame throws (`SyntaxError` or `RangeError`): close the
 * connection then, since the stream cannot be resynchronised, and the reader
 * keeps throwing the same error if it is pushed to again.
 *
 * ```ts
 * const reader = new FrameReader(Message);
 * socket.on('data', (chunk) => {
 *   try { for (const message of reader.push(chunk)) handle(message); }
 *   catch (err) { socket.destroy(err as Error); }
 * });
 * socket.on('end', () => reader.end());
 * ```
 */
export class FrameReader<T> {
  readonly #codec: Codec<T>;
  readonly #max: number;
  #chunks: Uint8Array[] = [];
  #length = 0;
  #need = 1; // bytes to hold before decoding is worth trying
  #error: unknown = undefined;
  #failed = false;

  constructor(codec: Codec<T>, options: FrameReaderOptions = {}) {
    if (toEndOfBuffer.has(codec as Codec<unknown>)) {
      throw new TypeError('Cannot read frames from a stream: the codec takes the rest of the buffer, which only a datagram has');
    }
    const max = options.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`Cannot create a frame reader: expected a maximum frame length of 1 byte or more, received ${max}`);
    }
    this.#codec = codec;
    this.#max = max;
  }

  /** Bytes held that do not yet make a whole frame. */
  get bufferedLength(): number {
    return this.#length;
  }

  /**
   * Adds a chunk and returns the frames it completes, in order (often none).
   * Decoded frames do not share memory with the chunks, so the caller may
   * reuse its buffers.
   */
  push(chunk: Uint8Array): T[] {
    if (this.#failed) throw this.#error;
    checkBuffer('decode', 'frame', chunk);
    if (chunk.length === 0) return [];
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    if (this.#length < this.#need) return [];

    const buf = this.#chunks.length === 1 ? chunk : concat(this.#chunks, this.#length);
    const frames: T[] = [];
    let offset = 0;
    try {
      while (offset < buf.length) {
        const next = this.#decodeOne(buf, offset);
        if (next === undefined) break;
        frames.push(next[0]);
        offset = next[1];
      }
    } catch (err) {
      this.#failed = true;
      this.#error = err;
      this.#chunks = [];
      this.#length = 0;
      throw err;
    }
    // Copy the tail: it may be part of the caller's chunk, which the caller may reuse.
    const tail = offset === buf.length ? undefined : new Uint8Array(buf.subarray(offset));
    this.#chunks = tail === undefined ? [] : [tail];
    this.#length = tail?.length ?? 0;
    if (tail === undefined) this.#need = 1;
    return frames;
  }

  /**
   * Declares the end of the stream. A frame cut off by the peer closing is
   * an error (a `RangeError`, as for any short buffer), not a frame to drop
   * in silence.
   */
  end(): void {
    if (this.#failed) throw this.#error;
    if (this.#length === 0) return;
    const buf = concat(this.#chunks, this.#length);
    this.#failed = true;
    try {
      this.#codec.decode(buf, 0);
      this.#error = new RangeError(`Cannot decode frame: the stream ended inside a frame, ${buf.length} bytes in`);
    } catch (err) {
      this.#error = err;
    }
    throw this.#error;
  }

  /** One frame at `offset`, or undefined when more bytes are needed first. */
  #decodeOne(buf: Uint8Array, offset: number): [T, number] | undefined {
    let frame: [T, number];
    try {
      frame = this.#codec.decode(buf, offset);
    } catch (err) {
      if (!(err instanceof ShortBufferError)) throw err;
      this.#checkLength(err.subject, err.expected);
      this.#need = err.expected;
      return undefined;
    }
    if (frame[1] <= offset) {
      throw new TypeError('Cannot read frames from a stream: the codec decoded a frame of 0 bytes');
    }
    this.#checkLength('frame', frame[1] - offset);
    return frame;
  }

  #checkLength(subject: string, length: number): void {
    if (length > this.#max) {
      throw fail(RangeError, 'decode', subject, `expected a frame of at most ${this.#max} bytes, received a length of ${length}`);
    }
  }
}

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
