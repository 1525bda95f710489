/**
 * Every client that connects somewhere, as a newcomer runs it with port 0
 * (a server's "any free port", meaningless to connect to): one sentence from
 * lib/cli's `parsePort(…, { zero: false })`, exit 2, no stack trace. Before,
 * ej01's udp-client and ej02's client ended in ERR_SOCKET_BAD_PORT (exit 70),
 * ej11's in exit 1, and the TCP clients tried to connect.
 */
import t from 'tap';
import { run, tsx } from './fixtures/spawn.ts';

const CLIENTS: ReadonlyArray<readonly [string, ...string[]]> = [
  ['ej01/tcp-client.ts', '--data', 'x'],
  ['ej01/udp-client.ts', '--data', 'x'],
  ['ej02/client.ts'],
  ['ej09/client.ts'],
  ['ej10/client.ts'],
  ['ej11/client.ts', '--get', 'a'],
];

for (const [file, ...args] of CLIENTS) {
  const name = file.split('/')[1] ?? file;
  t.test(`${file} refuses port 0 in one sentence and exits 2`, async (t) => {
    const { code, stdout, stderr } = await run(tsx(file, ...args, '--port', '0'));
    t.equal(code, 2);
    t.equal(stdout, '');
    t.match(stderr, new RegExp(`^${name.replace('.', '\\.')}: error: argument --port: port 0 cannot be connected to`, 'm'));
    t.notMatch(stderr, /\n\s+at /, 'no stack trace');
  });
}
