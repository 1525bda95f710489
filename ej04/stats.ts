/**
 * Statistics of a sample of round-trip delays (RFC 2681 §6 suggests
 * percentiles, minimum and a measure of spread): the assignment's average,
 * then minimum, median, 95th percentile, maximum and mean deviation.
 *
 * @module
 */

/** Summary of the defined round-trip delays of one host, in ms. */
export interface RttStats {
  sent: number;
  received: number;
  lost: number;
  /** Undefined (RFC 2681: the delay of a lost probe is undefined) when nothing came back. */
  avg?: number;
  min?: number;
  median?: number;
  p95?: number;
  max?: number;
  /** Mean absolute deviation from the average. */
  mdev?: number;
}

/** The `p`-th percentile (0–100) of sorted values by the nearest-rank method. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** The median of sorted values (the mean of the middle two for an even count). */
export function median(sorted: readonly number[]): number | undefined {
  const n = sorted.length;
  if (n === 0) return undefined;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Summarizes `rtts` (the defined delays) out of `sent` probes. */
export function summarize(rtts: readonly number[], sent: number): RttStats {
  const received = rtts.length;
  const base = { sent, received, lost: sent - received };
  if (received === 0) return base;
  const sorted = [...rtts].sort((a, b) => a - b);
  const avg = sorted.reduce((sum, x) => sum + x, 0) / received;
  const mdev = sorted.reduce((sum, x) => sum + Math.abs(x - avg), 0) / received;
  return {
    ...base,
    avg,
    min: sorted[0] as number,
    median: median(sorted) as number,
    p95: percentile(sorted, 95) as number,
    max: sorted[received - 1] as number,
    mdev,
  };
}
