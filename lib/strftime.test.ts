import t from 'tap';
import { execFileSync } from 'node:child_process';
import { strftime, type ZonedTime } from './strftime.ts';
import { resolveZone } from './timezone.ts';

const at = (ms: number, zoneName: string): ZonedTime => {
  const zone = resolveZone(zoneName);
  if (!zone) throw new Error(`no zone ${zoneName}`);
  return { ms, offsetSeconds: zone.offsetSeconds(ms), zone: zone.abbreviation(ms) };
};

/** A tiny seeded generator, so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

t.test('strftime() formats the C locale\'s fixed examples', async (t) => {
  const epoch = at(0, 'UTC');
  t.equal(strftime('%c', epoch), 'Thu Jan  1 00:00:00 1970');
  t.equal(strftime('%Y-%m-%d %H:%M:%S %Z', epoch), '1970-01-01 00:00:00 UTC');
  t.equal(strftime('%x %X %D %T %R %r %F', at(Date.UTC(2026, 10, 24, 20, 5, 9), 'UTC')), '11/24/26 20:05:09 11/24/26 20:05:09 20:05 08:05:09 PM 2026-11-24');
  t.equal(strftime('%H:%M %z %:z %Z', at(Date.UTC(2026, 10, 24, 20, 5), 'America/Argentina/Buenos_Aires')), '17:05 -0300 -03:00 -03');
  t.equal(strftime('%f', { ms: 1234.5678, offsetSeconds: 0, zone: 'UTC' }), '234567', '%f is microseconds');
  t.equal(strftime('%-d/%-m %_H|%e|%k|%l', at(Date.UTC(2026, 0, 5, 7), 'UTC')), '5/1  7| 5| 7| 7');
  t.equal(strftime('100%% %n%t', epoch), '100% \n\t');
  t.equal(strftime('%s', at(1_700_000_000_123, 'Asia/Tokyo')), '1700000000');
  t.equal(strftime('', epoch), '');
});

t.test('strftime() refuses an unknown directive and a lone %', async (t) => {
  t.throws(() => strftime('%Y %Q', at(0, 'UTC')), { name: 'SyntaxError', message: "Cannot format '%Y %Q': unknown directive '%Q' at position 3" });
  t.throws(() => strftime('%H:%', at(0, 'UTC')), { name: 'SyntaxError', message: /lone '%' ends the format at position 3/ });
  t.throws(() => strftime('%-c', at(0, 'UTC')), { name: 'SyntaxError', message: /unknown directive '%-c'/ });
});

t.test('strftime() agrees with GNU date for random instants and zones (seeded)', async (t) => {
  const zones = ['UTC', 'America/Argentina/Buenos_Aires', 'Europe/Madrid', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Sydney', 'Asia/Tokyo'];
  // %Z is compared only where ICU knows the English abbreviation the tz database uses.
  const withZ = new Set(['UTC', 'America/Argentina/Buenos_Aires', 'Europe/Madrid', 'America/New_York', 'Asia/Kolkata', 'Australia/Sydney', 'Asia/Tokyo']);
  const format = '%a %A %b %B %C %d %e %G %g %H %I %j %k %l %m %M %p %S %u %U %V %w %W %y %Y %z %:z %c %x %X %s';
  const random = prng(867);
  let mismatches = 0;
  for (let i = 0; i < 40; i++) {
    const ms = Math.floor(random() * 4_102_444_800) * 1000; // 1970 to 2100
    const zone = zones[i % zones.length]!;
    const full = withZ.has(zone) ? `${format} %Z` : format;
    const expected = execFileSync('date', ['-d', `@${ms / 1000}`, `+${full}`], { env: { ...process.env, TZ: zone, LC_ALL: 'C' }, encoding: 'utf8' }).replace(/\n$/, '');
    const got = strftime(full, at(ms, zone));
    if (got !== expected) {
      mismatches++;
      t.equal(got, expected, `${zone} at ${new Date(ms).toISOString()}`);
    }
  }
  t.equal(mismatches, 0, '40 instants in 8 zones format as GNU date formats them');
});

t.test('strftime() numbers ISO weeks across year ends as GNU date does', async (t) => {
  let mismatches = 0;
  for (const year of [2004, 2005, 2008, 2009, 2010, 2020, 2021, 2026, 2027]) {
    for (const [month, day] of [[0, 1], [0, 2], [0, 3], [0, 4], [11, 28], [11, 29], [11, 30], [11, 31]] as const) {
      const ms = Date.UTC(year, month, day, 12);
      const expected = execFileSync('date', ['-u', '-d', `@${ms / 1000}`, '+%G-%V %g %U %W %j'], { encoding: 'utf8' }).trim();
      const got = strftime('%G-%V %g %U %W %j', at(ms, 'UTC'));
      if (got !== expected) {
        mismatches++;
        t.equal(got, expected, new Date(ms).toISOString());
      }
    }
  }
  t.equal(mismatches, 0, 'week numbers of 72 days around new year match');
});
