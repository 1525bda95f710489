/** ej14's scenario helpers. rewriteConfig(): ej14's config.ini from a submission's own, host and port values only. */
import ini from 'ini';
import t from 'tap';
import { loosePairs, marker, rewriteConfig } from './ej14.ts';

let next = 9000;
const ports = () => ({ reducer: 7000, mappers: [7001, 7002, 7003, 7004], other: () => next++ });

t.test("rewriteConfig() keeps this project's [reducer] [mapperN] layout and remakes one section per mapper", async (t) => {
  const out = rewriteConfig('; comment\n[reducer]\nhost = 10.0.0.1\nport = 8000\n\n[mapper1]\nhost = 10.0.0.2\nport = 8001\n\n[mapper2]\nhost = 10.0.0.3\nport = 8002\n', ports());
  const parsed = ini.parse(out ?? '');
  t.match(out, /^; comment/);
  t.same(parsed.reducer, { host: '127.0.0.1', port: '7000' });
  t.same(Object.keys(parsed).filter((k) => k.startsWith('mapper')), ['mapper1', 'mapper2', 'mapper3', 'mapper4']);
  t.same(parsed.mapper4, { host: '127.0.0.1', port: '7004' });
});

t.test('rewriteConfig() keeps a submission\'s [master] [reducer] [mapperN] and gives the master\'s port a fresh one', async (t) => {
  next = 9000;
  const parsed = ini.parse(rewriteConfig('[master]\ntimeout = 120\nport = 8009\n\n[reducer]\nhost = 127.0.0.1\nport = 8010\n\n[mapper1]\nhost = 127.0.0.1\nport = 8001\n', ports()) ?? '');
  t.same(parsed.master, { timeout: '120', port: '9000' });
  t.same(parsed.reducer, { host: '127.0.0.1', port: '7000' });
  t.same(parsed.mapper3, { host: '127.0.0.1', port: '7003' });
});

t.test('rewriteConfig() remakes the lists of a single [mappers] section', async (t) => {
  const lists = ini.parse(rewriteConfig('[reducer]\nip = localhost\npuerto = 5000\n[mappers]\nhosts = a, b\nports = 1, 2\n', ports()) ?? '');
  t.same(lists.reducer, { ip: '127.0.0.1', puerto: '7000' });
  t.same(lists.mappers, { hosts: '127.0.0.1, 127.0.0.1, 127.0.0.1, 127.0.0.1', ports: '7001, 7002, 7003, 7004' });
  const pairs = ini.parse(rewriteConfig('[reducer]\nhost = h\nport = 1\n[mappers]\nlista = h:1,h:2\n', ports()) ?? '');
  t.same(pairs.mappers, { lista: '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004' });
  const keys = ini.parse(rewriteConfig('[reducer]\nhost = h\nport = 1\n[mappers]\nm1 = h:1\nm2 = h:2\n', ports()) ?? '');
  t.same(keys.mappers, { m1: '127.0.0.1:7001', m2: '127.0.0.1:7002', m3: '127.0.0.1:7003', m4: '127.0.0.1:7004' });
});

t.test('rewriteConfig() gives undefined for a file that names no mapper', async (t) => {
  t.equal(rewriteConfig('[reducer]\nhost = h\nport = 1\n', ports()), undefined);
});

t.test('loosePairs() reads term/count pairs in lines, JSON and a printed dict alike', async (t) => {
  for (const text of ['don\t12\nzqxaa 3\n', '{"don": 12, "zqxaa": 3}', "{'don': 12, 'zqxaa': 3}", 'don: 12\r\nzqxaa: 3\r\n', 'don,12\nzqxaa,3\n']) {
    const pairs = loosePairs(text);
    t.same([pairs.get('don'), pairs.get('zqxaa')], [[12], [3]], JSON.stringify(text));
  }
  t.same(loosePairs('zqxab 1\nzqxab 2\n').get('zqxab'), [1, 2], 'a term twice shows twice');
});

t.test('marker() gives 64 distinct letter-only terms', async (t) => {
  const all = Array.from({ length: 64 }, (_, i) => marker(i));
  t.equal(new Set(all).size, 64);
  t.ok(all.every((m) => /^zqx[a-z]{2}$/.test(m)));
});
