import t from 'tap';
import { median, percentile, summarize } from './stats.ts';

t.test('summarize() gives min, median, p95, max, average and mean deviation', async (t) => {
  const s = summarize([4, 1, 3, 2], 5);
  t.same(s, { sent: 5, received: 4, lost: 1, avg: 2.5, min: 1, median: 2.5, p95: 4, max: 4, mdev: 1 });
});

t.test('summarize() with no replies leaves every delay undefined (RFC 2681)', async (t) => {
  t.same(summarize([], 3), { sent: 3, received: 0, lost: 3 });
});

t.test('percentile() is nearest-rank; median() of an odd count is the middle value', async (t) => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  t.equal(percentile(values, 95), 95);
  t.equal(percentile(values, 100), 100);
  t.equal(percentile([7], 95), 7);
  t.equal(percentile([], 95), undefined);
  t.equal(median([1, 2, 9]), 2);
});
