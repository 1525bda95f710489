/**
 * ej11's client command line as a user types it: port 0 is refused in one
 * sentence with exit 2 (it used to reach the socket and end in a stack trace).
 */
import t from 'tap';
import { run, tsx } from '../lib/fixtures/spawn.ts';

t.test('client.ts refuses port 0 in one sentence and exits 2', async (t) => {
  const { code, stdout, stderr } = await run(tsx('ej11/client.ts', '--get', 'a', '--port', '0'));
  t.equal(code, 2);
  t.equal(stdout, '');
  t.match(stderr, /^client\.ts: error: argument --port: port 0 cannot be connected to/m);
  t.notMatch(stderr, /\n\s+at /, 'no stack trace');
});
