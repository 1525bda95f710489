/**
 * The fuzz campaign's short form, for CI: a fixed seed, a few cases per
 * server, and every fixed regression case of issue 11 (each named below),
 * asserting that nothing is found. Plus the campaign's own pieces: the PRNG
 * is deterministic, the mutations do what they say, and the loopback guards
 * hold.
 *
 * Run it alone with `npx tap harness/fuzz.test.ts`; the long form is
 * `npm run fuzz` (harness/fuzz/README.md).
 */
import t from 'tap';
import { casesFor, formatFindings, formatTable, runTarget, type CampaignOptions, type TargetReport } from './fuzz/campaign.ts';
import { bitFlips, hostileLength, mutate, truncated } from './fuzz/mutate.ts';
import { hashSeed, Rng } from './fuzz/prng.ts';
import { carriesFin, ringFrame } from './fuzz/targets/ej13.ts';
import { namesOnlyOrigin } from './fuzz/targets/http.ts';
import { TARGETS } from './fuzz/targets/index.ts';
import { assertLoopback } from './fuzz/net.ts';
import { stackTraces } from './fuzz/watch.ts';

// The short campaign starts sixteen servers; on a loaded machine that outlasts tap's default.
t.setTimeout(900_000);

/** The seed and budget of the short form. */
const SEED = 11;
const CASES = 16;

t.test('Rng gives the same numbers for the same seed, others for another', async (t) => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const seqA = Array.from({ length: 5 }, () => a.next());
  t.same(seqA, Array.from({ length: 5 }, () => b.next()));
  t.not(seqA[0], c.next());
  t.equal(hashSeed(1, 'ej11#3'), hashSeed(1, 'ej11#3'));
  t.not(hashSeed(1, 'ej11#3'), hashSeed(1, 'ej11#4'));
  const sizes = Array.from({ length: 2000 }, () => a.size(1024 * 1024));
  t.ok(sizes.every((n) => n >= 0 && n <= 1024 * 1024), 'sizes stay within 0 B–1 MiB');
  t.ok(sizes.includes(0) && sizes.includes(1024 * 1024), 'both ends are drawn');
});

t.test('a seed names the same cases: ids, kinds and details agree between two generations', async (t) => {
  for (const target of TARGETS) {
    const one = casesFor(target, { seed: 5, cases: 30 }).generated.map((c) => `${c.id} ${c.kind} ${c.detail}`);
    const two = casesFor(target, { seed: 5, cases: 30 }).generated.map((c) => `${c.id} ${c.kind} ${c.detail}`);
    t.same(one, two, target.name);
  }
});

t.test('mutations: a hostile length is 0xFFFFFFFF (mostly), truncation is shorter, bit flips keep the length', async (t) => {
  const rng = new Rng(1);
  const pdu = Uint8Array.from([0, 0, 0, 5, 1, 2, 3, 4, 5]);
  const lengths = Array.from({ length: 50 }, () => new DataView(hostileLength(rng, pdu, [0]).buffer).getUint32(0));
  t.ok(lengths.filter((n) => n === 0xffffffff).length > 20, 'most are 0xFFFFFFFF');
  t.ok(truncated(rng, pdu).length < pdu.length);
  const flipped = bitFlips(rng, pdu);
  t.equal(flipped.length, pdu.length);
  t.notSame([...flipped], [...pdu]);
  const kinds = new Set(Array.from({ length: 300 }, () => mutate(rng, pdu, { max: 4096, lengthFields: [0] }).kind));
  t.same([...kinds].sort(), ['bit-flips', 'inflated', 'length-ffffffff', 'prefix-garbage', 'random', 'repeated', 'truncated']);
});

