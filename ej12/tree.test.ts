import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AGREGAR_ARCHIVO, ELIMINAR_ARCHIVO, MODIFICAR_ARCHIVO, PathError } from './protocol.ts';
import { applyChange, CommandError, diff, type Entry, manifest, parseManifest, putFile, readChangeData, resolveIn, runCommand, sha256 } from './tree.ts';

/** A temporary folder holding `root` (the shared tree) and `outside` (what must stay untouched). */
async function sandbox(t: Tap.Test): Promise<{ root: string; outside: string; base: string }> {
  const base = await realpath(await mkdtemp(path.join(tmpdir(), 'ej12-test-')));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const root = path.join(base, 'a', 'root');
  const outside = path.join(base, 'outside');
  await mkdir(root, { recursive: true });
  await mkdir(outside);
  await writeFile(path.join(outside, 'secret'), 'secret');
  return { root, outside, base };
}

const text = (s: string) => new TextEncoder().encode(s);

t.test('resolveIn() keeps every path inside the root and refuses symlinks', async (t) => {
  const { root, outside, base } = await sandbox(t);
  await mkdir(path.join(root, 'd'));
  await symlink(outside, path.join(root, 'link'));
  await symlink('/etc/passwd', path.join(root, 'd', 'passwd'));
  t.equal(await resolveIn(root, 'd/x'), path.join(root, 'd', 'x'));
  t.equal(await resolveIn(root, ''), root);
  for (const bad of ['../outside/secret', '../../x', '/etc/passwd', 'd/../../x']) await t.rejects(resolveIn(root, bad), PathError, bad);
  await t.rejects(resolveIn(root, 'link/secret'), PathError, 'a link to a folder outside');
  await t.rejects(resolveIn(root, 'link'), PathError, 'the link itself');
  await t.rejects(resolveIn(root, 'd/passwd'), PathError, 'a link to a file outside');
  await t.rejects(putFile(root, 'link/evil', text('x')), PathError, 'put through a link');
  await t.rejects(applyChange(root, { action: AGREGAR_ARCHIVO, path: '../evil', data: text('x') }), PathError, 'a replicated change with ..');
  await t.rejects(applyChange(root, { action: ELIMINAR_ARCHIVO, path: 'link/' }), PathError, 'deleting through a link');
  await t.rejects(runCommand(root, ['cat', 'link/secret']), PathError, 'cat through a link');
  t.notOk(existsSync(path.join(outside, 'evil')));
  t.notOk(existsSync(path.join(base, 'a', 'evil')));
  t.ok(existsSync(path.join(outside, 'secret')), 'nothing outside was removed');
});

t.test('manifest() lists directories and files with their SHA-256, parents first, links left out', async (t) => {
  const { root, outside } = await sandbox(t);
  await mkdir(path.join(root, 'b', 'c'), { recursive: true });
  await writeFile(path.join(root, 'b', 'c', 'f'), 'hello');
  await writeFile(path.join(root, 'a.txt'), '');
  await writeFile(path.join(root, 'b-x'), 'y');
  await symlink(outside, path.join(root, 'link'));
  t.same(await manifest(root), [
    { path: 'a.txt', type: 'file', sha256: sha256(new Uint8Array(0)) },
    { path: 'b', type: 'dir' },
    { path: 'b/c', type: 'dir' },
    { path: 'b/c/f', type: 'file', sha256: sha256(text('hello')) },
    { path: 'b-x', type: 'file', sha256: sha256(text('y')) },
  ]);
  t.equal(sha256(text('hello')), '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', 'SHA-256 of "hello"');
  const m = await manifest(root);
  t.same(parseManifest(JSON.stringify(m)), m, 'a manifest survives the wire');
  t.throws(() => parseManifest('[{"path":"../x","type":"dir"}]'), PathError);
  t.throws(() => parseManifest('[{"path":"x","type":"file","sha256":"zz"}]'), SyntaxError);
  t.throws(() => parseManifest('{'), SyntaxError);
});

t.test('diff() deletes the topmost extra, adds parents first, modifies what differs, and nothing for equal trees', async (t) => {
  const h = (s: string) => sha256(text(s));
  const master: Entry[] = [
    { path: 'd', type: 'dir' },
    { path: 'd/e', type: 'dir' },
    { path: 'd/e/f', type: 'file', sha256: h('1') },
    { path: 'same', type: 'file', sha256: h('s') },
    { path: 'changed', type: 'file', sha256: h('new') },
    { path: 'was-dir', type: 'file', sha256: h('w') },
  ];
  const replica: Entry[] = [
    { path: 'old', type: 'dir' },
    { path: 'old/x', type: 'file', sha256: h('x') },
    { path: 'same', type: 'file', sha256: h('s') },
    { path: 'changed', type: 'file', sha256: h('old') },
    { path: 'was-dir', type: 'dir' },
    { path: 'was-dir/y', type: 'file', sha256: h('y') },
  ];
  t.same(diff(master, replica), [
    { action: ELIMINAR_ARCHIVO, path: 'old/' },
    { action: ELIMINAR_ARCHIVO, path: 'was-dir/' },
    { action: AGREGAR_ARCHIVO, path: 'd/' },
    { action: AGREGAR_ARCHIVO, path: 'd/e/' },
    { action: MODIFICAR_ARCHIVO, path: 'changed' },
    { action: AGREGAR_ARCHIVO, path: 'd/e/f' },
    { action: AGREGAR_ARCHIVO, path: 'was-dir' },
  ]);
  t.same(diff(master, master), [], 'equal trees need nothing');
  t.same(diff([], replica).map((c) => c.path), ['changed', 'old/', 'same', 'was-dir/'], 'an empty master empties the replica');
});

