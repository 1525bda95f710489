import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { HeaderList } from '../lib/http.ts';
import {
  CacheStore,
  cacheKey,
  currentAge,
  decide,
  decodeEntry,
  encodeEntry,
  entryFileName,
  freshnessLifetime,
  mergeNotModified,
  parseCacheControl,
  storable,
  varyValues,
  type EntryMeta,
} from './cache.ts';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const date = (offsetS: number) => new Date(NOW + offsetS * 1000).toUTCString();
const h = (init: Record<string, string>) => new HeaderList(init);

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej07-cache-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function meta(key: string): Omit<EntryMeta, 'bodyLength' | 'bodySha256'> {
  return { key, status: 200, reason: 'OK', headers: [['Cache-Control', 'max-age=60']], requestTime: NOW, responseTime: NOW, vary: {} };
}

t.test('parseCacheControl() reads directives, values and quoted strings', async (t) => {
  const cc = parseCacheControl('Max-Age=60, no-cache="Set-Cookie, X", private , s-maxage="30"');
  t.equal(cc.get('max-age'), '60');
  t.equal(cc.get('no-cache'), 'Set-Cookie, X', 'a comma inside quotes does not split');
  t.equal(cc.get('private'), '');
  t.equal(cc.get('s-maxage'), '30');
  t.equal(parseCacheControl(undefined).size, 0);
});

t.test('freshnessLifetime() follows RFC 9111 §4.2.1 precedence', async (t) => {
  t.equal(freshnessLifetime(h({ 'Cache-Control': 's-maxage=10, max-age=100', Expires: date(1000), Date: date(0) }), NOW), 10_000, 's-maxage wins in a shared cache');
  t.equal(freshnessLifetime(h({ 'Cache-Control': 'max-age=100', Expires: date(1000), Date: date(0) }), NOW), 100_000, 'max-age beats Expires');
  t.equal(freshnessLifetime(h({ Expires: date(300), Date: date(0) }), NOW), 300_000, 'Expires − Date');
  t.equal(freshnessLifetime(h({ Expires: '0', Date: date(0) }), NOW), 0, 'an invalid Expires means already expired');
  t.equal(freshnessLifetime(h({ Expires: date(-50), Date: date(0) }), NOW), 0, 'an Expires in the past: 0');
  t.equal(freshnessLifetime(h({ 'Last-Modified': date(-10_000), Date: date(0) }), NOW), 1_000_000, 'heuristic: 10 % of Date − Last-Modified');
  t.equal(freshnessLifetime(h({ 'Last-Modified': date(-100 * 86400), Date: date(0) }), NOW), 86_400_000, 'heuristic capped at one day');
  t.equal(freshnessLifetime(h({ Date: date(0) }), NOW), 0, 'nothing to go on: 0');
  t.equal(freshnessLifetime(h({ 'Cache-Control': 'max-age=abc' }), NOW), 0, 'a malformed max-age is ignored');
});

t.test('currentAge() follows RFC 9111 §4.2.3', async (t) => {
  // Date 10 s before the response arrived: apparent age 10 s.
  t.equal(currentAge({ headers: h({ Date: date(-10) }), requestTime: NOW, responseTime: NOW }, NOW), 10_000);
  // Age 30 plus a 2 s response delay beats the apparent age.
  t.equal(currentAge({ headers: h({ Date: date(-10), Age: '30' }), requestTime: NOW - 2000, responseTime: NOW }, NOW), 32_000);
  // Resident time adds up.
  t.equal(currentAge({ headers: h({ Date: date(0) }), requestTime: NOW, responseTime: NOW }, NOW + 45_000), 45_000);
  // A Date in the future (clock skew) never makes the age negative.
  t.equal(currentAge({ headers: h({ Date: date(100) }), requestTime: NOW, responseTime: NOW }, NOW), 0);
});

