/**
 * The PDU of exercise 11: the assignment's three 32-bit fields (sequence,
 * ack, ack_bitfield) and data, plus what a file transfer needs. Every integer
 * is unsigned, big-endian.
 *
 * ```text
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                           sequence                            |  0
 * +---------------------------------------------------------------+
 * |                              ack                              |  4
 * +---------------------------------------------------------------+
 * |                         ack_bitfield                          |  8
 * +---------------+---------------+-------------------------------+
 * |     type      |     flags     |            window             | 12
 * +---------------+---------------+-------------------------------+
 * |                          connection                           | 16
 * +---------------------------------------------------------------+
 * |                            through                            | 20
 * +---------------------------------------------------------------+
 * |                     data (0 to 1400 bytes)                    | 24
 * +---------------------------------------------------------------+
 * ```
 *
 * - **sequence**: this packet's number in its sender's stream (one per
 *   message; a pure ACK carries the next number without using it). Numbers
 *   start at a random value and wrap from 2^32 − 1 to 0.
 * - **ack**: the most recent (highest) sequence received from the peer, as in
 *   Gaffer on Games' article; **ack_bitfield**: bit n (LSB = 0) set when
 *   `ack − 1 − n` was received too, so one packet acknowledges 33.
 * - **type**: 1 GET (data: file name, UTF-8; to resume, then a NUL and the
 *   byte to start at in decimal: {@link encodeGet}), 2 PUT (data: u64 size, then
 *   the name), 3 OK (data: u64 size), 4 DATA (file bytes), 5 FIN (data: the
 *   SHA-256 of the whole file, 32 bytes), 6 ERROR (data: a UTF-8 message),
 *   7 ACK (no data), 8 RESET (no data: "no such connection"), 9 RETRY (data:
 *   an address-validation token, 16 bytes).
 * - **flags**: bit 0 SYN (the first message of a stream: its sequence is the
 *   sender's initial number), bit 1 ACK (ack, ack_bitfield and through are
 *   valid), bit 2 TOKEN (on a GET or PUT with SYN only: the data starts with
 *   the token the server sent in RETRY, and the request follows it).
 * - **window**: how many packets beyond `through` the sender of this PDU
 *   will accept (its reorder buffer): flow control.
 * - **connection**: chosen at random by the client, names the transfer (so a
 *   server tells apart two transfers from one address).
 * - **through**: cumulative ack, every sequence before it was received: it
 *   acknowledges what fell out of the 33-packet reach of the bitfield.
 *
 * @module
 */
import { type CodecValue, decodeExact, restBytes, struct, u16, u32, u8 } from '../lib/pdu.ts';

/** The PDU as a codec (lib/pdu.ts shape: encode, decode, encodingLength). */
export const Packet = struct(
  [
    ['sequence', u32],
    ['ack', u32],
    ['ackBitfield', u32],
    ['type', u8],
    ['flags', u8],
    ['window', u16],
    ['connection', u32],
    ['through', u32],
    ['data', restBytes],
  ],
  'ej11 packet',
);
export type Packet = CodecValue<typeof Packet>;

/** Bytes before the data. */
export const HEADER_LENGTH = 24;
/** Most data bytes in one packet: 24 + 1400 + 28 (UDP, IPv4) stays under a 1500-byte MTU. */
export const MAX_DATA = 1400;

export const Type = { GET: 1, PUT: 2, OK: 3, DATA: 4, FIN: 5, ERROR: 6, ACK: 7, RESET: 8, RETRY: 9 } as const;
export type TypeCode = (typeof Type)[keyof typeof Type];
export const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Type).map(([k, v]) => [v, k]));

export const Flag = { SYN: 1, ACK: 2, TOKEN: 4 } as const;

/** Bytes of an address-validation token (RETRY's data; the start of a GET or PUT with TOKEN). */
export const TOKEN_LENGTH = 16;
/** Most bytes of a GET's name: a packet's data less the token it may have to carry. */
export const MAX_NAME = MAX_DATA - TOKEN_LENGTH;

/** Encodes a packet into a new buffer. */
export function encodePacket(packet: Packet): Uint8Array {
  return Packet.encode(packet);
}

/**
 * Decodes one datagram, refusing anything that is not a packet of this
 * protocol: too short (`RangeError`), too long or of an unknown type
 * (`SyntaxError`).
 */
