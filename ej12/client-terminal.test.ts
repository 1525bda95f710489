/**
 * The client on a terminal, driven through tmux: Ctrl-C at the prompt
 * clears the line and gives a fresh prompt, as a shell does; Ctrl-D quits
 * (issue 13: Ctrl-C quit the client).
 */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { TmuxSession } from '../harness/tmux.ts';
import { Child, tsx } from '../lib/fixtures/spawn.ts';
import { tmuxContext } from '../lib/fixtures/tmux.ts';


t.test('on a terminal, Ctrl-C at the prompt clears the line and the client goes on; Ctrl-D quits', async (t) => {
  const root = await realpath(await mkdtemp(path.join(tmpdir(), 'ej12-term-')));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const master = new Child(tsx('ej12/master.ts', '--port', '0', '--root', root, '-q'));
  t.teardown(() => master.kill());
  const port = await master.ready(60_000);
  const tmux = await TmuxSession.start(tmuxContext(), tsx('ej12/client.ts', '--port', String(port)));
  t.teardown(() => tmux.kill());
  await tmux.waitFor(/ej12:\/\$\s*$/, 60_000);
  await tmux.send(['mkdir half-typed'], { literal: true });
  await tmux.send(['C-c']);
  await tmux.waitFor(/half-typed\^C\nej12:\/\$\s*$/, 10_000);
  t.notOk(await tmux.dead(), 'Ctrl-C did not end the client');
  await tmux.line('ls');
  await tmux.waitFor(/\$ ls\nej12:\/\$\s*$/, 10_000);
  t.pass('the half-typed mkdir was not run: ls shows an empty folder');
  await tmux.send(['C-d']);
  const deadline = Date.now() + 20_000;
  while (!(await tmux.dead()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  t.ok(await tmux.dead(), 'Ctrl-D ends the client');
});
