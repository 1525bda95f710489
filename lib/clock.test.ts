import t from 'tap';
import { wallClock, wallClockMs } from './clock.ts';

t.test('wallClockMs() agrees with Date.now() and has sub-millisecond steps', async (t) => {
  let fractional = 0;
  for (let i = 0; i < 2000; i++) {
    const before = Date.now();
    const fine = wallClockMs();
    const after = Date.now();
    if (fine < before - 1 || fine > after + 2) t.fail(`reading ${fine} outside [${before}, ${after + 1})`);
    if (fine % 1 !== 0) fractional++;
  }
  t.ok(fractional > 1900, `${fractional} of 2000 readings have a fraction of a millisecond`);
});

t.test('wallClockMs() never goes backwards within a run', async (t) => {
  let last = wallClockMs();
  let backwards = 0;
  for (let i = 0; i < 10000; i++) {
    const now = wallClockMs();
    if (now < last) backwards++;
    last = now;
  }
  t.equal(backwards, 0);
});

/** Scripted sources: `now()` and `dateNow()` return their lists in turn (the last one again once used up). */
function scripted(nows: number[], dates: number[], origin = 1_000_000) {
  let i = 0;
  let j = 0;
  return {
    now: () => nows[Math.min(i++, nows.length - 1)]!,
    dateNow: () => dates[Math.min(j++, dates.length - 1)]!,
    origin,
  };
}

t.test('wallClock() keeps its anchor when one pair of reads was split by a preemption, not a step', async (t) => {
  // The anchor is right: at now() = 10.25 the wall time is 1_000_010.25. The first Date.now()
  // comes 25 ms late (the process was preempted between the reads); the second pair agrees.
  const clock = wallClock(scripted([10.25, 35.3, 40.75], [1_000_035, 1_000_035, 1_000_040]));
  t.equal(clock(), 1_000_035.3, 'the reading is taken again, at full resolution');
  t.equal(clock(), 1_000_040.75, 'and the anchor is unchanged: no half-millisecond error from Date.now()');
});

t.test('wallClock() moves its anchor when the system clock was stepped', async (t) => {
  // Date.now() is 1000 ms ahead of the anchor, on both reads: the clock was stepped.
  const clock = wallClock(scripted([10.25, 10.3, 10.35, 20.35], [1_001_010, 1_001_010, 1_001_020]));
  t.equal(clock(), 1_001_010.5, 'the step is taken, to the middle of the millisecond Date.now() says');
  t.equal(clock(), 1_001_020.5, 'and kept');
});
