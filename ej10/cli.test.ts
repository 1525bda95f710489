/**
 * ej10's command lines as a user types them: a client given port 0, a
 * negative --skew written with a space, and the exit statuses in -h.
 */
import t from 'tap';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';

t.test('client.ts refuses port 0 in one sentence and exits 2', async (t) => {
  const { code, stdout, stderr } = await run(tsx('ej10/client.ts', '--port', '0'));
  t.equal(code, 2);
  t.equal(stdout, '');
  t.match(stderr, /^client\.ts: error: argument --port: port 0 cannot be connected to/m);
  t.notMatch(stderr, /\n\s+at /, 'no stack trace');
});

t.test('server.ts takes --skew -1000 (a space, not only =) and starts', async (t) => {
  const child = new Child(tsx('ej10/server.ts', '--port', '0', '--skew', '-1000'));
  t.teardown(() => child.kill());
  const port = await child.ready(60_000);
  t.ok(port > 0, 'it listens');
});

t.test('server.ts -h says its exit statuses', async (t) => {
  const { code, stdout } = await run(tsx('ej10/server.ts', '-h'));
  t.equal(code, 0);
  t.match(stdout, /^Exit status: 0 /m);
});
