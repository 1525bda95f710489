/**
 * The caching policy and store of the proxy (ej07): what may be stored, how
 * long it stays fresh and how old it is (RFC 9111 §3, §4.2), which request
 * revalidates it (§4.3), and a store on disk that keeps entries across
 * restarts, evicts the least recently used ones within a byte budget, and
 * never serves an entry it cannot verify.
 *
 * ```ts
 * const store = await CacheStore.open({ dir: '.ej07-cache', maxBytes: 64 << 20 });
 * const entry = store.lookup(key, requestHeaders);
 * if (entry && isFresh(entry, Date.now())) serve(await store.readBody(entry));
 * ```
 *
 * One file per entry, `<sha256 of the key>.entry`: a magic line, one line of
 * JSON metadata (URL, status, headers, times, the body's length and
 * SHA-256), then the body. Written to a temporary name and renamed, so a
 * crash leaves the old entry or the new one, never half of one. The file's
 * modification time is the entry's last use, so that the LRU order survives a
 * restart without rewriting entries on every hit.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HeaderList, listTokens, withoutHopByHop } from '../lib/http.ts';

/** The first line of every entry file; another version of the format is ignored. */
export const ENTRY_MAGIC = 'EJ07-CACHE-ENTRY 1\n';
/** Default byte budget of the whole cache. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** Default size limit of one stored body. */
export const DEFAULT_MAX_OBJECT_BYTES = 8 * 1024 * 1024;
/** Heuristic freshness (RFC 9111 §4.2.2) never exceeds a day. */
export const MAX_HEURISTIC_MS = 24 * 3600 * 1000;

/**
 * Fields that set a cookie. A response carrying one is never stored (as
 * nginx's proxy_cache does unless told otherwise): it was meant for one
 * user, and a HIT would hand it to the next.
 */
export const COOKIE_FIELDS: readonly string[] = ['set-cookie', 'set-cookie2'];

/** Whether `headers` hold a field of {@link COOKIE_FIELDS}. */
export function setsCookie(headers: HeaderList | Iterable<readonly [string, string]>): boolean {
  for (const [name] of headers) if (COOKIE_FIELDS.includes(name.toLowerCase())) return true;
  return false;
}

/** Cache-Control directives, lower-cased names; a directive without a value maps to `''`. */
export type Directives = Map<string, string>;

/** Parses a Cache-Control field (`max-age=60, no-cache="Set-Cookie", private`). */
export function parseCacheControl(value: string | undefined): Directives {
  const out: Directives = new Map();
  if (value === undefined) return out;
  // Split on commas outside quoted strings.
  for (const item of value.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? []) {
    const text = item.trim();
    if (text === '') continue;
    const eq = text.indexOf('=');
    const name = (eq < 0 ? text : text.slice(0, eq)).trim().toLowerCase();
    let arg = eq < 0 ? '' : text.slice(eq + 1).trim();
    if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) arg = arg.slice(1, -1);
    if (!out.has(name)) out.set(name, arg);
  }
  return out;
}

/** A delta-seconds value (`max-age=60`), or undefined when absent or not plain digits. */
export function deltaSeconds(directives: Directives, name: string): number | undefined {
  const value = directives.get(name);
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Math.min(Number(value), 2 ** 31);
}

/** An HTTP date in milliseconds, or undefined when absent or invalid. */
export function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Why a response may or may not be stored. */
export type Storability = { ok: true } | { ok: false; reason: string };

/**
 * Whether a shared cache may store this response to this request (RFC 9111
 * §3): only GET and 200, no `no-store` on either side, not `private`, not a
 * request with Authorization (unless the response says `public` or
 * `s-maxage`), not `Vary: *`, not a response that sets a cookie, and with
 * some way to be fresh or revalidated (an explicit lifetime, a validator, or
 * Last-Modified for a heuristic).
 */
export function storable(method: string, requestHeaders: HeaderList, status: number, responseHeaders: HeaderList): Storability {
  const no = (reason: string): Storability => ({ ok: false, reason });
  if (method !== 'GET') return no(`method ${method}`);
  if (status !== 200) return no(`status ${status}`);
  const req = parseCacheControl(requestHeaders.get('cache-control'));
  const res = parseCacheControl(responseHeaders.get('cache-control'));
  if (req.has('no-store')) return no('the request says no-store');
  if (res.has('no-store')) return no('the response says no-store');
  if (res.has('private')) return no('the response is private');
  if (requestHeaders.has('authorization') && !res.has('public') && !res.has('s-maxage') && !res.has('must-revalidate')) {
    return no('the request carries Authorization');
  }
  if (listTokens(responseHeaders.get('vary')).includes('*')) return no('Vary: *');
  if (setsCookie(responseHeaders)) return no('the response sets a cookie (Set-Cookie)');
  const explicit = deltaSeconds(res, 's-maxage') !== undefined || deltaSeconds(res, 'max-age') !== undefined || responseHeaders.has('expires');
  const validator = responseHeaders.has('etag') || responseHeaders.has('last-modified');
  if (!explicit && !validator && !res.has('public')) return no('no lifetime and no validator');
  return { ok: true };
}

