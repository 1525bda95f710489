/**
 * The time-zone protocol of exercise 2: one fixed-length request, one
 * fixed-length response, both in network byte order, sent over UDP to the
 * same port as RFC 867 daytime. The byte-by-byte specification is at the top
 * of server.ts (as the assignment asks) and in README.md; this module is its
 * codec, in the project's PDU shape (lib/pdu.ts).
 *
 * A datagram is ours when its first two bytes are the magic "TZ"; anything
 * else is a daytime request and gets the daytime line.
 *
 * @module
 */
import { type Codec, type CodecValue, struct, text, u16, u32, u64, u8 } from '../lib/pdu.ts';

/** "TZ" in ASCII: the first two bytes of every PDU of this protocol. */
export const MAGIC = 0x545a;
/** The protocol version this code speaks. */
export const VERSION = 1;
/** Bytes of the zone name field (NUL-padded UTF-8); the longest IANA name has 32. */
export const ZONE_LENGTH = 48;
/** Bytes of the zone abbreviation field. */
export const ABBREVIATION_LENGTH = 16;
/** Size of every request. */
export const REQUEST_LENGTH = 56;
/** Size of every response. */
export const RESPONSE_LENGTH = 104;
/** `syncAgeMs` of a server that has never synchronised. */
export const NEVER_SYNCHRONISED = 0xffff_ffff;

/** The `kind` byte. */
export const Kind = { request: 1, response: 2 } as const;

/** The `status` byte of a response. */
export const Status = { ok: 0, unknownZone: 1, malformedRequest: 2, unsupportedVersion: 3 } as const;

/** Words for each status, as the client prints them. */
export const STATUS_TEXT: Record<number, string> = {
  [Status.ok]: 'ok',
  [Status.unknownZone]: 'unknown zone',
  [Status.malformedRequest]: 'malformed request',
  [Status.unsupportedVersion]: 'unsupported version',
};

/** A signed big-endian 32-bit integer, as two's complement over `u32`. */
export const i32: Codec<number> & { fixedLength: number } = {
  fixedLength: 4,
  encodingLength: (value) => (checkI32(value), 4),
  encode: (value, buf, offset) => (checkI32(value), u32.encode(value >>> 0, buf, offset)),
  decode(buf, offset) {
    const [raw, next] = u32.decode(buf, offset);
    return [raw | 0, next];
  },
};

function checkI32(value: number): void {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) {
    throw new RangeError(`Cannot encode i32: expected an integer from -2147483648 to 2147483647, received ${value}`);
  }
}

/** A signed big-endian 64-bit integer held in a JavaScript number (so within ±2^53). */
export const i64: Codec<number> & { fixedLength: number } = {
  fixedLength: 8,
  encodingLength: (value) => (checkSafe('i64', value), 8),
  encode: (value, buf, offset) => (checkSafe('i64', value), u64.encode(BigInt.asUintN(64, BigInt(value)), buf, offset)),
  decode(buf, offset) {
    const [raw, next] = u64.decode(buf, offset);
    const value = BigInt.asIntN(64, raw);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new RangeError(`Cannot decode i64: expected a value within ±2^53, received ${value}`);
    }
    return [Number(value), next];
  },
};

/** An unsigned 64-bit integer held in a JavaScript number (milliseconds since 1970 fit). */
export const u64n: Codec<number> & { fixedLength: number } = {
  fixedLength: 8,
  encodingLength: (value) => (checkSafe('u64', value, 0), 8),
  encode: (value, buf, offset) => (checkSafe('u64', value, 0), u64.encode(BigInt(value), buf, offset)),
  decode(buf, offset) {
    const [raw, next] = u64.decode(buf, offset);
    if (raw > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`Cannot decode u64: expected a value below 2^53, received ${raw}`);
    return [Number(raw), next];
  },
};

