import t from 'tap';
import { closeSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readSync, realpathSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkName, createInside, formatBytes, openInside, progressBar, quoteName } from './files.ts';

const base = realpathSync(mkdtempSync(path.join(tmpdir(), 'ej11-files-')));
const root = path.join(base, 'root');
mkdirSync(path.join(root, 'sub'), { recursive: true });
writeFileSync(path.join(root, 'a.txt'), 'a');
writeFileSync(path.join(root, 'sub', 'b.txt'), 'b');
writeFileSync(path.join(base, 'secret.txt'), 's');
writeFileSync(path.join(root, '..hidden'), 'h');
symlinkSync(path.join(base, 'secret.txt'), path.join(root, 'link.txt'));
symlinkSync('a.txt', path.join(root, 'inner-link.txt'));
mkdirSync(path.join(base, 'elsewhere'));
symlinkSync(path.join(base, 'elsewhere'), path.join(root, 'out'));
writeFileSync(path.join(base, 'elsewhere', 'secret.txt'), 's');
t.teardown(() => rmSync(base, { recursive: true, force: true }));

const read = (name: string) => {
  const { fd, size } = openInside(root, name);
  try {
    const buf = Buffer.alloc(size);
    readSync(fd, buf, 0, size, 0);
    return buf.toString();
  } finally {
    closeSync(fd);
  }
};

t.test('openInside() opens files in the folder and its subfolders, and names that only start with two dots', async (t) => {
  t.equal(read('a.txt'), 'a');
  t.equal(read('sub/b.txt'), 'b');
  t.equal(read('sub/../a.txt'), 'a');
  t.equal(read('..hidden'), 'h');
  t.equal(read('inner-link.txt'), 'a', 'a symbolic link that stays inside is followed');
  t.equal(checkName('..hidden'), '..hidden');
});

t.test('openInside() refuses every way out of the folder, folders, and what is missing', async (t) => {
  for (const name of ['../secret.txt', 'sub/../../secret.txt', path.join(base, 'secret.txt'), '/etc/passwd', 'link.txt', 'out/secret.txt', '', '.', '..', 'a\0b', 'C:\\x', '..\\secret.txt', 'sub', 'missing.txt']) {
    t.throws(() => openInside(root, name), { name: 'BadNameError' }, `refuses ${JSON.stringify(name)}`);
  }
  t.throws(() => openInside(root, 'sub'), /is a folder, not a file/);
  t.throws(() => openInside(root, 'missing.txt'), /no such file/);
});

t.test('quoteName() bounds what an error quotes of a name, and escapes control characters', async (t) => {
  t.equal(quoteName('a\0b'), "'a\\x00b'");
  const long = quoteName(`../${'€'.repeat(465)}`);
  t.ok(Buffer.byteLength(long) < 300, `a 1398-byte name is quoted in ${Buffer.byteLength(long)} bytes`);
  t.match(long, /…' \(1398 bytes\)$/);
});

t.test('createInside() writes under a random temporary name and renames into place', async (t) => {
  const upload = createInside(root, 'sub/new.bin');
  writeSync(upload.fd, 'new');
  const temps = readdirSync(path.join(root, 'sub')).filter((n) => n.startsWith('new.bin.part-'));
  t.equal(temps.length, 1, `one temporary file (${temps.join(', ')})`);
  t.match(temps[0], /^new\.bin\.part-[0-9a-f]{16}$/, 'its name ends in 64 random bits');
  upload.commit();
  upload.discard();
  t.equal(readFileSync(path.join(root, 'sub', 'new.bin'), 'utf8'), 'new');
  t.same(readdirSync(path.join(root, 'sub')).filter((n) => n.includes('.part-')), [], 'no temporary file left');
  const dropped = createInside(root, 'gone.bin');
  dropped.discard();
  t.notOk(existsSync(path.join(root, 'gone.bin')), 'discard() leaves nothing');
  t.throws(() => createInside(root, 'missing/x.bin'), /no folder/);
  t.throws(() => createInside(root, 'out/x.bin'), /leads outside/);
  t.throws(() => createInside(root, 'sub'), /is a folder/);
  t.throws(() => createInside(root, '../x.bin'), /outside the served folder/);
});

t.test('formatBytes() and progressBar() say sizes in binary units', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(64 * 1024 * 1024), '64.0 MiB');
  t.match(progressBar(50, 100, 1, 10), /^\[#####\.\.\.\.\.\]  50%/);
  t.match(progressBar(0, 0, 0, 4), /\[####\] 100%/);
});
