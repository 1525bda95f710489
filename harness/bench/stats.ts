/**
 * The two statistics the benchmark reports: the median of repeated runs (one
 * noisy run on a shared machine moves it less than a mean) and quantiles of
 * round-trip times.
 *
 * @module
 */

/**
 * The `q`-quantile (0 ≤ q ≤ 1) of `values` by the nearest-rank method on a
 * sorted copy; `undefined` for no values. Nearest rank returns a value that
 * was actually observed, which is what a latency figure should be.
 */
export function quantile(values: ArrayLike<number>, q: number): number | undefined {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`Cannot take a quantile: expected 0 <= q <= 1, got ${q}`);
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

/**
 * The median of `values`: the middle one, or the mean of the two middle ones
 * for an even count (two runs give their mean); `undefined` for no values.
 */
export function median(values: ArrayLike<number>): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}