t.test('loopback guards: traffic only to 127/8 and ::1, a proxy case names only the local origin, no ring case ends a node', async (t) => {
  t.doesNotThrow(() => assertLoopback('127.0.0.1'));
  t.doesNotThrow(() => assertLoopback('::1'));
  t.throws(() => assertLoopback('10.0.0.1'));
  t.throws(() => assertLoopback('example.com'));
  const origin = '127.0.0.1:8081';
  const ok = (s: string) => namesOnlyOrigin(new TextEncoder().encode(s), origin);
  t.ok(ok(`GET http://${origin}/x HTTP/1.1\r\nHost: ${origin}\r\n\r\n`));
  t.notOk(ok(`GET http://127.0.0.3:8081/x HTTP/1.1\r\nHost: ${origin}\r\n\r\n`), 'a flipped address');
  t.notOk(ok(`GET http://${origin}/x HTTP/1.1\r\nHost: evil.example\r\n\r\n`), 'another Host');
  t.notOk(ok(`CONNECT 12\u0007.0.0.1:443 HTTP/1.1\r\n\r\n`), 'garbage in a CONNECT authority');
  t.notOk(ok(`GET http://${origin}@evil/ HTTP/1.1\r\n\r\n`), 'userinfo trick');
  t.ok(carriesFin(ringFrame(0, 0, 4)), 'a finalisation from node 0');
  t.ok(carriesFin(Buffer.concat([ringFrame(5, 6, 0, 'hola'), ringFrame(0, 6, 4)])), 'also after another frame');
  t.notOk(carriesFin(ringFrame(5, 6, 4)), 'a finalisation from node 5 is only discarded');
});

t.test('stackTraces() finds a trace once, by its message and first frame', async (t) => {
  const text = 'listening on 127.0.0.1:1 (tcp)\nfile:///x/ej11/server.ts:12\nRangeError: Cannot send: too long\n    at Connection.send (/x/ej11/transport.ts:235:39)\n    at Socket.emit (node:events:524:28)\n\nNode.js v20\n';
  const found = stackTraces(text);
  t.equal(found.length, 1);
  t.match(found[0], /RangeError: Cannot send.*transport\.ts:235:39/);
  t.same(stackTraces('GET /x 200 "at home"\n'), []);
});

t.test(`short campaign (seed ${SEED}, ${CASES} cases per server, and every fixed case): no findings`, { timeout: 600_000 }, async (t) => {
  const options: CampaignOptions = {
    seed: SEED,
    cases: CASES,
    batchSize: CASES,
    concurrency: 8,
    runtime: 'node',
    nofile: 256,
    fdSlack: 12,
    rssSlackBytes: 256 * 1024 * 1024,
    bisect: false,
    log: (line) => t.comment(line),
  };
  // Two servers at a time: the machine has two cores, and most of a target's time is its start.
  const reports: TargetReport[] = [];
  const queue = [...TARGETS];
  await Promise.all(
    [0, 1].map(async () => {
      for (let target = queue.shift(); target; target = queue.shift()) reports.push(await runTarget(target, options));
    }),
  );
  reports.sort((a, b) => TARGETS.findIndex((x) => x.name === a.target) - TARGETS.findIndex((x) => x.name === b.target));
  t.comment(`\n${formatTable(reports)}`);
  for (const target of TARGETS) {
    const report = reports.find((r) => r.target === target.name);
    for (const fixed of target.fixed ?? []) {
      const hits = report?.findings.filter((f) => f.batch === `fixed ${fixed.id}`) ?? [];
      t.same(hits.map((f) => `${f.what}: ${f.message}`), [], `${fixed.finding}: ${fixed.id} (${fixed.detail}) finds nothing`);
    }
    const rest = report?.findings.filter((f) => !f.batch.startsWith('fixed ')) ?? [];
    t.same(rest.map((f) => `${f.batch} ${f.what}: ${f.message}`), [], `${target.name}: ${report?.cases ?? 0} cases, alive, valid answers, bounded fds and RSS, no stack trace`);
  }
  const all = formatFindings(reports);
  if (all) t.comment(`findings:\n${all}`);
});
