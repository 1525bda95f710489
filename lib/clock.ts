/**
 * The wall clock with sub-millisecond resolution, for protocols that measure
 * round trips of a tenth of a millisecond (SNTP in ej02, Cristian's
 * algorithm in ej10).
 *
 * `Date.now()` counts whole milliseconds, too coarse for a loopback round
 * trip. `performance.timeOrigin + performance.now()` has microseconds in
 * Node and Deno alike (two processes on one machine agree well within a
 * loopback round trip, which ej10's scenarios check), but it is anchored once, when
 * the process starts: if the system clock is stepped afterwards (`date -s`,
 * an NTP daemon stepping it), it would keep the old time. So every reading
 * is checked against `Date.now()` and the anchor is moved when the two
 * disagree by more than rounding and scheduling explain.
 *
 * (Finding the anchor from the instant `Date.now()` ticks over does not
 * work better: measured here, `Date.now()` sometimes ticks over up to 0.9 ms
 * later than this clock says the millisecond began, so its edges bound
 * nothing tighter.)
 *
 * @module
 */

/** A disagreement with `Date.now()` beyond this is a step of the system clock, not rounding. */
const STEP_MS = 20;

let anchor = performance.timeOrigin;

/**
 * Milliseconds since the Unix epoch (UTC) as the system clock tells them,
 * with a fractional part (microseconds). Never sets or slews anything.
 */
export function wallClockMs(): number {
  const fine = anchor + performance.now();
  const coarse = Date.now();
  // Date.now() truncates, so the true time is in [coarse, coarse + 1).
  if (fine < coarse - STEP_MS || fine > coarse + 1 + STEP_MS) {
    anchor = coarse + 0.5 - performance.now();
    return coarse + 0.5;
  }
  return fine;
}

/** A source of the current time in milliseconds since the epoch; tests pass their own. */
export type Clock = () => number;
