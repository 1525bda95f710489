/**
 * ej10's command lines as a user types them: a negative --skew written with
 * a space, and the exit statuses in -h (port 0: lib/clients-port.test.ts).
 */
import t from 'tap';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';

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