t.test('applying the diff makes a replica identical to the master, whatever it held', async (t) => {
  const { root: master, base } = await sandbox(t);
  const replica = path.join(base, 'replica');
  await mkdir(path.join(master, 'd', 'e'), { recursive: true });
  await writeFile(path.join(master, 'd', 'e', 'f'), new Uint8Array([0, 255, 1]));
  await writeFile(path.join(master, 'x'), 'new');
  await writeFile(path.join(master, 'y'), 'file now');
  await mkdir(path.join(replica, 'junk', 'deep'), { recursive: true });
  await writeFile(path.join(replica, 'junk', 'deep', 'z'), 'z');
  await writeFile(path.join(replica, 'x'), 'old');
  await mkdir(path.join(replica, 'y'));
  await writeFile(path.join(replica, 'd'), 'a file where a dir belongs');
  const changes = diff(await manifest(master), await manifest(replica));
  for (const change of changes) {
    const data = await readChangeData(master, change);
    await applyChange(replica, { ...change, ...(data ? { data } : {}) });
  }
  t.same(await manifest(replica), await manifest(master), 'identical manifests');
  t.same(diff(await manifest(master), await manifest(replica)), []);
  for (const change of changes) {
    const data = await readChangeData(master, change);
    await applyChange(replica, { ...change, ...(data ? { data } : {}) });
  }
  t.same(await manifest(replica), await manifest(master), 'applying the same changes twice does no harm');
});

t.test('runCommand() runs the client commands and says what to replicate', async (t) => {
  const { root } = await sandbox(t);
  const out = async (argv: string[]) => new TextDecoder().decode((await runCommand(root, argv)).output);
  t.same((await runCommand(root, ['mkdir', 'docs'])).changes, [{ action: AGREGAR_ARCHIVO, path: 'docs/' }]);
  t.same((await putFile(root, 'docs/a', text('A'))).changes, [{ action: AGREGAR_ARCHIVO, path: 'docs/a', data: text('A') }]);
  t.equal((await putFile(root, 'docs/a', text('B'))).changes[0]?.action, MODIFICAR_ARCHIVO, 'a second put modifies');
  t.equal(await out(['ls', 'docs']), 'a\n');
  t.equal(await out(['cat', 'docs/a']), 'B');
  await runCommand(root, ['cp', 'docs/a', '']);
  t.equal(await readFile(path.join(root, 'a'), 'utf8'), 'B', 'cp into a directory keeps the name');
  const mv = await runCommand(root, ['mv', 'docs', 'moved']);
  t.same(mv.changes.map((c) => [c.action, c.path]), [[AGREGAR_ARCHIVO, 'moved/'], [AGREGAR_ARCHIVO, 'moved/a'], [ELIMINAR_ARCHIVO, 'docs/']]);
  t.equal(await out(['ls', '']), 'a\nmoved/\n');
  await t.rejects(runCommand(root, ['cat', 'nope']), { message: '/nope: No such file or directory' });
  await t.rejects(runCommand(root, ['cat', 'moved']), { message: '/moved: Is a directory' });
  await t.rejects(runCommand(root, ['cd', 'a']), { message: '/a: Not a directory' });
  await t.rejects(runCommand(root, ['rm', 'moved']), { message: /Is a directory \(use rm -r\)/ });
  await t.rejects(runCommand(root, ['mkdir', 'moved']), { message: '/moved: File exists' });
  await t.rejects(runCommand(root, ['mkdir', 'no/such']), { message: '/no: No such file or directory' });
  await t.rejects(runCommand(root, ['mv', 'moved', 'moved/inner']), CommandError);
  await t.rejects(runCommand(root, ['rm', '']), CommandError);
  await t.rejects(runCommand(root, ['frobnicate']), CommandError);
  t.same((await runCommand(root, ['rm', '-r', 'moved'])).changes, [{ action: ELIMINAR_ARCHIVO, path: 'moved/' }]);
  t.same((await runCommand(root, ['mkdir', '-p', 'p/q'])).changes, [{ action: AGREGAR_ARCHIVO, path: 'p/' }, { action: AGREGAR_ARCHIVO, path: 'p/q/' }]);
});
