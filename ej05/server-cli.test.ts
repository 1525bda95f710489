import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import nacl from 'tweetnacl';
import util from 'tweetnacl-util';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';
import { Attacker } from './fixtures/attacker.ts';
import { addUser } from './keys.ts';
import * as P from './protocol.ts';

/** A folder with a users file (ana/clave), a host key file path and a log path; nothing started. */
async function files(t: Test) {
  const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'ej05-cli-')));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const users = path.join(dir, 'users');
  await addUser(users, 'ana', 'clave');
  return { dir, users, hostKey: path.join(dir, 'host_key'), log: path.join(dir, 'session.log') };
}

/** Starts server.ts under tsx on a free port and waits for its ready line. */
async function serve(t: Test, args: string[]) {
  const child = new Child(tsx('ej05/server.ts', '--port', '0', '--fail-delay', '0.05', ...args));
  t.teardown(() => child.kill());
  const port = await child.ready(60_000);
  return { child, port };
}

function attacker(t: Test, port: number): Attacker {
  const a = new Attacker(port);
  t.teardown(() => a.socket.destroy());
  return a;
}

t.test('--login-grace: a connection that has not logged in by then is closed, and cannot log in afterwards', async (t) => {
  const f = await files(t);
  const { child, port } = await serve(t, ['--users', f.users, '--host-key', f.hostKey, '--log', f.log, '--login-grace', '1']);
  const a = attacker(t, port);
  await a.ready;
  await a.ended;
  t.pass('the server ends the connection at the deadline');
  await child.waitFor(/no login within 1 s: closing/, 30_000, 'stderr');
  a.send(P.LOGIN, { user: 'ana', password: 'clave' });
  await child.waitFor(/disconnected|session closed/, 30_000, 'stderr');
  t.notOk(a.messages.some((m) => m.type === P.WELCOME), 'no WELCOME');
  t.notMatch(child.stderr, /login ok/, 'the late login was never checked');
});

t.test('a host key others can read is refused, with how to fix it', async (t) => {
  const f = await files(t);
  await writeFile(f.hostKey, `${util.encodeBase64(nacl.sign.keyPair().secretKey)}\n`);
  await chmod(f.hostKey, 0o644);
  const result = await run(tsx('ej05/server.ts', '--port', '0', '--users', f.users, '--host-key', f.hostKey));
  t.equal(result.code, 1, 'the server does not start');
  t.match(result.stderr, `chmod 600 ${f.hostKey}`, 'it says how to fix it');
  t.match(result.stderr, /644/, 'and names the mode');
  t.notMatch(result.stderr, /^\s+at /m, 'no stack trace');
  t.notMatch(result.stdout, /listening on/, 'it never listened');
});

t.test('the session log is forced to mode 0600, and a failed login never logs the user field verbatim', async (t) => {
  const f = await files(t);
  await writeFile(f.log, 'an older line\n');
  await chmod(f.log, 0o644);
  const { child, port } = await serve(t, ['--users', f.users, '--host-key', f.hostKey, '--log', f.log]);
  t.equal((await stat(f.log)).mode & 0o777, 0o600, 'the existing log, mode 644, is now 600');
  t.match(child.stderr, /was mode 644: made it 600/, 'and the server says so');
  // A password typed one line too early, in the user field.
  const typedAsUser = 'S3cr3t-typed-as-user';
  const a = attacker(t, port);
  await a.ready;
  a.send(P.LOGIN, { user: typedAsUser, password: 'x' });
  t.equal((await a.message(0))?.type, P.DENIED, 'the login is denied');
  a.send(P.LOGIN, { user: 'ana', password: 'wrong' });
  t.equal((await a.message(1))?.type, P.DENIED, 'so is a wrong password for a real user');
  await child.waitFor(/login failed: user ana/, 30_000, 'stderr');
  const log = await readFile(f.log, 'utf8');
  t.notOk(log.includes(typedAsUser), 'the user field of the failed login is not in the log');
  t.notOk(child.stderr.includes(typedAsUser), 'nor on the server\'s stderr');
  t.match(log, /login failed: an unknown user name \(20 characters, not logged\)/, 'the log says an unknown name was tried');
  t.match(log, /login failed: user ana/, 'a user that exists is named');
  t.match(log, /^an older line$/m, 'the older lines are kept');
});

t.test('--add-user refuses a --users file in a folder that does not exist, naming the folder, and creates nothing', async (t) => {
  const f = await files(t);
  const missing = path.join(f.dir, 'no', 'such');
  const result = await run(tsx('ej05/server.ts', '--add-user', 'bea', '--users', path.join(missing, 'users')), { input: 'pw\n' });
  t.equal(result.code, 1, `exit 1 (stdout ${JSON.stringify(result.stdout)})`);
  t.match(result.stderr, `the folder ${missing} does not exist`, 'the sentence names the missing folder');
  t.match(result.stderr, `mkdir -p ${missing}`, 'and says how to make it');
  t.equal(result.stderr.trim().split('\n').length, 1, 'one line');
  t.notMatch(result.stderr, /^\s+at /m, 'no stack trace');
  t.notOk(existsSync(path.join(f.dir, 'no')), 'no folder was created');
});

t.test('--add-user with --users naming a folder says so in one sentence (was EISDIR and a stack trace)', async (t) => {
  const f = await files(t);
  const result = await run(tsx('ej05/server.ts', '--add-user', 'bea', '--users', f.dir), { input: 'pw\n' });
  t.equal(result.code, 1, 'exit 1');
  t.match(result.stderr, `${f.dir} is a folder`, 'names the input and what is wrong');
  t.notMatch(result.stderr, /^\s+at |internal error/m, 'no stack trace');
});

t.test('--add-user with the default --users creates ~/.ej05 (mode 700) and says so, as ssh creates ~/.ssh', async (t) => {
  const f = await files(t);
  const child = new Child(tsx('ej05/server.ts', '--add-user', 'bea'), { input: 'pw\n', env: { HOME: f.dir } });
  t.teardown(() => child.kill());
  const result = await child.exited;
  const folder = path.join(f.dir, '.ej05');
  t.equal(result.code, 0, `exit 0 (${result.stderr.trim()})`);
  t.equal((await stat(folder)).mode & 0o777, 0o700, 'the folder is mode 700');
  t.match(result.stdout, `Created folder ${folder}`, 'the creation is said');
  t.match(result.stdout, `Added user bea in ${path.join(folder, 'users')}`, 'and the user added');
});

t.test('a server with no users warns on stderr with the command that adds one; one with users does not', async (t) => {
  const f = await files(t);
  const empty = path.join(f.dir, 'nobody');
  const { child } = await serve(t, ['--users', empty, '--host-key', f.hostKey]);
  const [line] = await child.waitFor(/.*no users.*/, 30_000, 'stderr');
  t.match(line, `--add-user NAME --users ${empty}`, `the warning names the command (${line})`);
  t.match(line, /ej05\/server\.ts --add-user/, 'with the script to run');
  const withUsers = await serve(t, ['--users', f.users, '--host-key', f.hostKey]);
  await withUsers.child.waitFor(/host key/, 30_000, 'stderr');
  t.notMatch(withUsers.child.stderr, /no users/, 'a users file with ana: no warning');
});

t.test('-h lists the exit statuses', async (t) => {
  const result = await run(tsx('ej05/server.ts', '-h'));
  t.equal(result.code, 0);
  t.match(result.stdout, /^Exit status: 0 .*, 1 .*, 2 bad usage, 130 /m, `one "Exit status:" line (${result.stdout.split('\n').at(-2)})`);
});
