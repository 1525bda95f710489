/** ej13's node.ts -h: a -q as the other scripts have, and the exit statuses. */
import t from 'tap';
import { run, tsx } from '../lib/fixtures/spawn.ts';

t.test('node.ts -h lists -q, --quiet and an "Exit status:" line', async (t) => {
  const { code, stdout } = await run(tsx('ej13/node.ts', '-h'));
  t.equal(code, 0);
  t.match(stdout, /^ {2}-q, --quiet /m, '-q is the short form of --quiet');
  t.match(stdout, /^Exit status: 0 /m);
});

t.test('node.ts -q is accepted (a bad id still refused in words, so nothing starts)', async (t) => {
  const { code, stderr } = await run(tsx('ej13/node.ts', '-q', '--id', 'x'));
  t.equal(code, 2);
  t.match(stderr, /argument --id: expected a node id/, 'the -q itself was not the problem');
});