export function decodePacket(buf: Uint8Array): Packet {
  if (buf.length > HEADER_LENGTH + MAX_DATA) throw new SyntaxError(`Cannot decode ej11 packet: expected at most ${HEADER_LENGTH + MAX_DATA} bytes, received ${buf.length}`);
  const packet = decodeExact(Packet, buf);
  if (!(packet.type in TYPE_NAMES)) throw new SyntaxError(`Cannot decode ej11 packet: unknown type ${packet.type}`);
  if (packet.flags & ~(Flag.SYN | Flag.ACK | Flag.TOKEN)) throw new SyntaxError(`Cannot decode ej11 packet: unknown flags 0x${packet.flags.toString(16)}`);
  if (packet.flags & Flag.TOKEN) {
    if (!(packet.flags & Flag.SYN) || (packet.type !== Type.GET && packet.type !== Type.PUT)) throw new SyntaxError('Cannot decode ej11 packet: TOKEN on a packet that is not the first GET or PUT');
    if (packet.data.length < TOKEN_LENGTH) throw new RangeError(`Cannot decode ej11 packet: expected a ${TOKEN_LENGTH}-byte token, received ${packet.data.length} bytes`);
  }
  return packet;
}

/**
 * Splits the token off a GET or PUT that carries one (TOKEN flag): the token,
 * and the packet as it would be without it (its data the request alone).
 */
export function splitToken(packet: Packet): { token: Uint8Array | undefined; packet: Packet } {
  if (!(packet.flags & Flag.TOKEN)) return { token: undefined, packet };
  return { token: packet.data.subarray(0, TOKEN_LENGTH), packet: { ...packet, flags: packet.flags & ~Flag.TOKEN, data: packet.data.subarray(TOKEN_LENGTH) } };
}

const U32 = 2 ** 32;

/** The 32-bit wire form of an unwrapped (unbounded) sequence number. */
export function wrap(n: number): number {
  return ((n % U32) + U32) % U32;
}

/**
 * The unwrapped number nearest to `reference` whose wire form is `wire`:
 * sequence numbers wrap from 2^32 − 1 to 0, and a peer's numbers are
 * compared as the shortest signed distance (RFC 1982 serial arithmetic).
 */
export function unwrap(wire: number, reference: number): number {
  const diff = (wire - wrap(reference)) | 0; // signed 32-bit distance
  return reference + diff;
}

/** The most a resume offset may be: what a JavaScript number holds exactly. */
const MAX_OFFSET_DIGITS = /^(0|[1-9][0-9]{0,15})$/;

/**
 * GET's data: the name, and for a resumed GET (`from` > 0) a NUL byte and the
 * byte to resume from in decimal ASCII (`libro.txt\0131072`). A plain GET is
 * the name alone, as before resuming existed. A server that predates it reads
 * the whole as one name, and a name holding NUL is refused with an ERROR
 * ("bad file name"), never served from byte 0.
 */
export function encodeGet(name: string, from = 0): Uint8Array {
  return new TextEncoder().encode(from > 0 ? `${name}\0${from}` : name);
}

/** Decodes GET's data (see {@link encodeGet}). */
export function decodeGet(data: Uint8Array): { name: string; from: number } {
  const nul = data.indexOf(0);
  if (nul < 0) return { name: decodeName(data), from: 0 };
  const digits = new TextDecoder().decode(data.subarray(nul + 1));
  if (!MAX_OFFSET_DIGITS.test(digits) || Number(digits) > Number.MAX_SAFE_INTEGER) {
    throw new SyntaxError('Cannot decode GET: after the name and a NUL, expected the byte to resume from in decimal digits');
  }
  return { name: decodeName(data.subarray(0, nul)), from: Number(digits) };
}

/** Whether `message`, a refusal of a resumed GET, is how a server without resuming refuses one (the NUL in the name). */
export function isOldServerRefusal(message: string): boolean {
  return /^bad file name '.*\\x00/.test(message);
}

/** Encodes a u64 size and then a name, for PUT. */
export function encodePut(size: number, name: string): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const out = new Uint8Array(8 + nameBytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(size));
  out.set(nameBytes, 8);
  return out;
}

/** Decodes PUT's data. */
export function decodePut(data: Uint8Array): { size: number; name: string } {
  if (data.length < 8) throw new RangeError(`Cannot decode PUT: expected at least 8 bytes, received ${data.length}`);
  return { size: readSize(data), name: decodeName(data.subarray(8)) };
}

/** Encodes a u64 size (OK). */
export function encodeSize(size: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(size));
  return out;
}

/** Reads a u64 size at the start of `data`, refusing sizes beyond 2^53. */
export function readSize(data: Uint8Array): number {
  if (data.length < 8) throw new RangeError(`Cannot decode size: expected 8 bytes, received ${data.length}`);
  const size = new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(0);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`Cannot decode size: ${size} is too large`);
  return Number(size);
}

/**
 * `text` as UTF-8, cut at a character boundary to at most `max` bytes (an
 * error message that quotes a client's name must still fit one packet).
 */
export function encodeText(text: string, max: number): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--; // not inside a multi-byte character
  return bytes.subarray(0, end);
}

/** Decodes a file name, refusing invalid UTF-8. */
export function decodeName(data: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new SyntaxError('Cannot decode file name: not valid UTF-8');
  }
}
