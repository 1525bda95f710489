import { mkdir, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { isMain } from './main.ts';
import { deno, hasDeno, ROOT, run, tsx } from './fixtures/spawn.ts';

t.test('isMain follows import.meta.main when the runtime sets it', async (t) => {
  t.equal(isMain({ url: import.meta.url, main: true }), true);
  t.equal(isMain({ url: import.meta.url, main: false }), false);
});

t.test('isMain is false for a module that is not the entry point', async (t) => {
  // Under tap, argv[1] is this test file run by node; a different file is not main.
  t.equal(isMain({ url: new URL('./cli.ts', import.meta.url).href }), false);
  t.equal(isMain({ url: 'https://example.com/x.ts' }), false, 'a remote module never is');
  t.equal(isMain({ url: 'file:///no/such/file.ts' }), false, 'a missing file is not');
});

t.test('isMain: the entry point runs its main and an imported module does not', async (t) => {
  const { code, stdout, stderr } = await run(tsx('lib/fixtures/main-entry.ts'));
  t.equal(code, 0, stderr);
  t.equal(stdout, 'main-entry: main (imported module isMain: false)\n', 'one main ran, the entry point’s');
});

t.test('isMain: the same module run directly runs its main once', async (t) => {
  const { code, stdout, stderr } = await run(tsx('lib/fixtures/main-module.ts'));
  t.equal(code, 0, stderr);
  t.equal(stdout, 'main-module: main\n');
});

t.test('isMain under Deno: the entry point runs its main and an imported module does not', { skip: hasDeno ? false : 'deno is not installed (npm ci installs it)' }, async (t) => {
  const { code, stdout, stderr } = await run(deno('lib/fixtures/main-entry.ts'));
  t.equal(code, 0, stderr);
  t.equal(stdout, 'main-entry: main (imported module isMain: false)\n');
});

t.test('isMain: an entry point reached through a symlink is still main', async (t) => {
  const dir = path.join(ROOT, 'lib', 'fixtures', `.tmp-main-${process.pid}`);
  await mkdir(dir, { recursive: true });
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const link = path.join(dir, 'link.ts');
  await symlink(path.join(ROOT, 'lib', 'fixtures', 'main-module.ts'), link);
  const { code, stdout, stderr } = await run(tsx(link));
  t.equal(code, 0, stderr);
  t.equal(stdout, 'main-module: main\n');
});

t.test('runMain: a main that finishes exits 0, a returned number becomes the exit code', async (t) => {
  const ok = await run(tsx('lib/fixtures/run-main.ts', 'ok'));
  t.equal(ok.code, 0);
  t.equal(ok.stdout, 'done\n');
  t.equal(ok.stderr, '');
  const three = await run(tsx('lib/fixtures/run-main.ts', 'return', '3'));
  t.equal(three.code, 3);
  t.equal(three.stderr, '');
});

t.test('runMain: a UsageError exits 2 with the mistake on stderr and no stack', async (t) => {
  const { code, stdout, stderr } = await run(tsx('lib/fixtures/run-main.ts', 'usage'));
  t.equal(code, 2);
  t.equal(stdout, '');
  // run-main.ts declares no command, so there is no usage line to print: the pointer to -h stands in.
  t.equal(stderr, "run-main.ts: error: argument --port: expected a port number 0-65535, got 'x'\nTry 'run-main.ts -h' for help.\n");
});

t.test('runMain: a CliError prints its message and exits with its code', async (t) => {
  const one = await run(tsx('lib/fixtures/run-main.ts', 'cli', '1'));
  t.equal(one.code, 1);
  t.equal(one.stderr, 'run-main.ts: cannot connect to 127.0.0.1:9: connection refused\n');
  const four = await run(tsx('lib/fixtures/run-main.ts', 'cli', '4'));
  t.equal(four.code, 4, 'the error’s own code');
  t.equal(four.stderr, 'run-main.ts: cannot connect to 127.0.0.1:9: connection refused\n');
});

t.test('runMain: an unexpected error exits 70 and keeps its stack', async (t) => {
  const { code, stderr } = await run(tsx('lib/fixtures/run-main.ts', 'bug'));
  t.equal(code, 70);
  t.match(stderr, /^run-main\.ts: internal error \(a bug; please report it\):\nTypeError: Cannot read properties of undefined/);
  t.match(stderr, /\n\s+at .*run-main\.ts:\d+/, 'the stack names where it happened');
});

t.test('runMain: a rejection that is not an Error exits 70 too', async (t) => {
  const { code, stderr } = await run(tsx('lib/fixtures/run-main.ts', 'reject'));
  t.equal(code, 70);
  t.match(stderr, /internal error.*\na string, not an Error\n$/);
});