t.test('decide(): fresh, stale, and what forces revalidation', async (t) => {
  const entry = (headers: Record<string, string>) => ({ headers: h({ Date: date(0), ...headers }), requestTime: NOW, responseTime: NOW });
  const none = new HeaderList();
  t.equal(decide(entry({ 'Cache-Control': 'max-age=60' }), none, NOW + 59_000), 'fresh', 'age 59 s < max-age 60');
  t.equal(decide(entry({ 'Cache-Control': 'max-age=60' }), none, NOW + 60_000), 'revalidate', 'age 60 s is stale');
  t.equal(decide(entry({ 'Cache-Control': 'max-age=60', Age: '59' }), none, NOW + 2000), 'revalidate', 'Age from upstream counts');
  t.equal(decide(entry({ 'Cache-Control': 'max-age=0' }), none, NOW), 'revalidate', 'max-age=0: always revalidated');
  t.equal(decide(entry({ 'Cache-Control': 'no-cache, max-age=600' }), none, NOW), 'revalidate', 'no-cache in the response');
  t.equal(decide(entry({ 'Cache-Control': 'max-age=600' }), h({ 'Cache-Control': 'no-cache' }), NOW), 'revalidate', 'no-cache in the request');
  t.equal(decide(entry({ 'Cache-Control': 'max-age=600' }), h({ Pragma: 'no-cache' }), NOW), 'revalidate', 'Pragma: no-cache in the request');
  t.equal(decide(entry({ 'Cache-Control': 'max-age=600' }), h({ 'Cache-Control': 'max-age=5' }), NOW + 10_000), 'revalidate', 'the request accepts at most 5 s');
  t.equal(decide(entry({ Expires: date(120) }), none, NOW + 60_000), 'fresh', 'Expires in 2 minutes, 1 minute old');
});

t.test('storable(): what a shared cache may keep', async (t) => {
  const none = new HeaderList();
  const ok = h({ 'Cache-Control': 'max-age=60' });
  t.same(storable('GET', none, 200, ok), { ok: true });
  t.equal(storable('GET', none, 200, h({ ETag: '"x"' })).ok, true, 'a validator is enough');
  t.equal(storable('POST', none, 200, ok).ok, false, 'POST');
  t.equal(storable('GET', none, 404, ok).ok, false, '404');
  t.equal(storable('GET', none, 200, h({ 'Cache-Control': 'no-store, max-age=60' })).ok, false, 'no-store');
  t.equal(storable('GET', h({ 'Cache-Control': 'no-store' }), 200, ok).ok, false, 'no-store in the request');
  t.equal(storable('GET', none, 200, h({ 'Cache-Control': 'private, max-age=60' })).ok, false, 'private');
  t.equal(storable('GET', h({ Authorization: 'Basic eA==' }), 200, ok).ok, false, 'Authorization without public/s-maxage');
  t.equal(storable('GET', h({ Authorization: 'Basic eA==' }), 200, h({ 'Cache-Control': 's-maxage=60' })).ok, true, 'Authorization with s-maxage');
  t.equal(storable('GET', none, 200, h({ 'Cache-Control': 'max-age=60', Vary: '*' })).ok, false, 'Vary: *');
  t.equal(storable('GET', none, 200, h({ 'Content-Type': 'text/plain' })).ok, false, 'no lifetime and no validator');
});

t.test('mergeNotModified() takes the 304 fields but keeps the framing of the stored body', async (t) => {
  const merged = mergeNotModified(h({ ETag: '"a"', 'Content-Length': '10', 'Cache-Control': 'max-age=0', Date: date(-100) }), h({ ETag: '"a"', 'Cache-Control': 'max-age=60', Date: date(0), 'Content-Length': '0' }));
  t.equal(merged.get('cache-control'), 'max-age=60');
  t.equal(merged.get('date'), date(0));
  t.equal(merged.get('content-length'), '10');
  t.equal(merged.getAll('etag').length, 1);
});

