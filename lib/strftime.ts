/**
 * C's `strftime` for an instant in a given zone, in the POSIX ("C") locale:
 * the codes Python's `time.strftime` and GNU `date +FORMAT` share, plus
 * Python's `%f` (microseconds) and GNU's `%:z` and `-` flag (`%-d`: no padding).
 *
 * ```ts
 * strftime('%Y-%m-%d %H:%M:%S %Z', { ms: Date.now(), offsetSeconds: -10800, zone: '-03' });
 * strftime('%c', { ms: 0, offsetSeconds: 0, zone: 'UTC' });   // 'Thu Jan  1 00:00:00 1970'
 * ```
 *
 * An unknown code is an error naming it, not text copied through, so a typo
 * in `--format` is caught rather than printed.
 *
 * @module
 */
import { formatOffset } from './timezone.ts';

/** The instant to format and the zone it is seen from. */
export interface ZonedTime {
  /** Milliseconds since the Unix epoch, UTC (a fraction gives `%f` its microseconds). */
  ms: number;
  /** Seconds east of UTC. */
  offsetSeconds: number;
  /** What `%Z` prints: an abbreviation such as `CET` or `-03`. */
  zone: string;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** Composite codes, as the C locale defines them. */
const COMPOSITE: Record<string, string> = {
  c: '%a %b %e %H:%M:%S %Y',
  D: '%m/%d/%y',
  F: '%Y-%m-%d',
  r: '%I:%M:%S %p',
  R: '%H:%M',
  T: '%H:%M:%S',
  x: '%m/%d/%y',
  X: '%H:%M:%S',
  h: '%b',
};

interface Fields {
  year: number;
  month: number; // 0-11
  day: number; // 1-31
  weekday: number; // 0 = Sunday
  yearDay: number; // 0-365
  hour: number;
  minute: number;
  second: number;
  micro: number;
  t: ZonedTime;
}

function fields(t: ZonedTime): Fields {
  const local = new Date(Math.floor(t.ms) + t.offsetSeconds * 1000);
  const year = local.getUTCFullYear();
  const startOfYear = new Date(0);
  startOfYear.setUTCFullYear(year, 0, 1);
  return {
    year,
    month: local.getUTCMonth(),
    day: local.getUTCDate(),
    weekday: local.getUTCDay(),
    yearDay: Math.floor((local.getTime() - startOfYear.getTime()) / 86_400_000),
    hour: local.getUTCHours(),
    minute: local.getUTCMinutes(),
    second: local.getUTCSeconds(),
    micro: Math.floor((((t.ms % 1000) + 1000) % 1000) * 1000),
    t,
  };
}

/** ISO 8601 week-based year and week number (`%G`, `%V`). */
function isoWeek(f: Fields): [year: number, week: number] {
  const isoWeekday = (f.weekday + 6) % 7; // Monday = 0
  // The Thursday of this week decides the year.
  const thursday = f.yearDay - isoWeekday + 3;
  const daysIn = (y: number) => (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 366 : 365);
  if (thursday < 0) {
    const previous = f.year - 1;
    return [previous, Math.floor((thursday + daysIn(previous)) / 7) + 1];
  }
  if (thursday >= daysIn(f.year)) return [f.year + 1, 1];
  return [f.year, Math.floor(thursday / 7) + 1];
}

const pad = (value: number, width: number, fill = '0'): string => {
  const text = String(Math.abs(value)).padStart(width, fill);
  return value < 0 ? `-${text}` : text;
};

/** Each code as [value, natural width, fill]; text codes have width 0. */
function directive(code: string, f: Fields): [number | string, number, string] | undefined {
  switch (code) {
    case 'a': return [DAYS[f.weekday]!.slice(0, 3), 0, ''];
    case 'A': return [DAYS[f.weekday]!, 0, ''];
    case 'b': return [MONTHS[f.month]!.slice(0, 3), 0, ''];
    case 'B': return [MONTHS[f.month]!, 0, ''];
    case 'C': return [Math.floor(f.year / 100), 2, '0'];
    case 'd': return [f.day, 2, '0'];
    case 'e': return [f.day, 2, ' '];
    case 'f': return [f.micro, 6, '0'];
    case 'G': return [isoWeek(f)[0], 4, '0'];
    case 'g': return [isoWeek(f)[0] % 100, 2, '0'];
    case 'H': return [f.hour, 2, '0'];
    case 'I': return [f.hour % 12 || 12, 2, '0'];
    case 'j': return [f.yearDay + 1, 3, '0'];
    case 'k': return [f.hour, 2, ' '];
    case 'l': return [f.hour % 12 || 12, 2, ' '];
    case 'm': return [f.month + 1, 2, '0'];
    case 'M': return [f.minute, 2, '0'];
    case 'n': return ['\n', 0, ''];
    case 'p': return [f.hour < 12 ? 'AM' : 'PM', 0, ''];
    case 's': return [Math.floor(f.t.ms / 1000), 0, ''];
    case 'S': return [f.second, 2, '0'];
    case 't': return ['\t', 0, ''];
    case 'u': return [f.weekday || 7, 1, '0'];
    case 'U': return [Math.floor((f.yearDay + 7 - f.weekday) / 7), 2, '0'];
    case 'V': return [isoWeek(f)[1], 2, '0'];
    case 'w': return [f.weekday, 1, '0'];
    case 'W': return [Math.floor((f.yearDay + 7 - ((f.weekday + 6) % 7)) / 7), 2, '0'];
    case 'y': return [((f.year % 100) + 100) % 100, 2, '0'];
    case 'Y': return [f.year, 4, '0'];
    case 'z': return [formatOffset(f.t.offsetSeconds, ''), 0, ''];
    case ':z': return [formatOffset(f.t.offsetSeconds), 0, ''];
    case 'Z': return [f.t.zone, 0, ''];
    case '%': return ['%', 0, ''];
    default: return undefined;
  }
}

const DIRECTIVE = /%([-_0]?)(:z|.?)/gs;

/**
 * Formats `t` by `format`. Throws a SyntaxError naming the position of an
 * unknown code or of a `%` that ends the format.
 */
export function strftime(format: string, t: ZonedTime): string {
  const f = fields(t);
  return format.replace(DIRECTIVE, (whole, flag: string, code: string, at: number) => {
    if (code === '') {
      throw new SyntaxError(`Cannot format '${format}': a lone '%' ends the format at position ${at}`);
    }
    const composite = COMPOSITE[code];
    if (composite !== undefined && flag === '') return strftime(composite, t);
    const found = directive(code, f);
    if (found === undefined || (composite !== undefined)) {
      throw new SyntaxError(`Cannot format '${format}': unknown directive '${whole}' at position ${at}`);
    }
    const [value, width, fill] = found;
    if (typeof value === 'string') return value;
    if (flag === '-') return String(value);
    if (flag === '_') return pad(value, width, ' ');
    if (flag === '0') return pad(value, width, '0');
    return pad(value, width, fill || '0');
  });
}
