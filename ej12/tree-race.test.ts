import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { link, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AGREGAR_ARCHIVO } from './protocol.ts';
import { applyChange, manifest, putFile, runCommand, sha256 } from './tree.ts';

const text = (s: string) => new TextEncoder().encode(s);

/** A root, a folder outside it holding `secret`, and staging names (outside the root, same file system) for the swapper. */
async function sandbox(t: Tap.Test) {
  const base = await realpath(await mkdtemp(path.join(tmpdir(), 'ej12-race-')));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await writeFile(path.join(outside, 'secret'), 'SECRET');
  return { base, root, outside };
}

/**
 * Starts a separate process that keeps swapping `root/d` between a real
 * directory (holding `secret` = "inside") and a symbolic link to `outside`,
 * as fast as it can: the attacker of a check-then-open. Stopped by teardown.
 */
async function swapper(t: Tap.Test, base: string, root: string, outside: string) {
  const real = path.join(base, 'stage-real');
  const fake = path.join(base, 'stage-link');
  await mkdir(real);
  await writeFile(path.join(real, 'secret'), 'inside');
  await symlink(outside, fake);
  const slot = path.join(root, 'd');
  const code = `
    const fs = require('node:fs');
    const [real, fake, slot] = process.argv.slice(1);
    const end = Date.now() + 60000;
    for (;;) {
      if (Date.now() > end) break;
      for (const from of [real, fake]) {
        try { fs.renameSync(from, slot); fs.renameSync(slot, from); } catch {}
      }
      // Both staged: whatever holds the slot was made by the code under test (mkdir -p, say); clear it.
      try {
        if (fs.existsSync(real) && fs.lstatSync(fake) && fs.lstatSync(slot).isDirectory()) fs.rmSync(slot, { recursive: true, force: true });
      } catch {}
    }`;
  const child = spawn(process.execPath, ['-e', code, real, fake, slot], { stdio: 'ignore' });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return child;
}

/** Runs `attempt` up to `tries` times or for `ms`, whichever ends first. */
async function repeat(tries: number, ms: number, attempt: () => Promise<void>) {
  const end = Date.now() + ms;
  for (let i = 0; i < tries && Date.now() < end; i++) await attempt();
}

t.test('a symlink swapped in after the check cannot make cat, get or the manifest read a file outside the root', async (t) => {
  const { base, root, outside } = await sandbox(t);
  await swapper(t, base, root, outside);
  let leaks = 0;
  let reads = 0;
  await repeat(3000, 10_000, async () => {
    for (const cmd of ['cat', 'get']) {
      try {
        const out = new TextDecoder().decode((await runCommand(root, [cmd, 'd/secret'])).output);
        if (out === 'SECRET') leaks++;
        else if (out === 'inside') reads++;
      } catch {
        // refused or not there at that instant: what a race should give
      }
    }
  });
  await repeat(300, 5_000, async () => {
    try {
      const entries = await manifest(root);
      // The outside secret's hash appearing under d/ would mean the walk followed the link.
      if (entries.some((e) => e.path === 'd/secret' && e.sha256 === sha256(text('SECRET')))) leaks++;
    } catch {
      // a directory vanished mid-walk
    }
  });
  t.equal(leaks, 0, `no read returned the outside file's contents (${leaks} did; ${reads} reads got the inside file)`);
});

t.test('a symlink swapped in after the check cannot make put, a replicated change or mkdir write outside the root', async (t) => {
  const { base, root, outside } = await sandbox(t);
  await swapper(t, base, root, outside);
  let wrote = 0;
  const ok = () => void wrote++;
  await repeat(3000, 6_000, async () => {
    await putFile(root, 'd/secret', text('EVIL')).then(ok, () => {});
    await putFile(root, 'd/new-by-put', text('EVIL')).then(ok, () => {});
  });
  await repeat(3000, 3_000, () => runCommand(root, ['mkdir', 'd/made']).then(ok, () => {}));
  await repeat(3000, 3_000, () => applyChange(root, { action: AGREGAR_ARCHIVO, path: 'd/new-by-change', data: text('EVIL') }).then(ok, () => {}));
  t.comment(`${wrote} writes succeeded inside the root`);
  t.equal(await readFile(path.join(outside, 'secret'), 'utf8'), 'SECRET', 'the file outside was not overwritten');
  t.same((await readdir(outside)).sort(), ['secret'], 'nothing was created outside');
});