t.test('cacheKey() normalises scheme, host case and the default port', async (t) => {
  t.equal(cacheKey(new URL('HTTP://Example.ORG:80/a?b=1#frag')), 'http://example.org/a?b=1');
  t.equal(cacheKey(new URL('http://127.0.0.1:8080/')), 'http://127.0.0.1:8080/');
});

t.test('an entry file round-trips, and every kind of damage is detected', async (t) => {
  const body = Buffer.from('hello body');
  const full: EntryMeta = { ...meta('http://h/x'), bodyLength: body.length, bodySha256: 'wrong' };
  const { createHash } = await import('node:crypto');
  full.bodySha256 = createHash('sha256').update(body).digest('hex');
  const bytes = encodeEntry(full, body);
  const back = decodeEntry(bytes);
  t.same(back.meta, full);
  t.same(back.body, body);
  t.throws(() => decodeEntry(bytes.subarray(0, bytes.length - 1)), /expected a 10-byte body, found 9/, 'truncated');
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 1] ^= 1;
  t.throws(() => decodeEntry(flipped), /SHA-256/, 'a flipped body bit');
  t.throws(() => decodeEntry(Buffer.from('garbage')), /wrong first line/, 'not an entry');
  t.throws(() => decodeEntry(Buffer.from('EJ07-CACHE-ENTRY 1\n{"key":1}\n')), /lacks a field/, 'metadata without fields');
  t.throws(() => decodeEntry(Buffer.from('EJ07-CACHE-ENTRY 1\n{oops\n')), /not JSON/, 'metadata not JSON');
});

t.test('CacheStore evicts the least recently used entry past its budget', async (t) => {
  const dir = await tempDir(t);
  const evicted: string[] = [];
  const store = await CacheStore.open({ dir, maxBytes: 4000, log: (m) => evicted.push(m) });
  const body = Buffer.alloc(1000, 1);
  for (const k of ['a', 'b', 'c']) t.equal(await store.put(meta(`http://h/${k}`), body), true, `stored ${k}`);
  t.same(store.keys(), ['http://h/a', 'http://h/b', 'http://h/c']);
  // Using a makes b the least recently used.
  const a = store.lookup('http://h/a', new HeaderList());
  t.ok(a && (await store.readBody(a)), 'a is read back');
  await store.put(meta('http://h/d'), body);
  t.same(store.keys(), ['http://h/c', 'http://h/a', 'http://h/d'], 'b was evicted, not a');
  t.ok(store.bytes <= 4000, `the store holds ${store.bytes} bytes, within 4000`);
  t.equal((await readdir(dir)).length, 3, 'its file was deleted too');
  t.match(evicted.join('\n'), /evicting http:\/\/h\/b/);
  t.equal(await store.put(meta('http://h/huge'), Buffer.alloc(5000)), false, 'an object larger than the budget is not stored');
});

t.test('CacheStore orders a store by when the response arrived, not by when its file was written', async (t) => {
  // The proxy stores a response without waiting, and the client's next request
  // can use another entry before the write ends (the order Deno showed).
  const store = await CacheStore.open({ dir: await tempDir(t), maxBytes: 4000 });
  const body = Buffer.alloc(1000, 1);
  await store.put(meta('http://h/a'), body);
  await store.put(meta('http://h/b'), body);
  const writingC = store.put(meta('http://h/c'), body); // c arrives...
  const a = store.lookup('http://h/a', new HeaderList());
  t.ok(a && (await store.readBody(a)), '...then a is used, while c is still being written');
  await writingC;
  t.same(store.keys(), ['http://h/b', 'http://h/c', 'http://h/a'], 'a is the most recently used, c before it');
  await store.put(meta('http://h/d'), body);
  await store.put(meta('http://h/b'), body);
  t.same(store.keys(), ['http://h/a', 'http://h/d', 'http://h/b'], 'b then c were evicted, and a, used after c arrived, stays');
});

