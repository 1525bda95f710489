/**
 * A small seeded PRNG for the fuzz campaign (mulberry32), so that a seed
 * names the same cases on every machine and every run.
 *
 * @module
 */

/** A deterministic stream of numbers from a 32-bit seed. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Cannot pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const word = (this.next() * 4294967296) >>> 0;
      out[i] = word & 0xff;
      if (i + 1 < n) out[i + 1] = (word >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (word >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = word >>> 24;
    }
    return out;
  }

  /**
   * A size from 0 to `max`, log-uniform (as many cases of 1–10 bytes as of
   * 100 kB–1 MB), with 0 and `max` themselves now and then.
   */
  size(max: number): number {
    const r = this.next();
    if (r < 0.03) return 0;
    if (r < 0.06) return max;
    return Math.min(max, Math.floor(Math.exp(this.next() * Math.log(max + 1))));
  }

  /** A child generator: its own stream, derived from this one and `label`. */
  fork(label: string): Rng {
    return new Rng(hashSeed((this.next() * 4294967296) >>> 0, label));
  }
}

/** Mixes a seed and a label into a 32-bit seed (FNV-1a over the label, then a finaliser). */
export function hashSeed(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
