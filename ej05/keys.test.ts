import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import nacl from 'tweetnacl';
import { exitStatus } from './client.ts';
import { addUser, checkKnownHost, prepareFolder, checkUserName, loadOrCreateHostKey, LoginLimiter, lookupKnownHost, pinKnownHost, verifyPassword } from './keys.ts';
import { decodeMessage, encodeMessage, payloadJson, RUN } from './protocol.ts';
import { isPersistentCd } from './server.ts';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej05-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('loadOrCreateHostKey() creates a 0600 key once, then loads the same one', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'sub', 'host_key');
  await t.rejects(prepareFolder(file, 'the host key', { create: false }), { message: `Cannot write the host key ${file}: the folder ${path.join(dir, 'sub')} does not exist; create it first (mkdir -p ${path.join(dir, 'sub')}) or name a file in a folder that exists` }, 'a missing folder is refused, by name');
  t.equal(await prepareFolder(file, 'the host key', { create: true }), path.join(dir, 'sub'), 'or created when asked, and returned');
  t.equal((await stat(path.join(dir, 'sub'))).mode & 0o777, 0o700, 'mode 0700');
  t.equal(await prepareFolder(file, 'the host key', { create: false }), undefined, 'a folder that exists is left alone');
  const first = await loadOrCreateHostKey(file);
  t.ok(first.created);
  t.equal((await stat(file)).mode & 0o777, 0o600, 'mode 0600');
  const second = await loadOrCreateHostKey(file);
  t.notOk(second.created);
  t.same(second.keyPair.publicKey, first.keyPair.publicKey, 'the same key on the next start');
  await chmod(file, 0o640);
  await t.rejects(loadOrCreateHostKey(file), { name: 'UnprotectedKeyError', message: /Permissions 0640 for host key .* are too open.*chmod 600 / }, 'a key its group can read is refused');
  await chmod(file, 0o600);
  await writeFile(file, 'bm90IGEga2V5\n');
  await t.rejects(loadOrCreateHostKey(file), /expected a 64-byte Ed25519 secret key, found 9 bytes/);
});

t.test('checkKnownHost() pins on first use, accepts the same key, flags a changed one', async (t) => {
  const file = path.join(await tempDir(t), 'known_hosts');
  const key = nacl.sign.keyPair().publicKey;
  t.equal((await checkKnownHost(file, '127.0.0.1:5005', key)).status, 'added');
  t.equal((await checkKnownHost(file, '127.0.0.1:5005', key)).status, 'known');
  t.equal((await checkKnownHost(file, '127.0.0.1:5006', nacl.sign.keyPair().publicKey)).status, 'added', 'another port is another host');
  const changed = await checkKnownHost(file, '127.0.0.1:5005', nacl.sign.keyPair().publicKey);
  t.equal(changed.status, 'changed');
  t.match(changed, { line: 1, fingerprint: /^SHA256:/ });
  t.equal((await readFile(file, 'utf8')).trim().split('\n').length, 2, 'a changed key is not written over the pin');
});

t.test('addUser() stores a salted scrypt hash; verifyPassword() checks it', async (t) => {
  const file = path.join(await tempDir(t), 'users');
  t.equal(await addUser(file, 'nahuel', '1234'), 'added');
  t.equal(await addUser(file, 'ana', 'clave'), 'added');
  const text = await readFile(file, 'utf8');
  t.notMatch(text, /1234|clave/, 'no password in the file');
  t.equal((await stat(file)).mode & 0o777, 0o600);
  t.ok(await verifyPassword(file, 'nahuel', '1234'));
  t.notOk(await verifyPassword(file, 'nahuel', '12345'));
  t.notOk(await verifyPassword(file, 'ana', '1234'), "another user's password does not work");
  t.notOk(await verifyPassword(file, 'nobody', '1234'), 'an unknown user is refused');
  t.equal(await addUser(file, 'nahuel', 'nueva'), 'replaced');
  t.notOk(await verifyPassword(file, 'nahuel', '1234'), 'the old password no longer works');
  t.ok(await verifyPassword(file, 'nahuel', 'nueva'));
  await t.rejects(addUser(file, 'x', ''), /empty password/);
  t.throws(() => checkUserName('a b'), /Invalid user name 'a b'/);
  t.throws(() => checkUserName('x:y'), TypeError);
});

