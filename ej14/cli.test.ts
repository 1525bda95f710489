import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { freePorts } from '../lib/fixtures/ports.ts';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';

const host = '127.0.0.1';

/** A temp folder with a config.ini naming a reducer and `mappers` mappers on free ports, and a small in_file. */
async function cluster(t: Test, mappers = 2) {
  const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'ej14-cli-')));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ports = await freePorts(mappers + 1);
  const [reducer, ...rest] = ports as [number, ...number[]];
  const config = path.join(dir, 'config.ini');
  await writeFile(config, `[reducer]\nhost = ${host}\nport = ${reducer}\n\n${rest.map((p, i) => `[mapper${i + 1}]\nhost = ${host}\nport = ${p}\n`).join('\n')}`);
  const input = path.join(dir, 'in.txt');
  await writeFile(input, 'Uno dos dos tres tres tres. ¿Año? ¡AÑO!\n'.repeat(200));
  return { dir, config, input, reducer, mappers: rest };
}

function start(t: Test, file: string, args: string[]): Child {
  const child = new Child(tsx(file, ...args));
  t.teardown(() => child.kill());
  return child;
}

t.test('master: an out_file it cannot write is refused before the job, in one sentence naming the path (was ENOENT after the whole job)', async (t) => {
  const c = await cluster(t);
  const folder = path.join(c.dir, 'no', 'such');
  const out = path.join(folder, 'out.txt');
  const result = await run(tsx('ej14/master.ts', '--config', c.config, c.input, out));
  t.equal(result.code, 2, 'exit 2, as for a bad in_file');
  t.equal(result.stderr, `master.ts: cannot write out_file ${out}: the folder ${folder} does not exist\n`, 'one sentence, before any node is contacted');
  await mkdir(path.join(c.dir, 'out-folder'));
  const intoFolder = await run(tsx('ej14/master.ts', '--config', c.config, c.input, path.join(c.dir, 'out-folder')));
  t.equal(intoFolder.code, 2, 'a folder as out_file: exit 2');
  t.equal(intoFolder.stderr, `master.ts: cannot write out_file ${path.join(c.dir, 'out-folder')}: it is a folder\n`, 'said so');
});

t.test('mapper and reducer: a port in use names the config.ini entry that fixes it and what holds it, not "try --port 0"', async (t) => {
  const c = await cluster(t, 1);
  // This test holds both ports, as another program would.
  const holders = [c.reducer, c.mappers[0]!].map((port) => net.createServer().listen(port, host));
  await Promise.all(holders.map((h) => new Promise((resolve) => h.once('listening', resolve))));
  t.teardown(() => holders.forEach((h) => h.close()));
  const mapper = await run(tsx('ej14/mapper.ts', '--config', c.config, host, String(c.mappers[0])));
  t.equal(mapper.code, 1, 'mapper: exit 1');
  t.notMatch(mapper.stderr, /--port 0/, 'no --port 0 (it has none)');
  t.match(mapper.stderr, `[mapper1] of ${c.config}`, `names the entry (${mapper.stderr.trim()})`);
  t.match(mapper.stderr, `pid ${process.pid}`, 'and the process that holds the port');
  t.equal(mapper.stderr.trim().split('\n').length, 1, 'one line');
  const reducer = await run(tsx('ej14/reducer.ts', '--config', c.config));
  t.equal(reducer.code, 1, 'reducer: exit 1');
  t.notMatch(reducer.stderr, /--port 0/, 'no --port 0');
  t.match(reducer.stderr, `[reducer] of ${c.config}`, `names the entry (${reducer.stderr.trim()})`);
  t.match(reducer.stderr, `pid ${process.pid}`, 'and the holder');
});

t.test('-h of master, mapper and reducer: -q, and the exit statuses', async (t) => {
  for (const file of ['master', 'mapper', 'reducer']) {
    const help = await run(tsx(`ej14/${file}.ts`, '-h'));
    t.equal(help.code, 0, `${file}: exit 0`);
    t.match(help.stdout, /^ {2}-q, --quiet /m, `${file}: -q, --quiet`);
    t.match(help.stdout, /^Exit status: 0 .*, 1 .*, 2 /m, `${file}: an "Exit status:" line`);
  }
});

t.test('-q: a whole run prints only its results (and no event lines); the master waits for nodes still starting', async (t) => {
  const c = await cluster(t, 2);
  const out = path.join(c.dir, 'out.txt');
  // Started first, as `a & b & master` in one line does: the nodes are not listening yet.
  const master = start(t, 'ej14/master.ts', ['-q', '--config', c.config, c.input, out]);
  const nodes = [start(t, 'ej14/reducer.ts', ['-q', '--config', c.config]), ...c.mappers.map((p) => start(t, 'ej14/mapper.ts', ['-q', '--config', c.config, host, String(p)]))];
  const result = await master.exited;
  t.equal(result.code, 0, `the master exits 0 (${result.stderr.trim()})`);
  t.equal(result.stderr, '', 'nothing on its stderr');
  t.match(result.stdout, new RegExp(`^${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 4 terms, 1600 words from \\d+ bytes in 1 piece\\(s\\)`), 'its summary on stdout');
  t.ok(existsSync(out) && (await readFile(out, 'utf8')).startsWith('tres\t600\n'), 'out_file written');
  for (const node of nodes) await node.ready(60_000);
  t.same(nodes.map((n) => n.stderr), ['', '', ''], 'no event lines from the nodes either');
});
