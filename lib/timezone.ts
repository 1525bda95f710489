/**
 * Time zones by name: IANA names (`America/Argentina/Buenos_Aires`) through
 * the runtime's ICU data, which Node and Deno both carry, and fixed offsets
 * (`UTC-03:00`) parsed here. A zone answers two questions about an instant:
 * its offset from UTC, and the abbreviation a clock shows (`-03`, `CET`).
 *
 * ```ts
 * const zone = resolveZone('Europe/Madrid');     // undefined when unknown
 * zone?.offsetSeconds(Date.now());               // 3600 in winter, 7200 in summer
 * ```
 *
 * @module
 */

/** A time zone resolved from its name. */
export interface Zone {
  /** The canonical name: ICU's for IANA zones, `UTC±HH:MM` (or `UTC`) for fixed offsets. */
  readonly name: string;
  /** Seconds east of UTC at the instant `ms` (milliseconds since the epoch). */
  offsetSeconds(ms: number): number;
  /** The abbreviation a clock in the zone shows at `ms`: `CET`, `-03`, `UTC+05:30`. */
  abbreviation(ms: number): string;
}

/** The furthest a fixed offset may be from UTC (ISO 8601 and RFC 9557 use ±18:00). */
export const MAX_OFFSET_SECONDS = 18 * 3600;

const FIXED = /^(?:(?:UTC|GMT)(?:([+-])(\d{1,2})(?::?(\d{2}))?)?|([+-])(\d{2}):?(\d{2})|Z)$/i;

/**
 * Reads a fixed offset: `UTC`, `GMT`, `Z`, `UTC-3`, `UTC-03`, `UTC+05:30`,
 * `UTC+0530`, `+05:30`. Returns seconds east of UTC, or undefined when the
 * text is not an offset (it may still be an IANA name). An offset beyond
 * ±18:00 or with minutes of 60 or more is a RangeError, not "unknown".
 */
export function parseFixedOffset(text: string): number | undefined {
  const match = FIXED.exec(text);
  if (!match) return undefined;
  const sign = match[1] ?? match[4];
  if (sign === undefined) return 0;
  const hours = Number(match[2] ?? match[5]);
  const minutes = Number(match[3] ?? match[6] ?? '0');
  const seconds = (hours * 60 + minutes) * 60;
  if (minutes >= 60 || seconds > MAX_OFFSET_SECONDS) {
    throw new RangeError(`Cannot read time zone offset '${text}': expected at most ±18:00 with minutes below 60`);
  }
  return sign === '-' ? -seconds : seconds;
}

/** Formats seconds east of UTC as `+05:30` (or `+0530` with `separator` ''). */
export function formatOffset(seconds: number, separator = ':'): string {
  const sign = seconds < 0 ? '-' : '+';
  const minutes = Math.floor(Math.abs(seconds) / 60);
  const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
  const mm = String(minutes % 60).padStart(2, '0');
  return `${sign}${hh}${separator}${mm}`;
}

function fixedZone(seconds: number): Zone {
  const name = seconds === 0 ? 'UTC' : `UTC${formatOffset(seconds)}`;
  return { name, offsetSeconds: () => seconds, abbreviation: () => name };
}

const cache = new Map<string, Zone | undefined>();

/**
 * Resolves a zone name, or returns undefined when the runtime knows no such
 * zone. Names are matched as ICU matches them (case-insensitively, links
 * such as `America/Buenos_Aires` included); the name is kept as given, with
 * ICU's capitalisation.
 */
export function resolveZone(text: string): Zone | undefined {
  if (cache.has(text)) return cache.get(text);
  const fixed = parseFixedOffset(text);
  let zone: Zone | undefined;
  if (fixed !== undefined) {
    zone = fixedZone(fixed);
  } else if (/^[A-Za-z][A-Za-z0-9_+/-]{0,63}$/.test(text)) {
    zone = ianaZone(text);
  }
  if (cache.size > 1000) cache.clear();
  cache.set(text, zone);
  return zone;
}

/**
 * ICU gives an English abbreviation (EST, CET, AEDT, IST) only in the locale
 * where it is in use; elsewhere it says "GMT+1". These are asked in turn.
 */
const LABEL_LOCALES = ['en-US', 'en-CA', 'en-GB', 'en-ZA', 'en-AU', 'en-IN', 'ja-JP'];
const GMT_LABEL = /^(?:GMT|UTC)([+-])(\d{1,2})(?::(\d{2}))?$/;

function ianaZone(name: string): Zone | undefined {
  let numeric: Intl.DateTimeFormat;
  let short: Intl.DateTimeFormat[];
  try {
    numeric = new Intl.DateTimeFormat('en-US', {
      timeZone: name,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    short = LABEL_LOCALES.map((locale) => new Intl.DateTimeFormat(locale, { timeZone: name, timeZoneName: 'short' }));
  } catch (error) {
    if (error instanceof RangeError) return undefined;
    throw error;
  }
  const offsetSeconds = (ms: number): number => {
    const whole = Math.floor(ms / 1000) * 1000;
    const parts: Record<string, string> = {};
    for (const { type, value } of numeric.formatToParts(whole)) parts[type] = value;
    let year = Number(parts.year);
    if (parts.era === 'BC' || parts.era === 'B') year = 1 - year;
    const local = Date.UTC(year, Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
    // Date.UTC maps years 0–99 to 1900–1999; set the year again to be exact.
    const fixedLocal = year >= 0 && year < 100 ? new Date(local).setUTCFullYear(year) : local;
    return Math.round((fixedLocal - whole) / 1000);
  };
  const abbreviation = (ms: number): string => {
    let label = name;
    for (const format of short) {
      label = format.formatToParts(ms).find((part) => part.type === 'timeZoneName')?.value ?? name;
      if (!GMT_LABEL.test(label)) return label;
    }
    // ICU says "GMT-3" where the tz database's abbreviation is "-03" (what `date` prints).
    const gmt = GMT_LABEL.exec(label);
    return gmt ? `${gmt[1]}${gmt[2]!.padStart(2, '0')}${gmt[3] ?? ''}` : label;
  };
  // ICU maps some names to older links (America/Argentina/Buenos_Aires to
  // America/Buenos_Aires); keep the caller's name then, and ICU's only to fix case.
  const resolved = numeric.resolvedOptions().timeZone;
  return { name: resolved.toLowerCase() === name.toLowerCase() ? resolved : name, offsetSeconds, abbreviation };
}

/** The machine's time zone, as the runtime reads it (TZ, /etc/localtime). */
export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** The machine's locale, as the runtime reads it (LANG, LC_ALL). */
export function systemLocale(): string {
  return Intl.DateTimeFormat().resolvedOptions().locale;
}
