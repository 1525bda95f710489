import t from 'tap';
import { wallClockMs } from './clock.ts';

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
