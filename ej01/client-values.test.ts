/**
 * ej01's clients given values a newcomer types: port 0 (a server's "any
 * port", meaningless to connect to) and a negative timeout.
 */
import t from 'tap';
import { run, tsx } from '../lib/fixtures/spawn.ts';

for (const name of ['tcp-client.ts', 'udp-client.ts']) {
  const file = `ej01/${name}`;
  t.test(`${name} refuses port 0 in one sentence and exits 2 (no stack trace)`, async (t) => {
    const { code, stdout, stderr } = await run(tsx(file, '--data', 'x', '--port', '0'));
    t.equal(code, 2);
    t.equal(stdout, '');
    t.match(stderr, new RegExp(`^${name.replace('.', '\\.')}: error: argument --port: port 0 cannot be connected to`, 'm'));
    t.notMatch(stderr, /\n\s+at /, 'no stack trace');
  });
}

t.test('a negative --timeout is read as a value and refused in words, not as a missing argument', async (t) => {
  const { code, stderr } = await run(tsx('ej01/udp-client.ts', '--data', 'x', '--timeout', '-1'));
  t.equal(code, 2);
  t.match(stderr, /^udp-client\.ts: error: argument --timeout: expected a positive number, got '-1'$/m);
});
