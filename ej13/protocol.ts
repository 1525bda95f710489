/**
 * The frame of exercise 13's logical ring (the full specification, in RFC
 * form, is PROTOCOL.md beside this file):
 *
 * ```text
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                            ID_SRC                             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                            ID_DST                             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  reserved |F|A|T|                 LEN_DAT ...                 |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  ... LEN_DAT  |            DATA (LEN_DAT bytes of UTF-8) ...   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 *
 * ID_SRC u32 | ID_DST u32 | flags u8 (T = 0x01 turn, A = 0x02 ack,
 * F = 0x04 finalisation, the other five bits zero) | LEN_DAT u32 | DATA.
 * Big-endian; a 13-byte header. Four kinds are valid: a message (no flag),
 * an acknowledged message (A), the token (T) and the finalisation (F); the
 * token and the finalisation carry no data. Anything else is malformed.
 *
 * @module
 */
import { type Codec, prefixedText, struct, u32, u8 } from '../lib/pdu.ts';

/** Bytes before DATA: ID_SRC (4), ID_DST (4), flags (1), LEN_DAT (4). */
export const HEADER_LENGTH = 13;
/** The most bytes of DATA a frame may carry (a message is one line of text). */
export const MAX_DATA = 65535;
/** The longest frame on the wire. */
export const MAX_FRAME_LENGTH = HEADER_LENGTH + MAX_DATA;
/** The largest node id (ID_SRC and ID_DST are unsigned 32-bit). */
export const MAX_ID = 0xffff_ffff;

/** The bits of the flags byte. */
export const FLAG = { T: 0x01, A: 0x02, F: 0x04 } as const;
const RESERVED = 0xff & ~(FLAG.T | FLAG.A | FLAG.F);

/** What a frame is, from its flags. */
export type FrameKind = 'message' | 'ack' | 'token' | 'fin';
const KIND_BY_FLAGS = new Map<number, FrameKind>([
  [0, 'message'],
  [FLAG.A, 'ack'],
  [FLAG.T, 'token'],
  [FLAG.F, 'fin'],
]);
const FLAGS_BY_KIND: Record<FrameKind, number> = { message: 0, ack: FLAG.A, token: FLAG.T, fin: FLAG.F };

/** A frame as the program sees it. `data` is empty for a token and a finalisation. */
export interface RingFrame {
  kind: FrameKind;
  src: number;
  dst: number;
  data: string;
}

/** The bytes as laid out on the wire, before the flags are checked. */
const Wire = struct([
  ['src', u32],
  ['dst', u32],
  ['flags', u8],
  ['data', prefixedText(u32, { max: MAX_DATA })],
], 'ring frame');

function kindOf(flags: number): FrameKind {
  if ((flags & RESERVED) !== 0) {
    throw new SyntaxError(`Cannot decode ring frame: reserved flag bits must be zero, received flags 0x${flags.toString(16).padStart(2, '0')}`);
  }
  const kind = KIND_BY_FLAGS.get(flags);
  if (kind === undefined) {
    const set = (['T', 'A', 'F'] as const).filter((name) => flags & FLAG[name]).join('+');
    throw new SyntaxError(`Cannot decode ring frame: flags ${set} together are not a valid frame (one of T, A or F at most)`);
  }
  return kind;
}

function toWire(frame: RingFrame): { src: number; dst: number; flags: number; data: string } {
  if (typeof frame !== 'object' || frame === null) throw new TypeError('Cannot encode ring frame: expected an object');
  const flags = FLAGS_BY_KIND[frame.kind];
  if (flags === undefined) throw new TypeError(`Cannot encode ring frame: unknown kind ${JSON.stringify(frame.kind)}`);
  if ((frame.kind === 'token' || frame.kind === 'fin') && frame.data !== '') {
    throw new RangeError(`Cannot encode ring frame: a ${frame.kind} frame carries no data, received ${frame.data.length} characters`);
  }
  return { src: frame.src, dst: frame.dst, flags, data: frame.data };
}

/**
 * The ring frame codec, in the project's codec shape (`encode`, `decode`,
 * `encodingLength`), so that `new FrameReader(Frame)` reads frames from a
 * TCP stream. Decoding refuses reserved bits, flag combinations other than
 * none, A, T or F, data on a token or finalisation, more than
 * {@link MAX_DATA} bytes and invalid UTF-8 (`SyntaxError` or `RangeError`);
 * a short buffer is a `ShortBufferError`, "wait for more".
 */
export const Frame: Codec<RingFrame> = {
  encodingLength: (frame) => Wire.encodingLength(toWire(frame)),
  encode: (frame, buf, offset) => Wire.encode(toWire(frame), buf, offset),
  decode(buf, offset = 0) {
    const [wire, next] = Wire.decode(buf, offset);
    const kind = kindOf(wire.flags);
    if ((kind === 'token' || kind === 'fin') && wire.data !== '') {
      throw new SyntaxError(`Cannot decode ring frame: a ${kind} frame must have LEN_DAT 0, received ${next - offset - HEADER_LENGTH}`);
    }
    return [{ kind, src: wire.src, dst: wire.dst, data: wire.data }, next];
  },
};

/** A frame in one line for a log: `message 1->3 (12 bytes)`. */
export function describeFrame(frame: RingFrame): string {
  const size = frame.kind === 'message' || frame.kind === 'ack' ? ` (${new TextEncoder().encode(frame.data).length} bytes)` : '';
  return `${frame.kind} ${frame.src}->${frame.dst}${size}`;
}
