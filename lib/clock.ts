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

/** The clocks {@link wallClock} reads: tests pass scripted ones. */
export interface ClockSources {
  /** Monotonic milliseconds since `origin` (`performance.now()`). */
  now(): number;
  /** The system clock in whole milliseconds (`Date.now()`). */
  dateNow(): number;
  /** The wall time at which `now()` was 0 (`performance.timeOrigin`). */
  origin: number;
}

/**
 * A wall clock of sub-millisecond resolution over `sources` (see
 * {@link wallClockMs}). A reading that disagrees with `Date.now()` by more
 * than {@link STEP_MS} is read again before the anchor moves: a process
 * preempted between its two reads on a loaded machine sees the same
 * disagreement as a stepped clock, and re-anchoring on it would cost every
 * later reading up to half a millisecond (`Date.now()` truncates), for good.
 */
export function wallClock({ now, dateNow, origin }: ClockSources): () => number {
  let anchor = origin;
  const agrees = (fine: number, coarse: number) => fine >= coarse - STEP_MS && fine <= coarse + 1 + STEP_MS;
  return () => {
    const fine = anchor + now();
    const coarse = dateNow();
    // Date.now() truncates, so the true time is in [coarse, coarse + 1).
    if (agrees(fine, coarse)) return fine;
    const again = anchor + now();
    const coarseAgain = dateNow();
    if (agrees(again, coarseAgain)) return again;
    anchor = coarseAgain + 0.5 - now();
    return coarseAgain + 0.5;
  };
}

/**
 * Milliseconds since the Unix epoch (UTC) as the system clock tells them,
 * with a fractional part (microseconds). Never sets or slews anything.
 */
export const wallClockMs: () => number = wallClock({
  now: () => performance.now(),
  dateNow: () => Date.now(),
  origin: performance.timeOrigin,
});

/** A source of the current time in milliseconds since the epoch; tests pass their own. */
export type Clock = () => number;
