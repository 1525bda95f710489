import { mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { TmuxSession } from '../harness/tmux.ts';
import { Child, ROOT, run, tsx } from '../lib/fixtures/spawn.ts';
import { tmuxContext } from '../lib/fixtures/tmux.ts';
import { addUser } from './keys.ts';

/** A folder with a users file (ana/clave), a work folder and an empty known-hosts path. */
async function files(t: Test) {
  const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'ej05-end-')));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const users = path.join(dir, 'users');
  await addUser(users, 'ana', 'clave');
  await mkdir(path.join(dir, 'work'));
  return { dir, users, work: path.join(dir, 'work'), knownHosts: path.join(dir, 'known_hosts') };
}

/** Starts server.ts under tsx with host key `key` in the folder; returns its port. */
async function serve(t: Test, f: Awaited<ReturnType<typeof files>>, key: string) {
  const child = new Child(tsx('ej05/server.ts', '--port', '0', '--users', f.users, '--host-key', path.join(f.dir, key), '--workdir', f.work));
  t.teardown(() => child.kill());
  return { child, port: await child.ready(60_000) };
}


async function waitDead(tmux: TmuxSession): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  while (!(await tmux.dead()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return tmux.dead();
}

t.test('on a terminal, Ctrl-D at the prompt ends the session with a closing line, as ssh prints "Connection to HOST closed."', async (t) => {
  const f = await files(t);
  const server = await serve(t, f, 'host_key');
  for (const [how, key] of [['Ctrl-D', ['C-d']], ['exit', ['exit', 'Enter']]] as const) {
    const tmux = await TmuxSession.start(tmuxContext(), [...tsx('ej05/client.ts', '--port', String(server.port), '--known-hosts', f.knownHosts, '--accept-new')]);
    t.teardown(() => tmux.kill());
    await tmux.waitFor(/user:\s*$/, 60_000);
    await tmux.line('ana');
    await tmux.waitFor(/password:\s*$/, 20_000);
    await tmux.line('clave');
    await tmux.waitFor(/>>>$/, 20_000);
    if (how === 'exit') await tmux.send([key[0]], { literal: true });
    await tmux.send([key.at(-1)!]);
    t.ok(await waitDead(tmux), `${how}: the client ends`);
    const screen = await tmux.screen();
    t.match(screen, new RegExp(`^Connection to 127\\.0\\.0\\.1:${server.port} closed\\.$`, 'm'), `${how}: the last line says the connection closed (${JSON.stringify(screen.split('\n').slice(-2))})`);
  }
});

t.test('-h names the option --user NAME as the README does, and lists the exit statuses', async (t) => {
  const help = await run(tsx('ej05/client.ts', '-h'));
  t.equal(help.code, 0);
  t.match(help.stdout, /--user NAME /, '-h: --user NAME');
  const readme = await readFile(path.join(ROOT, 'ej05', 'README.md'), 'utf8');
  t.same([...new Set(readme.match(/--user [A-Z]+/g))], ['--user NAME'], 'the README writes it the same way, everywhere');
  t.match(help.stdout, /^Exit status: .*; 1 .*; 2 bad usage; 130 /m, 'one "Exit status:" line, 130 included');
});
