import t from 'tap';
import { freePorts } from '../lib/fixtures/ports.ts';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';

t.test('original-design.ts: a wrong password is one sentence and exit 1, not a stack trace; the right one runs the session', async (t) => {
  const [port] = (await freePorts(1)) as [number];
  const server = new Child(tsx('ej05/original-design.ts', '--serve', '--port', String(port)));
  t.teardown(() => server.kill());
  t.equal(await server.ready(60_000), port, 'the server names its port');
  const wrong = await run(tsx('ej05/original-design.ts', '--port', String(port)), { input: 'nahuel\nwrong\npwd\n' });
  t.equal(wrong.code, 1, 'exit 1');
  t.equal(wrong.stderr, 'original-design.ts: login refused: wrong user name or password\n', 'one sentence');
  t.equal(wrong.stdout, '', 'no command ran');
  const right = await run(tsx('ej05/original-design.ts', '--port', String(port)), { input: 'nahuel\n1234\necho hola\n' });
  t.equal(right.code, 0, `the right password: exit 0 (${right.stderr.trim()})`);
  t.equal(right.stdout, '>>> echo hola\nhola\n', 'the transcript');
});

t.test('original-design.ts: nobody listening is one sentence; -h lists the exit statuses', async (t) => {
  const [port] = (await freePorts(1)) as [number];
  const refused = await run(tsx('ej05/original-design.ts', '--port', String(port)), { input: 'nahuel\n1234\n' });
  t.equal(refused.code, 1, 'exit 1');
  t.match(refused.stderr, new RegExp(`^original-design\\.ts: .*127\\.0\\.0\\.1:${port}.*refused.*\\n$`), `one line naming the address (${refused.stderr.trim()})`);
  t.notMatch(refused.stderr, /^\s+at /m, 'no stack trace');
  const help = await run(tsx('ej05/original-design.ts', '-h'));
  t.match(help.stdout, /^Exit status: 0 .*, 1 .*, 2 bad usage/m, 'an "Exit status:" line');
});
