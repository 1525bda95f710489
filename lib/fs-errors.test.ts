import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { fsReason } from './fs-errors.ts';

/** The error a real file-system call gives. */
async function errorOf(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

t.test('fsReason puts the kernel codes of real failures in words, by what was expected', async (t) => {
  const dir = t.testdir({ 'a-file': 'x', 'a-folder': {} });
  const file = path.join(dir, 'a-file');
  const folder = path.join(dir, 'a-folder');
  t.equal(fsReason(await errorOf(() => readFile(path.join(dir, 'missing'))), 'file'), 'no such file');
  t.equal(fsReason(await errorOf(() => readFile(path.join(dir, 'missing'))), 'folder'), 'no such folder');
  t.equal(fsReason(await errorOf(() => readFile(folder)), 'file'), 'it is a folder, not a file');
  t.equal(fsReason(await errorOf(() => mkdir(file, { recursive: true })), 'folder'), 'a file of that name is there, not a folder');
  t.equal(fsReason(await errorOf(() => writeFile(path.join(file, 'x'), '')), 'file'), 'a part of its path is not a folder');
  t.equal(fsReason(await errorOf(() => open(file, 'wx')), 'file'), 'it exists already');
});

t.test('fsReason gives the message of an error it has no words for', async (t) => {
  t.equal(fsReason(new Error('something odd'), 'file'), 'something odd');
  t.equal(fsReason(Object.assign(new Error('EWEIRD: weird'), { code: 'EWEIRD' }), 'folder'), 'EWEIRD: weird');
});