function checkSafe(name: string, value: number, min = Number.MIN_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Cannot encode ${name}: expected an integer from ${min} to ${Number.MAX_SAFE_INTEGER}, received ${value}`);
  }
}

/** The request: which zone the client wants the time in (empty: the server's own). */
export const Request = struct([
  ['magic', u16],
  ['version', u8],
  ['kind', u8],
  ['nonce', u32],
  ['zone', text(ZONE_LENGTH)],
], 'time-zone request');
export type Request = CodecValue<typeof Request>;

/** The response: the instant, the zone's offset at it, and how the server's clock is synchronised. */
export const Response = struct([
  ['magic', u16],
  ['version', u8],
  ['kind', u8],
  ['nonce', u32],
  ['status', u8],
  ['stratum', u8],
  ['reserved', u16],
  ['unixMs', u64n],
  ['zoneOffsetSeconds', i32],
  ['ntpOffsetUs', i64],
  ['ntpDelayUs', u32],
  ['syncAgeMs', u32],
  ['zone', text(ZONE_LENGTH)],
  ['abbreviation', text(ABBREVIATION_LENGTH)],
], 'time-zone response');
export type Response = CodecValue<typeof Response>;

/** Builds a request for `zone` ('' for the server's own zone). */
export function request(zone: string, nonce: number): Request {
  return { magic: MAGIC, version: VERSION, kind: Kind.request, nonce, zone };
}

/** What a server makes of one datagram. */
export type Incoming =
  | { type: 'daytime' }
  | { type: 'request'; request: Request }
  | { type: 'error'; status: number; nonce: number; reason: string };

/**
 * Classifies a datagram: not ours (daytime), a valid request, or an error
 * to answer with its status. Never throws: every malformed input has an answer.
 */
export function readRequest(datagram: Uint8Array): Incoming {
  if (datagram.length < 2 || ((datagram[0]! << 8) | datagram[1]!) !== MAGIC) return { type: 'daytime' };
  const nonce = datagram.length >= 8 ? new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength).getUint32(4) : 0;
  const malformed = (reason: string): Incoming => ({ type: 'error', status: Status.malformedRequest, nonce, reason });
  if (datagram.length >= 3 && datagram[2] !== VERSION) {
    return { type: 'error', status: Status.unsupportedVersion, nonce, reason: `version ${datagram[2]} (this server speaks ${VERSION})` };
  }
  if (datagram.length !== REQUEST_LENGTH) return malformed(`expected ${REQUEST_LENGTH} bytes, received ${datagram.length}`);
  let value: Request;
  try {
    [value] = Request.decode(datagram);
  } catch (error) {
    return malformed(error instanceof Error ? error.message : String(error));
  }
  if (value.kind !== Kind.request) return malformed(`kind ${value.kind} is not a request (${Kind.request})`);
  return { type: 'request', request: value };
}

/**
 * Decodes a datagram the client received as a response to `nonce`. Throws a
 * SyntaxError for anything that is not exactly one such response, naming
 * what was wrong.
 */
export function readResponse(datagram: Uint8Array, nonce: number): Response {
  if (datagram.length !== RESPONSE_LENGTH) {
    throw new SyntaxError(`Cannot decode time-zone response: expected ${RESPONSE_LENGTH} bytes, received ${datagram.length}`);
  }
  const [value] = Response.decode(datagram);
  if (value.magic !== MAGIC) throw new SyntaxError(`Cannot decode time-zone response: expected magic 0x545a ("TZ"), received 0x${value.magic.toString(16)}`);
  if (value.kind !== Kind.response) throw new SyntaxError(`Cannot decode time-zone response: expected kind ${Kind.response}, received ${value.kind}`);
  if (value.version !== VERSION) throw new SyntaxError(`Cannot decode time-zone response: expected version ${VERSION}, received ${value.version}`);
  if (value.nonce !== nonce) throw new SyntaxError(`Cannot decode time-zone response: it answers request ${value.nonce}, not ${nonce}`);
  return value;
}
