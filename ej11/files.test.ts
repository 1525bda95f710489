import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatBytes, progressBar, resolveInside } from './files.ts';

const base = realpathSync(mkdtempSync(path.join(tmpdir(), 'ej11-files-')));
const root = path.join(base, 'root');
mkdirSync(path.join(root, 'sub'), { recursive: true });
writeFileSync(path.join(root, 'a.txt'), 'a');
writeFileSync(path.join(root, 'sub', 'b.txt'), 'b');
writeFileSync(path.join(base, 'secret.txt'), 's');
symlinkSync(path.join(base, 'secret.txt'), path.join(root, 'link.txt'));
t.teardown(() => rmSync(base, { recursive: true, force: true }));

t.test('resolveInside() finds files in the folder and its subfolders', async (t) => {
  t.equal(resolveInside(root, 'a.txt'), path.join(root, 'a.txt'));
  t.equal(resolveInside(root, 'sub/b.txt'), path.join(root, 'sub', 'b.txt'));
  t.equal(resolveInside(root, 'sub/../a.txt'), path.join(root, 'a.txt'));
  t.equal(resolveInside(root, 'new.bin', { forWrite: true }), path.join(root, 'new.bin'));
});

t.test('resolveInside() refuses every way out of the folder', async (t) => {
  for (const name of ['../secret.txt', 'sub/../../secret.txt', path.join(base, 'secret.txt'), '/etc/passwd', 'link.txt', '', '.', 'a\0b', 'C:\\x', '..\\secret.txt']) {
    t.throws(() => resolveInside(root, name), { name: 'BadNameError' }, `refuses ${JSON.stringify(name)}`);
  }
  t.throws(() => resolveInside(root, 'missing/x.bin', { forWrite: true }), /no folder/);
  t.throws(() => resolveInside(root, 'missing.txt'), /no such file/);
});

t.test('formatBytes() and progressBar() say sizes in binary units', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(64 * 1024 * 1024), '64.0 MiB');
  t.match(progressBar(50, 100, 1, 10), /^\[#####\.\.\.\.\.\]  50%/);
  t.match(progressBar(0, 0, 0, 4), /\[####\] 100%/);
});
