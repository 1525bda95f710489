import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import nacl from 'tweetnacl';
import util from 'tweetnacl-util';
import { TmuxSession } from '../harness/tmux.ts';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';
import { tmuxContext } from '../lib/fixtures/tmux.ts';
import { addUser } from './keys.ts';

/** A folder with a users file (ana/clave), two host keys' paths and an empty known-hosts path. */
async function files(t: Test) {
  const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'ej05-client-')));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const users = path.join(dir, 'users');
  await addUser(users, 'ana', 'clave');
  await mkdir(path.join(dir, 'work'));
  return { dir, users, work: path.join(dir, 'work'), knownHosts: path.join(dir, 'known_hosts') };
}

/** Starts server.ts under tsx (with host key `key` in the folder) and returns its port and key fingerprint. */
async function serve(t: Test, f: Awaited<ReturnType<typeof files>>, key: string, port = '0') {
  const child = new Child(tsx('ej05/server.ts', '--port', port, '--users', f.users, '--host-key', path.join(f.dir, key), '--workdir', f.work));
  t.teardown(() => child.kill());
  const ready = await child.ready(60_000);
  const [, fingerprint] = (await child.waitFor(/ED25519 (SHA256:\S+)/, 30_000, 'stderr')) as unknown as [string, string];
  return { child, port: ready, fingerprint };
}

/** Runs the client with piped input: user, password, then `pwd`. */
function client(f: { knownHosts: string }, host: string, port: number, extra: string[] = []) {
  return run(tsx('ej05/client.ts', '--host', host, '--port', String(port), '--known-hosts', f.knownHosts, ...extra), { input: 'ana\nclave\npwd\n', timeoutMs: 60_000 });
}

t.test('outside a terminal an unknown host key is refused, unless --accept-new', async (t) => {
  const f = await files(t);
  const server = await serve(t, f, 'host_key');
  const refused = await client(f, '127.0.0.1', server.port);
  t.equal(refused.code, 1, 'refused: exit 1');
  t.match(refused.stderr, /Host key verification failed/, 'it says why');
  t.ok(refused.stderr.includes(server.fingerprint), 'it shows the fingerprint to check');
  t.match(refused.stderr, /--accept-new/, 'and names the flag that accepts it');
  t.notOk(existsSync(f.knownHosts), 'nothing was pinned');
  t.notMatch(server.child.stderr, /login/, 'no login was sent');
  const accepted = await client(f, '127.0.0.1', server.port, ['--accept-new']);
  t.equal(accepted.code, 0, `--accept-new: the session runs (${accepted.stderr.trim()})`);
  t.match(accepted.stderr, /Permanently added '127\.0\.0\.1:\d+'/, 'it says what it pinned');
  const again = await client(f, '127.0.0.1', server.port);
  t.equal(again.code, 0, 'once pinned, no flag is needed');
  t.equal(again.stderr, '', 'and nothing is said');
});

/** Pins `keyFile`'s public key for 127.0.0.1:`port`, as an earlier session there would have. */
async function pinByAddress(knownHosts: string, keyFile: string, port: number): Promise<void> {
  const secret = util.decodeBase64((await readFile(keyFile, 'utf8')).trim());
  await writeFile(knownHosts, `127.0.0.1:${port} ed25519 ${util.encodeBase64(nacl.sign.keyPair.fromSecretKey(secret).publicKey)}\n`, { mode: 0o600 });
}

t.test('localhost:P after 127.0.0.1:P is not a new first use: the same key is accepted, another is refused', async (t) => {
  const f = await files(t);
  const server = await serve(t, f, 'host_key');
  await pinByAddress(f.knownHosts, path.join(f.dir, 'host_key'), server.port);
  const byName = await client(f, 'localhost', server.port);
  t.equal(byName.code, 0, `localhost:P with the key pinned for 127.0.0.1:P is accepted without a flag (${byName.stderr.trim()})`);

  // Another server, another key: the key pinned for 127.0.0.1:P is one it does not have.
  const impostor = await serve(t, f, 'other_key');
  await writeFile(path.join(f.dir, 'unused_key'), `${util.encodeBase64(nacl.sign.keyPair().secretKey)}\n`, { mode: 0o600 });
  await pinByAddress(f.knownHosts, path.join(f.dir, 'unused_key'), impostor.port);
  const pinnedBefore = await readFile(f.knownHosts, 'utf8');
  const first = await client(f, 'localhost', impostor.port);
  t.equal(first.code, 1, `localhost:P with another key than 127.0.0.1:P's is refused (${first.stderr.trim().split('\n').at(-1)})`);
  t.match(first.stderr, /HOST IDENTIFICATION HAS CHANGED/, 'as a changed key');
  const flagged = await client(f, 'localhost', impostor.port, ['--accept-new']);
  t.equal(flagged.code, 1, '--accept-new does not accept it either');
  t.equal(await readFile(f.knownHosts, 'utf8'), pinnedBefore, 'known-hosts is unchanged');
  t.notMatch(impostor.child.stderr, /login/, 'the impostor never got a login');
});


async function terminal(t: Test, f: { knownHosts: string }, port: number): Promise<TmuxSession> {
  const tmux = await TmuxSession.start(tmuxContext(), [...tsx('ej05/client.ts', '--port', String(port), '--known-hosts', f.knownHosts)]);
  t.teardown(() => tmux.kill());
  return tmux;
}

async function waitDead(tmux: TmuxSession): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  while (!(await tmux.dead()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return tmux.dead();
}

t.test('on a terminal the fingerprint is shown and asked: yes pins it, no refuses', async (t) => {
  const f = await files(t);
  const server = await serve(t, f, 'host_key');
  const no = await terminal(t, f, server.port);
  let screen = await no.waitFor(/continue connecting \(yes\/no\/\[fingerprint\]\)\?/, 60_000);
  t.ok(screen.includes(server.fingerprint), 'the fingerprint is on the screen');
  t.match(screen, /authenticity of host '127\.0\.0\.1:\d+' can't be established/, 'with the question ssh asks');
  await no.line('no');
  screen = await no.waitFor(/Host key verification failed/, 20_000);
  t.ok(await waitDead(no), '"no": the client ends');
  t.notOk(existsSync(f.knownHosts), 'nothing pinned');

  const yes = await terminal(t, f, server.port);
  await yes.waitFor(/continue connecting/, 60_000);
  await yes.line('yes');
  await yes.waitFor(/user:\s*$/, 20_000);
  t.match(await readFile(f.knownHosts, 'utf8'), /^127\.0\.0\.1:\d+ ed25519 /m, '"yes": the key is pinned');
  await yes.line('ana');
  await yes.waitFor(/password:\s*$/);
  await yes.line('clave');
  await yes.waitFor(/>>>$/, 20_000);
  await yes.line('exit');
  t.ok(await waitDead(yes), 'the session works and ends');

  const later = await terminal(t, f, server.port);
  await later.waitFor(/user:\s*$/, 60_000);
  t.pass('the next time it is not asked');
});
