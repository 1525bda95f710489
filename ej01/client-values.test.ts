/**
 * ej01's clients given a value a newcomer types: a negative timeout (port 0
 * is refused by every client alike: lib/clients-port.test.ts).
 */
import t from 'tap';
import { run, tsx } from '../lib/fixtures/spawn.ts';

t.test('a negative --timeout is read as a value and refused in words, not as a missing argument', async (t) => {
  const { code, stderr } = await run(tsx('ej01/udp-client.ts', '--data', 'x', '--timeout', '-1'));
  t.equal(code, 2);
  t.match(stderr, /^udp-client\.ts: error: argument --timeout: expected a positive number, got '-1'$/m);
});
