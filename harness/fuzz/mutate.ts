/**
 * The mutations of the campaign: from a valid PDU (or none), the bytes of one
 * case. Every function is pure given its {@link Rng}, so a seed names a case.
 *
 * @module
 */
import type { Rng } from './prng.ts';

/** The largest case the campaign sends on a stream. */
export const MAX_STREAM_CASE = 1024 * 1024;
/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM = 65507;

/** What a mutation made, and words for the report. */
export interface Mutation {
  kind: 'random' | 'prefix-garbage' | 'truncated' | 'length-ffffffff' | 'bit-flips' | 'inflated' | 'repeated' | 'valid';
  bytes: Uint8Array;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Random bytes, 0 to `max` long (log-uniform). */
export function randomBytes(rng: Rng, max: number): Uint8Array {
  return rng.bytes(rng.size(max));
}

/** A valid prefix (at least one byte of it) followed by random garbage. */
export function prefixGarbage(rng: Rng, valid: Uint8Array, max: number): Uint8Array {
  const keep = valid.length === 0 ? 0 : rng.int(1, valid.length);
  return concat([valid.subarray(0, keep), rng.bytes(Math.max(0, Math.min(max - keep, rng.size(max))))]);
}

/** The valid PDU cut short (0 to length − 1 bytes). */
export function truncated(rng: Rng, valid: Uint8Array): Uint8Array {
  return valid.slice(0, valid.length === 0 ? 0 : rng.int(0, valid.length - 1));
}

/** 1 to 8 bits of the valid PDU flipped. */
export function bitFlips(rng: Rng, valid: Uint8Array): Uint8Array {
  const out = Uint8Array.from(valid);
  if (out.length === 0) return out;
  const flips = rng.int(1, 8);
  for (let i = 0; i < flips; i++) {
    const at = rng.int(0, out.length - 1);
    out[at] = (out[at] as number) ^ (1 << rng.int(0, 7));
  }
  return out;
}

/** Values a hostile length field takes: the 0xFFFFFFFF most of the time. */
const HOSTILE_LENGTHS = [0xffffffff, 0xffffffff, 0xffffffff, 0x7fffffff, 0x80000000, 0x10000000, 0xfffffffe, 0];

/** A u32 (big-endian) length field at one of `offsets` set to a hostile value. */
export function hostileLength(rng: Rng, valid: Uint8Array, offsets: readonly number[], width: 2 | 4 = 4): Uint8Array {
  const out = Uint8Array.from(valid);
  const usable = offsets.filter((o) => o + width <= out.length);
  if (usable.length === 0) return out;
  const at = rng.pick(usable);
  const view = new DataView(out.buffer);
  if (width === 4) view.setUint32(at, rng.pick(HOSTILE_LENGTHS));
  else view.setUint16(at, rng.pick([0xffff, 0xffff, 0x8000, 0]));
  return out;
}

/** The valid PDU with a run of one byte (`A`, NUL, 0xFF, `/`, a UTF-8 lead) inserted somewhere: long fields. */
export function inflated(rng: Rng, valid: Uint8Array, max: number): Uint8Array {
  const at = rng.int(0, valid.length);
  const run = new Uint8Array(Math.min(max, Math.max(1, rng.size(max)))).fill(rng.pick([0x41, 0x00, 0xff, 0x2f, 0xe2, 0x2e, 0x0a]));
  return concat([valid.subarray(0, at), run, valid.subarray(at)]).subarray(0, max);
}

/** The valid PDU sent many times back to back (pipelining). */
export function repeated(rng: Rng, valid: Uint8Array, max: number): Uint8Array {
  const times = Math.max(2, Math.min(rng.int(2, 500), Math.floor(max / Math.max(1, valid.length))));
  return concat(Array.from({ length: times }, () => valid)).subarray(0, max);
}

/**
 * One mutated case from the valid PDUs: random bytes, a valid prefix and
 * garbage, a truncated PDU, a length of 0xFFFFFFFF, bit flips, a long field,
 * or a pipeline of valid PDUs.
 */
export function mutate(rng: Rng, valid: Uint8Array, { max, lengthFields = [], lengthWidth = 4 }: { max: number; lengthFields?: readonly number[]; lengthWidth?: 2 | 4 }): Mutation {
  const kinds: Mutation['kind'][] = ['random', 'prefix-garbage', 'truncated', 'bit-flips', 'bit-flips', 'inflated', 'repeated'];
  if (lengthFields.length > 0) kinds.push('length-ffffffff', 'length-ffffffff');
  const kind = rng.pick(kinds);
  switch (kind) {
    case 'random':
      return { kind, bytes: randomBytes(rng, max) };
    case 'prefix-garbage':
      return { kind, bytes: prefixGarbage(rng, valid, max) };
    case 'truncated':
      return { kind, bytes: truncated(rng, valid) };
    case 'bit-flips':
      return { kind, bytes: bitFlips(rng, valid) };
    case 'inflated':
      return { kind, bytes: inflated(rng, valid, max) };
    case 'repeated':
      return { kind, bytes: repeated(rng, valid, max) };
    default:
      return { kind: 'length-ffffffff', bytes: hostileLength(rng, valid, lengthFields, lengthWidth) };
  }
}

/** A short printable picture of some bytes: their length and first bytes in hex. */
export function preview(bytes: Uint8Array, n = 24): string {
  const hex = Buffer.from(bytes.subarray(0, n)).toString('hex');
  return `${bytes.length} B ${hex}${bytes.length > n ? '…' : ''}`;
}