/** The times and headers freshness is computed from. */
export interface Timing {
  /** Response headers as stored. */
  headers: HeaderList;
  /** When the request that got this response was sent (ms). */
  requestTime: number;
  /** When its response head arrived (ms). */
  responseTime: number;
}

/**
 * The freshness lifetime in ms (RFC 9111 §4.2.1), for a shared cache:
 * s-maxage, else max-age, else Expires − Date, else a heuristic of 10 % of
 * Date − Last-Modified (at most a day), else 0. An invalid Expires means
 * already expired.
 */
export function freshnessLifetime(headers: HeaderList, responseTime: number): number {
  const cc = parseCacheControl(headers.get('cache-control'));
  const sMaxAge = deltaSeconds(cc, 's-maxage');
  if (sMaxAge !== undefined) return sMaxAge * 1000;
  const maxAge = deltaSeconds(cc, 'max-age');
  if (maxAge !== undefined) return maxAge * 1000;
  const date = parseHttpDate(headers.get('date')) ?? responseTime;
  if (headers.has('expires')) {
    const expires = parseHttpDate(headers.get('expires'));
    return expires === undefined ? 0 : Math.max(0, expires - date);
  }
  const modified = parseHttpDate(headers.get('last-modified'));
  if (modified !== undefined && modified < date) return Math.min(MAX_HEURISTIC_MS, (date - modified) / 10);
  return 0;
}

/**
 * The current age in ms (RFC 9111 §4.2.3): the larger of the apparent age
 * (response time − Date) and the Age header plus the response delay, plus
 * the time resident in this cache.
 */
export function currentAge({ headers, requestTime, responseTime }: Timing, now: number): number {
  const date = parseHttpDate(headers.get('date')) ?? responseTime;
  const ageHeader = headers.get('age');
  const ageValue = ageHeader !== undefined && /^\d+$/.test(ageHeader.trim()) ? Number(ageHeader.trim()) * 1000 : 0;
  const apparentAge = Math.max(0, responseTime - date);
  const responseDelay = Math.max(0, responseTime - requestTime);
  const correctedInitialAge = Math.max(apparentAge, ageValue + responseDelay);
  return correctedInitialAge + Math.max(0, now - responseTime);
}

/** What the cache does with a stored entry for a request. */
export type Decision = 'fresh' | 'revalidate';

/**
 * Whether a stored response may be served as it is or must be revalidated
 * first: `no-cache` in the response (or `must-revalidate`/`proxy-revalidate`
 * once stale), `no-cache`, `max-age=0` or `Pragma: no-cache` in the request,
 * or simply an age past the lifetime. A request's `max-age=N` also limits the
 * age it accepts.
 */
export function decide(entry: Timing, requestHeaders: HeaderList, now: number): Decision {
  const res = parseCacheControl(entry.headers.get('cache-control'));
  if (res.has('no-cache')) return 'revalidate';
  const req = parseCacheControl(requestHeaders.get('cache-control'));
  if (req.has('no-cache') || (!requestHeaders.has('cache-control') && listTokens(requestHeaders.get('pragma')).includes('no-cache'))) return 'revalidate';
  const age = currentAge(entry, now);
  const reqMaxAge = deltaSeconds(req, 'max-age');
  if (reqMaxAge !== undefined && age >= reqMaxAge * 1000) return 'revalidate';
  return age < freshnessLifetime(entry.headers, entry.responseTime) ? 'fresh' : 'revalidate';
}

/**
 * The headers of a stored response after a 304 (RFC 9111 §4.3.4): the
 * 304's fields replace the stored ones of the same name, except the
 * framing fields, which describe the stored body.
 */