t.test('CacheStore respects the per-object limit', async (t) => {
  const store = await CacheStore.open({ dir: await tempDir(t), maxBytes: 100_000, maxObjectBytes: 1000 });
  t.equal(await store.put(meta('http://h/small'), Buffer.alloc(1000)), true);
  t.equal(await store.put(meta('http://h/big'), Buffer.alloc(1001)), false);
  t.equal(store.size, 1);
});

t.test('CacheStore keeps entries, and their LRU order, across a restart', async (t) => {
  const dir = await tempDir(t);
  const first = await CacheStore.open({ dir, maxBytes: 100_000 });
  await first.put(meta('http://h/one'), Buffer.from('first body'));
  await new Promise((r) => setTimeout(r, 20));
  await first.put(meta('http://h/two'), Buffer.from('second body'));
  await new Promise((r) => setTimeout(r, 20));
  const one = first.lookup('http://h/one', new HeaderList());
  if (one) await first.readBody(one); // one is now the most recently used
  const second = await CacheStore.open({ dir, maxBytes: 100_000 });
  t.same(second.keys(), ['http://h/two', 'http://h/one'], 'the order of use survived');
  const entry = second.lookup('http://h/two', new HeaderList());
  t.equal((await second.readBody(entry!))?.toString(), 'second body', 'the body is the same');
  t.same([...entry!.headers], [['Cache-Control', 'max-age=60']], 'so are the headers');
  t.equal(entry!.responseTime, NOW, 'and the times');
});

t.test('CacheStore ignores, deletes and never serves a corrupt entry', async (t) => {
  const dir = await tempDir(t);
  const store = await CacheStore.open({ dir });
  await store.put(meta('http://h/ok'), Buffer.from('fine'));
  await store.put(meta('http://h/bad'), Buffer.from('will be damaged'));
  const bad = path.join(dir, entryFileName('http://h/bad'));
  const bytes = await readFile(bad);
  bytes[bytes.length - 2] ^= 0xff;
  await writeFile(bad, bytes);
  await writeFile(path.join(dir, 'leftover.entry.abc.tmp'), 'half written');
  await writeFile(path.join(dir, `${'0'.repeat(64)}.entry`), 'EJ07-CACHE-ENTRY 1\n{');
  const logs: string[] = [];
  const reopened = await CacheStore.open({ dir, log: (m) => logs.push(m) });
  t.same(reopened.keys(), ['http://h/ok'], 'only the sound entry is loaded');
  t.match(logs.join('\n'), /SHA-256/, 'the damaged body was reported');
  t.same((await readdir(dir)).sort(), [entryFileName('http://h/ok')], 'corrupt and temporary files were deleted');

  // Damage after loading: readBody refuses it and drops the entry.
  const ok = reopened.lookup('http://h/ok', new HeaderList())!;
  await writeFile(ok.file, 'EJ07-CACHE-ENTRY 1\nnot json\n');
  t.equal(await reopened.readBody(ok), undefined, 'a file damaged while loaded is not served');
  t.equal(reopened.size, 0, 'and is dropped');
});

t.test('CacheStore matches Vary fields', async (t) => {
  const store = await CacheStore.open({ dir: await tempDir(t) });
  await store.put({ ...meta('http://h/v'), vary: { 'accept-encoding': 'gzip' } }, Buffer.from('gz'));
  t.ok(store.lookup('http://h/v', h({ 'Accept-Encoding': 'gzip' })), 'same value: found');
  t.equal(store.lookup('http://h/v', h({ 'Accept-Encoding': 'br' })), undefined, 'another value: not found');
  t.equal(store.lookup('http://h/v', new HeaderList()), undefined, 'absent: not found');
});

t.test('a lookup right after put() waits for the write (settled)', async (t) => {
  const store = await CacheStore.open({ dir: await tempDir(t) });
  void store.put(meta('http://h/now'), Buffer.from('x'));
  t.equal(store.lookup('http://h/now', new HeaderList()), undefined, 'not there synchronously');
  await store.settled('http://h/now');
  t.ok(store.lookup('http://h/now', new HeaderList()), 'there once settled');
});

