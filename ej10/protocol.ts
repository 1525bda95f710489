/**
 * The UTC time protocol of exercise 10: a 16-byte request and a 16-byte
 * reply over UDP, big-endian (the full table is in server.ts and README.md).
 * The request is padded to the reply's size so the server never sends more
 * than it receives: a spoofed source address gains an attacker nothing.
 *
 * @module
 */
import { bytes, type CodecValue, struct, u16, u32, u64, u8 } from '../lib/pdu.ts';

/** "CR" in ASCII (Cristian): the first two bytes of every PDU. */
export const MAGIC = 0x4352;
export const VERSION = 1;
/** Both PDUs are this long. */
export const PDU_LENGTH = 16;
export const Kind = { request: 1, reply: 2 } as const;

/** magic u16 | version u8 | kind u8 | id u32 | reserved 8 bytes (zero). */
export const Request = struct([
  ['magic', u16],
  ['version', u8],
  ['kind', u8],
  ['id', u32],
  ['reserved', bytes(8)],
], 'time request');
export type Request = CodecValue<typeof Request>;

/** magic u16 | version u8 | kind u8 | id u32 | server_time u64 (microseconds since 1970, UTC). */
export const Reply = struct([
  ['magic', u16],
  ['version', u8],
  ['kind', u8],
  ['id', u32],
  ['serverTimeUs', u64],
], 'time reply');
export type Reply = CodecValue<typeof Reply>;

/** A request with id `id`. */
export function request(id: number): Request {
  return { magic: MAGIC, version: VERSION, kind: Kind.request, id, reserved: new Uint8Array(8) };
}

/**
 * Decodes a datagram as a request, throwing a SyntaxError (or RangeError for
 * a short one) that says what is wrong: the server logs it and drops it.
 */
export function readRequest(datagram: Uint8Array): Request {
  if (datagram.length !== PDU_LENGTH) throw new SyntaxError(`Cannot decode time request: expected ${PDU_LENGTH} bytes, received ${datagram.length}`);
  const [value] = Request.decode(datagram);
  if (value.magic !== MAGIC) throw new SyntaxError(`Cannot decode time request: expected magic 0x4352 ("CR"), received 0x${value.magic.toString(16).padStart(4, '0')}`);
  if (value.version !== VERSION) throw new SyntaxError(`Cannot decode time request: expected version ${VERSION}, received ${value.version}`);
  if (value.kind !== Kind.request) throw new SyntaxError(`Cannot decode time request: expected kind ${Kind.request}, received ${value.kind}`);
  return value;
}

/** Decodes a datagram as the reply to request `id`, or throws a SyntaxError saying why it is not. */
export function readReply(datagram: Uint8Array, id: number): Reply {
  if (datagram.length !== PDU_LENGTH) throw new SyntaxError(`Cannot decode time reply: expected ${PDU_LENGTH} bytes, received ${datagram.length}`);
  const [value] = Reply.decode(datagram);
  if (value.magic !== MAGIC || value.version !== VERSION || value.kind !== Kind.reply) {
    throw new SyntaxError(`Cannot decode time reply: expected magic "CR", version ${VERSION}, kind ${Kind.reply}`);
  }
  if (value.id !== id) throw new SyntaxError(`Cannot decode time reply: it answers request ${value.id}, not ${id}`);
  return value;
}

/** Microseconds since the epoch (a float of milliseconds) as the reply carries them. */
export function msToUs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000));
}