export function mergeNotModified(stored: HeaderList, notModified: HeaderList): HeaderList {
  const keep = new Set(['content-length', 'transfer-encoding', 'content-encoding', 'content-range']);
  const replaced = new Set([...notModified].map(([n]) => n.toLowerCase()).filter((n) => !keep.has(n)));
  const out = new HeaderList([...stored].filter(([n]) => !replaced.has(n.toLowerCase())));
  for (const [name, value] of notModified) if (!keep.has(name.toLowerCase())) out.add(name, value);
  return out;
}

/** The cache key of an absolute http URL: scheme and host lower-cased, default port dropped, fragment dropped. */
export function cacheKey(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search}`;
}

/** The metadata line of an entry file. */
export interface EntryMeta {
  key: string;
  status: number;
  reason: string;
  headers: [string, string][];
  requestTime: number;
  responseTime: number;
  /** The request's values of the fields the response's Vary names. */
  vary: Record<string, string>;
  bodyLength: number;
  bodySha256: string;
}

/** An entry as the store keeps it in memory (the body stays on disk). */
export interface Entry extends Timing {
  key: string;
  status: number;
  reason: string;
  vary: Record<string, string>;
  bodyLength: number;
  bodySha256: string;
  file: string;
  /** Bytes the entry's file takes (what counts against the budget). */
  size: number;
}

/** The store's options. */
export interface StoreOptions {
  dir: string;
  maxBytes?: number;
  maxObjectBytes?: number;
  /** Told about entries ignored or evicted. */
  log?: (message: string) => void;
}

/** Why an entry file was not loaded; thrown by {@link decodeEntry}. */
export class CorruptEntryError extends SyntaxError {
  override name = 'CorruptEntryError';
}

/** Encodes an entry file: magic line, JSON line, body. */
export function encodeEntry(meta: EntryMeta, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(ENTRY_MAGIC), Buffer.from(`${JSON.stringify(meta)}\n`), body]);
}

/**
 * Decodes and verifies an entry file; throws {@link CorruptEntryError} for a
 * wrong magic, unreadable metadata, a body of the wrong length or hash.
 */
export function decodeEntry(bytes: Buffer): { meta: EntryMeta; body: Buffer } {
  if (!bytes.subarray(0, ENTRY_MAGIC.length).equals(Buffer.from(ENTRY_MAGIC))) throw new CorruptEntryError('Cannot read cache entry: not an ej07 entry (wrong first line)');
  const nl = bytes.indexOf(0x0a, ENTRY_MAGIC.length);
  if (nl < 0) throw new CorruptEntryError('Cannot read cache entry: the metadata line is not complete');
  let meta: EntryMeta;
  try {
    meta = JSON.parse(bytes.subarray(ENTRY_MAGIC.length, nl).toString('utf8')) as EntryMeta;
  } catch {
    throw new CorruptEntryError('Cannot read cache entry: the metadata is not JSON');
  }
  const valid =
    typeof meta === 'object' && meta !== null && typeof meta.key === 'string' && Number.isInteger(meta.status) && typeof meta.reason === 'string' &&
    Array.isArray(meta.headers) && meta.headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string') &&
    Number.isFinite(meta.requestTime) && Number.isFinite(meta.responseTime) && typeof meta.vary === 'object' && meta.vary !== null &&
    Number.isInteger(meta.bodyLength) && typeof meta.bodySha256 === 'string';
  if (!valid) throw new CorruptEntryError('Cannot read cache entry: the metadata lacks a field');
  const body = bytes.subarray(nl + 1);
  if (body.length !== meta.bodyLength) throw new CorruptEntryError(`Cannot read cache entry: expected a ${meta.bodyLength}-byte body, found ${body.length}`);
  if (sha256(body) !== meta.bodySha256) throw new CorruptEntryError('Cannot read cache entry: the body does not match its SHA-256');
  return { meta, body };
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The file name of a key's entry. */
export function entryFileName(key: string): string {
  return `${sha256(Buffer.from(key))}.entry`;
}

/**
 * The cache on disk with its index in memory. Each entry carries the tick of
 * its last use — taken when a response is stored, or when a stored one is
 * served — and storing past the budget evicts the entries with the oldest
 * ticks. The tick of a store is taken when the response arrives, not when
 * its file is written: writes end in any order, and an order by their end
 * once evicted the object just used (seen under Deno).
 */
export class CacheStore {
  readonly dir: string;
  readonly maxBytes: number;
  readonly maxObjectBytes: number;
  readonly #log: (message: string) => void;
  readonly #entries = new Map<string, Entry>();
  /** Tick of each entry's last use; a higher tick is a more recent use. */
  readonly #used = new Map<string, number>();
  #clock = 0;
  /** Writes under way, by key: a lookup waits for them (a response is stored before its client can ask again). */
  readonly #writing = new Map<string, Promise<unknown>>();
  #bytes = 0;

  private constructor({ dir, maxBytes = DEFAULT_CACHE_BYTES, maxObjectBytes = DEFAULT_MAX_OBJECT_BYTES, log = () => {} }: StoreOptions) {
    this.dir = dir;
    this.maxBytes = maxBytes;
    this.maxObjectBytes = Math.min(maxObjectBytes, maxBytes);
    this.#log = log;
  }

  /**
   * Opens (creating) the folder and loads every entry that verifies, oldest
   * use first; corrupt files and leftover temporary files are deleted.
   */
  static async open(options: StoreOptions): Promise<CacheStore> {
    const store = new CacheStore(options);
    await mkdir(store.dir, { recursive: true });
    const found: { entry: Entry; used: number }[] = [];
    for (const name of await readdir(store.dir)) {
      const file = path.join(store.dir, name);
      if (name.endsWith('.tmp')) {
        await rm(file, { force: true });
        continue;
      }
      if (!name.endsWith('.entry')) continue;
      try {
        const bytes = await readFile(file);
        const { meta } = decodeEntry(bytes);
        if (entryFileName(meta.key) !== name) throw new CorruptEntryError('Cannot read cache entry: its name does not match its key');
        // Written by a version that stored cookies: serving it would replay one user's cookie to others.
        if (setsCookie(meta.headers)) throw new CorruptEntryError('Cannot use cache entry: it stores a Set-Cookie field');
        found.push({ entry: toEntry(meta, file, bytes.length), used: (await stat(file)).mtimeMs });
      } catch (error) {
        store.#log(`ignoring cache file ${name}: ${error instanceof Error ? error.message : String(error)}`);
        await rm(file, { force: true });
      }
    }
    found.sort((a, b) => a.used - b.used);
    for (const { entry } of found) {
      store.#entries.set(entry.key, entry);
      store.#used.set(entry.key, ++store.#clock);
      store.#bytes += entry.size;
    }
    await store.#evict();
    return store;
  }

  /** Bytes the entries take on disk. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Keys from least to most recently used. */
  keys(): string[] {
    return [...this.#entries.keys()].sort((a, b) => this.#usedAt(a) - this.#usedAt(b));
  }

  /**
   * The entry for `key` whose Vary fields match the request's, if any (not
   * counted as a use). The request is compared as it would be forwarded
   * (see {@link varyValues}): a field its Connection names counts as absent.
   */
  lookup(key: string, requestHeaders: HeaderList): Entry | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    const forwarded = withoutHopByHop(requestHeaders);
    for (const [name, value] of Object.entries(entry.vary)) if ((forwarded.get(name) ?? '') !== value) return undefined;
    return entry;
  }

  /**
   * Reads and verifies an entry's body, and counts the use (LRU, and the
   * file's mtime for the next start). A corrupt file is dropped and
   * undefined returned: the caller fetches from the origin instead.
   */
  async readBody(entry: Entry): Promise<Buffer | undefined> {
    try {
      const { meta, body } = decodeEntry(await readFile(entry.file));
      if (meta.key !== entry.key || meta.bodySha256 !== entry.bodySha256) throw new CorruptEntryError('Cannot read cache entry: it changed on disk');
      this.#touch(entry);
      const now = new Date();
      await utimes(entry.file, now, now).catch(() => {});
      return body;
    } catch (error) {
      this.#log(`dropping cache entry for ${entry.key}: ${error instanceof Error ? error.message : String(error)}`);
      await this.delete(entry.key);
      return undefined;
    }
  }

  /**
   * Stores a response (atomically: temporary file, then rename) and evicts
   * least recently used entries until the budget holds. Returns false (and
   * stores nothing) for a body over the per-object limit, or for headers
   * that set a cookie.
   */
  put(meta: Omit<EntryMeta, 'bodyLength' | 'bodySha256'>, body: Uint8Array): Promise<boolean> {
    // Registered before the first await, so that a lookup made right after sees it.
    const before = this.#writing.get(meta.key) ?? Promise.resolve();
    const usedAt = ++this.#clock;
    const job = before.then(() => this.#put(meta, body, usedAt));
    const settled = job.catch(() => false);
    this.#writing.set(meta.key, settled);
    void settled.then(() => {
      if (this.#writing.get(meta.key) === settled) this.#writing.delete(meta.key);
    });
    return job;
  }

  /** Resolves once every write begun for `key` has ended (stored or failed). */
  async settled(key: string): Promise<void> {
    await this.#writing.get(key);
  }

  /** Resolves once every write begun so far, for any key, has ended (before the folder is removed, say). */
  async settledAll(): Promise<void> {
    await Promise.all(this.#writing.values());
  }

  async #put(meta: Omit<EntryMeta, 'bodyLength' | 'bodySha256'>, body: Uint8Array, usedAt: number): Promise<boolean> {
    if (body.length > this.maxObjectBytes || setsCookie(meta.headers)) return false;
    const full: EntryMeta = { ...meta, bodyLength: body.length, bodySha256: sha256(body) };
    const bytes = encodeEntry(full, body);
    if (bytes.length > this.maxBytes) return false;
    const file = path.join(this.dir, entryFileName(meta.key));
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    const old = this.#entries.get(meta.key);
    if (old) {
      this.#entries.delete(meta.key);
      this.#bytes -= old.size;
    }
    const entry = toEntry(full, file, bytes.length);
    this.#entries.set(entry.key, entry);
    this.#used.set(entry.key, Math.max(usedAt, this.#used.get(entry.key) ?? 0));
    this.#bytes += entry.size;
    await this.#evict();
    return true;
  }

  /**
   * Replaces an entry's headers and times after a 304, keeping its body
   * (`body` when the caller has it already read, else read again). A cookie
   * the 304 set was for the client that revalidated: it is not kept. `vary`
   * replaces the stored Vary values (the 304 may carry a new Vary). With
   * `body` given, the write is registered at once, so that a lookup made
   * right after waits for it ({@link settled}).
   */
  async refresh(entry: Entry, headers: HeaderList, requestTime: number, responseTime: number, { body, vary = entry.vary }: { body?: Buffer; vary?: Record<string, string> } = {}): Promise<Entry | undefined> {
    const bytes = body ?? (await this.readBody(entry));
    if (!bytes) return undefined;
    const kept = [...headers].filter(([name]) => !COOKIE_FIELDS.includes(name.toLowerCase()));
    const meta = { key: entry.key, status: entry.status, reason: entry.reason, headers: kept, requestTime, responseTime, vary };
    await this.put(meta, bytes);
    return this.#entries.get(entry.key);
  }

  /** Removes an entry and its file. */
  async delete(key: string): Promise<void> {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#used.delete(key);
    this.#bytes -= entry.size;
    await rm(entry.file, { force: true });
  }

  #touch(entry: Entry): void {
    if (this.#entries.get(entry.key) !== entry) return;
    this.#used.set(entry.key, ++this.#clock);
  }

  #usedAt(key: string): number {
    return this.#used.get(key) ?? 0;
  }

  async #evict(): Promise<void> {
    while (this.#bytes > this.maxBytes) {
      let oldest: Entry | undefined;
      for (const entry of this.#entries.values()) if (!oldest || this.#usedAt(entry.key) < this.#usedAt(oldest.key)) oldest = entry;
      if (!oldest) break;
      this.#log(`evicting ${oldest.key} (${oldest.size} bytes, least recently used)`);
      await this.delete(oldest.key);
    }
  }
}

function toEntry(meta: EntryMeta, file: string, size: number): Entry {
  return {
    key: meta.key,
    status: meta.status,
    reason: meta.reason,
    headers: new HeaderList(meta.headers),
    requestTime: meta.requestTime,
    responseTime: meta.responseTime,
    vary: meta.vary,
    bodyLength: meta.bodyLength,
    bodySha256: meta.bodySha256,
    file,
    size,
  };
}

/**
 * The request's values of the fields a response's Vary names, lower-cased
 * names, taken from the request as it was forwarded: without its hop-by-hop
 * fields and those its Connection names. The origin chose its variant from
 * what it received, so a field the proxy removed is stored as absent;
 * keying on the client's own value would let a client name a field in
 * Connection and file the variant for "absent" under a value of its choice,
 * served to every other client that sends that value.
 */
export function varyValues(responseHeaders: HeaderList, requestHeaders: HeaderList): Record<string, string> {
  const forwarded = withoutHopByHop(requestHeaders);
  const out: Record<string, string> = {};
  for (const name of listTokens(responseHeaders.get('vary'))) out[name] = forwarded.get(name) ?? '';
  return out;
}

/** Writes `data` to `file` atomically (temporary name, then rename); exported for tests that plant files. */
export async function writeAtomic(file: string, data: Uint8Array): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}