t.test('storable() refuses a response that sets a cookie (as nginx does unless told)', async (t) => {
  const none = new HeaderList();
  const verdict = storable('GET', none, 200, h({ 'Cache-Control': 'public, max-age=600', 'Set-Cookie': 'session=alice' }));
  t.same(verdict, { ok: false, reason: 'the response sets a cookie (Set-Cookie)' }, 'even public with a lifetime');
  t.equal(storable('GET', none, 200, h({ 'Cache-Control': 's-maxage=600', 'set-cookie2': 'a=1' })).ok, false, 'Set-Cookie2 too');
});

t.test('CacheStore never stores a Set-Cookie, and drops one an older version left on disk', async (t) => {
  const dir = await tempDir(t);
  const store = await CacheStore.open({ dir });
  const withCookie = { ...meta('http://h/c'), headers: [['Cache-Control', 'max-age=60'], ['Set-Cookie', 'session=alice']] as [string, string][] };
  t.equal(await store.put(withCookie, Buffer.from('x')), false, 'put() refuses headers with Set-Cookie');
  t.equal(store.size, 0, 'nothing stored');
  // An entry file as the version before this one wrote it.
  const body = Buffer.from('old');
  const { createHash } = await import('node:crypto');
  const full: EntryMeta = { ...withCookie, bodyLength: body.length, bodySha256: createHash('sha256').update(body).digest('hex') };
  await writeFile(path.join(dir, entryFileName(full.key)), encodeEntry(full, body));
  const logs: string[] = [];
  const reopened = await CacheStore.open({ dir, log: (m) => logs.push(m) });
  t.equal(reopened.size, 0, 'the planted entry is not loaded');
  t.match(logs.join('\n'), /Set-Cookie/, 'and the log says why');
  t.same(await readdir(dir), [], 'its file is deleted');
});

t.test('CacheStore.refresh() after a 304 keeps no Set-Cookie the 304 carried', async (t) => {
  const store = await CacheStore.open({ dir: await tempDir(t) });
  await store.put(meta('http://h/r'), Buffer.from('body'));
  const entry = store.lookup('http://h/r', new HeaderList())!;
  const merged = mergeNotModified(entry.headers, h({ 'Cache-Control': 'max-age=120', 'Set-Cookie': 'session=bob' }));
  const refreshed = await store.refresh(entry, merged, NOW + 1000, NOW + 1000);
  t.ok(refreshed, 'the entry is refreshed');
  t.equal(refreshed?.headers.get('cache-control'), 'max-age=120', 'with the new lifetime');
  t.notOk(refreshed?.headers.has('set-cookie'), 'without the cookie meant for the client that revalidated');
});

t.test('varyValues() and lookup() key on the forwarded request: a field Connection names counts as absent', async (t) => {
  const response = h({ Vary: 'Accept-Language', 'Cache-Control': 'max-age=60' });
  // The attacker's request: the proxy forwards it without Accept-Language.
  const attacker = h({ 'Accept-Language': 'xx', Connection: 'Accept-Language' });
  t.same(varyValues(response, attacker), { 'accept-language': '' }, 'stored as the variant for no Accept-Language');
  const store = await CacheStore.open({ dir: await tempDir(t) });
  await store.put({ ...meta('http://h/v'), vary: varyValues(response, attacker) }, Buffer.from('default variant'));
  t.equal(store.lookup('http://h/v', h({ 'Accept-Language': 'xx' })), undefined, 'a client that sends Accept-Language: xx does not get it');
  t.ok(store.lookup('http://h/v', new HeaderList()), 'a client that sends none does');
  t.ok(store.lookup('http://h/v', h({ 'Accept-Language': 'fr', Connection: 'keep-alive, accept-language' })), 'and so does one whose Accept-Language is not forwarded either');
});
