/**
 * A path a user gives that cannot be used (missing, a file where a folder is
 * wanted, a folder where a file is): one sentence naming the path and what
 * is wrong with it in words, never the kernel's bare code. Before, ej06 said
 * `cannot read the 404 page /nonexistent/404.html: ENOENT`, ej07
 * `cannot use the cache folder F: EEXIST`, ej08 `cannot read /tmp: EISDIR`
 * and ej12 `EEXIST: file already exists, mkdir 'F'`.
 */
import path from 'node:path';
import t from 'tap';
import { run, tsx } from './fixtures/spawn.ts';

const RAW_CODE = /\bE[A-Z]{3,}\b/;

t.test('a path that cannot be used is a sentence, not a raw code', async (t) => {
  const dir = t.testdir({ 'a-file': 'x', 'a-folder': {} });
  const file = path.join(dir, 'a-file');
  const folder = path.join(dir, 'a-folder');
  const cases: ReadonlyArray<readonly [string[], string, number]> = [
    [['ej06/server.ts', '--port', '0', '--not-found', path.join(dir, 'missing.html')], `cannot read the 404 page ${path.join(dir, 'missing.html')}: no such file`, 1],
    [['ej07/proxy.ts', '--port', '0', '--cache-dir', file], `cannot use the cache folder ${file}: a file of that name is there, not a folder`, 1],
    [['ej08/balancer.ts', '--port', '0', '--config', folder], `cannot read ${folder}: it is a folder, not a file`, 2],
    [['ej12/master.ts', '--port', '0', '--root', file], `cannot use --root ${file}: a file of that name is there, not a folder`, 1],
  ];
  for (const [[script = '', ...args], sentence, status] of cases) {
    const name = path.basename(script);
    const { code, stderr } = await run(tsx(script, ...args));
    t.equal(code, status, `${script} exits ${status}`);
    t.equal(stderr.trim(), `${name}: ${sentence}`, `${script}: one sentence`);
    t.notMatch(stderr, RAW_CODE, `${script}: no raw error code`);
  }
});