t.test('LoginLimiter refuses an address after N failures in the window, and forgets them after', async (t) => {
  let now = 1_000_000;
  const limiter = new LoginLimiter({ maxFailures: 3, windowMs: 60_000, now: () => now });
  for (let i = 0; i < 2; i++) limiter.fail('10.0.0.1');
  t.equal(limiter.blockedFor('10.0.0.1'), 0, 'two failures: still allowed');
  now += 10_000;
  limiter.fail('10.0.0.1');
  t.equal(limiter.blockedFor('10.0.0.1'), 50_000, 'three failures: blocked until the first leaves the window');
  t.equal(limiter.blockedFor('10.0.0.2'), 0, 'another address is not affected');
  now += 50_001;
  t.equal(limiter.blockedFor('10.0.0.1'), 0, 'allowed again once the oldest failure is a minute old');
  t.equal(limiter.failures('10.0.0.1'), 1);
});

t.test('isPersistentCd() takes a lone cd, not one chained with other commands', async (t) => {
  for (const cd of ['cd', 'cd /tmp', '  cd "mi carpeta"', 'cd ~', 'cd $HOME']) t.ok(isPersistentCd(cd), cd);
  for (const other of ['cdx', 'cd /tmp; ls', 'cd a && ls', 'cd a | cat', 'echo cd', 'cd a\nls']) t.notOk(isPersistentCd(other), JSON.stringify(other));
});

t.test('messages round-trip; exit statuses read as a shell does', async (t) => {
  const { type, payload } = decodeMessage(encodeMessage(RUN, 'ls -la'));
  t.equal(type, RUN);
  t.equal(new TextDecoder().decode(payload), 'ls -la');
  t.same(payloadJson(decodeMessage(encodeMessage(0x15, { code: 2 })).payload), { code: 2 });
  t.throws(() => decodeMessage(new Uint8Array(0)), SyntaxError);
  t.throws(() => payloadJson(new TextEncoder().encode('[1]')), /JSON object/);
  t.equal(exitStatus(0, null), 0);
  t.equal(exitStatus(null, 'SIGINT'), 130);
  t.equal(exitStatus(null, 'SIGKILL'), 137);
});

t.test('LoginLimiter.begin() counts a login before it is checked; succeeded() takes it back', async (t) => {
  const limiter = new LoginLimiter({ maxFailures: 2, windowMs: 60_000, now: () => 1_000_000 });
  const first = limiter.begin('10.0.0.1');
  const second = limiter.begin('10.0.0.1');
  t.same([first.blockedMs, second.blockedMs], [0, 0], 'two logins may start');
  t.ok(limiter.begin('10.0.0.1').blockedMs > 0, 'a third, while both are still being checked, is refused');
  first.succeeded();
  t.equal(limiter.failures('10.0.0.1'), 1, 'a success no longer counts');
  t.equal(limiter.begin('10.0.0.1').blockedMs, 0, 'so one more may start');
});

t.test('lookupKnownHost() matches a key under any of its names: a second name is no first use, another key under either is a change', async (t) => {
  const file = path.join(await tempDir(t), 'known_hosts');
  const key = nacl.sign.keyPair().publicKey;
  t.equal((await lookupKnownHost(file, ['localhost:5005', '127.0.0.1:5005'], key)).status, 'unknown', 'nothing pinned: a first use');
  await pinKnownHost(file, ['127.0.0.1:5005'], key);
  t.match(await lookupKnownHost(file, ['localhost:5005', '127.0.0.1:5005'], key), { status: 'known', missing: ['localhost:5005'] }, 'known by its address: the name is only missing');
  await pinKnownHost(file, ['localhost:5005'], key);
  t.match(await lookupKnownHost(file, ['localhost:5005', '127.0.0.1:5005'], key), { status: 'known', missing: [] });
  const other = nacl.sign.keyPair().publicKey;
  t.match(await lookupKnownHost(file, ['localhost:5005', '127.0.0.2:5005'], other), { status: 'changed', name: 'localhost:5005', line: 2 }, 'the name on a new address with another key: changed');
  t.match(await lookupKnownHost(file, ['otro:5005', '127.0.0.1:5005'], other), { status: 'changed', name: '127.0.0.1:5005' }, 'a new name for a pinned address with another key: changed');
  await pinKnownHost(file, ['server:22', '10.0.0.1:22'], key);
  t.match((await readFile(file, 'utf8')).trim().split('\n').at(-1), /^server:22,10\.0\.0\.1:22 ed25519 /, 'both names on one line, as ssh writes them');
});