t.test('put writes through a temporary file with a random name created O_EXCL, then renames it', async (t) => {
  const { root, outside } = await sandbox(t);
  await writeFile(path.join(root, 'f'), 'old');
  const before = await stat(path.join(root, 'f'));
  // A hard link to a file outside: writing in place would change that file too.
  await link(path.join(outside, 'secret'), path.join(root, 'hard'));
  const seen = new Set<string>();
  const watcher = watch(root, (_event, name) => {
    if (name) seen.add(String(name));
  });
  t.teardown(() => watcher.close());
  await putFile(root, 'f', text('new contents'));
  await putFile(root, 'hard', text('EVIL'));
  // The watcher's events arrive asynchronously: wait (bounded) until both temporaries have been seen.
  const temporariesSeen = () => [...seen].filter((n) => n !== 'f' && n !== 'hard').length;
  for (let waited = 0; temporariesSeen() < 2 && waited < 5000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
  const after = await stat(path.join(root, 'f'));
  t.equal(await readFile(path.join(root, 'f'), 'utf8'), 'new contents');
  t.not(after.ino, before.ino, 'the file was replaced by a new inode (a rename), not rewritten in place');
  t.equal(await readFile(path.join(outside, 'secret'), 'utf8'), 'SECRET', 'a hard link to a file outside is replaced, not written through');
  const temporaries = [...seen].filter((n) => n !== 'f' && n !== 'hard');
  t.ok(temporaries.length >= 2, `temporary names were used (${temporaries.join(', ')})`);
  t.ok(temporaries.every((n) => /^\.ej12-[0-9a-f]{32}\.tmp$/.test(n)), 'each a random 128-bit name');
  t.notOk(temporaries.some((n) => existsSync(path.join(root, n))), 'none is left behind');
  t.same((await readdir(root)).sort(), ['f', 'hard']);
});

t.test('traversal strings (encoded, overlong, backslash, NUL, symlinks) never reach outside the root, for reads and writes', async (t) => {
  const { base, root, outside } = await sandbox(t);
  await mkdir(path.join(root, 'd'));
  await symlink(outside, path.join(root, 'link'));
  await symlink(path.join(outside, 'secret'), path.join(root, 'd', 'secret-link'));
  const strings = [
    '../secret', '../outside/secret', '../../etc/passwd', '/etc/passwd', '//etc/passwd', 'd/../../outside/secret',
    '..\\outside\\secret', 'd\\..\\..\\outside\\secret', '%2e%2e/outside/secret', '%2e%2e%2foutside%2fsecret', '..%2foutside%2fsecret',
    '..%252foutside%252fsecret', '%c0%ae%c0%ae/outside/secret', '\u00c0\u00ae\u00c0\u00ae/outside/secret', '..%c0%afoutside%c0%afsecret',
    '..%5coutside%5csecret', '\uff0e\uff0e/outside/secret', '....//outside/secret', '..;/outside/secret', './../outside/secret',
    'd/./../../outside/secret', 'd//../../outside/secret', 'd/secret\u0000', 'secret\u0000.txt', '..\u0000/outside/secret',
    'link/secret', 'link', 'link/', 'd/secret-link', 'link/../secret', 'd/../link/secret', 'C:\\outside\\secret',
    '\\\\host\\share\\secret', 'd/', '', '.',
  ];
  t.equal(strings.length, 36);
  const data = text('EVIL');
  let readOutside = 0;
  for (const s of strings) {
    for (const cmd of ['cat', 'get', 'ls', 'cd']) {
      const out = await runCommand(root, [cmd, s]).then((o) => new TextDecoder().decode(o.output), () => '');
      if (out.includes('SECRET')) readOutside++;
    }
    await putFile(root, s, data).catch(() => {});
    await applyChange(root, { action: AGREGAR_ARCHIVO, path: s, data }).catch(() => {});
    await runCommand(root, ['mkdir', '-p', s]).catch(() => {});
    await runCommand(root, ['cp', s, 'copied']).catch(() => {});
  }
  t.equal(readOutside, 0, 'nothing outside was read');
  t.equal(await readFile(path.join(outside, 'secret'), 'utf8'), 'SECRET', 'the outside file is intact');
  t.same(await readdir(outside), ['secret'], 'nothing was created outside');
  t.same((await readdir(base)).sort(), ['outside', 'root'], 'nothing was created beside the root');
});
