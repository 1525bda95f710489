/**
 * File operations confined to a root without a check-then-open race (ej12).
 *
 * Checking a path (`lstat` every component, refuse symbolic links) and then
 * opening it by name leaves a window: a link swapped in between the two makes
 * the open land outside the root. So nothing here opens a path by name from
 * the root. Every operation walks from a descriptor of the root, one
 * component at a time, each opened with `O_NOFOLLOW` relative to the
 * descriptor of its parent (through Linux's `/proc/self/fd/N/NAME`, which is
 * `openat(N, NAME)` for a runtime that has no `openat`), and then checks what
 * it actually opened: `fstat` for its type and `/proc/self/fd/N` for its real
 * path, which must be the path asked for under the root. A file is written
 * to a temporary name created `O_CREAT | O_EXCL | O_NOFOLLOW` with a random
 * name in the target's (verified) directory and renamed over the target, so a
 * link or a hard link at the target is replaced, never written through, and
 * a reader never sees a half-written file.
 *
 * Linux only: {@link checkConfinementSupport} says so when `/proc/self/fd` is
 * missing.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, readlink, rename, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { displayPath, PathError } from './protocol.ts';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
// O_NONBLOCK: opening a FIFO planted in the tree must not hang the server; fstat then refuses it.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Names of the temporary files a write goes through; listings and manifests leave them out. */
export const TEMP_NAME = /^\.ej12-[0-9a-f]{32}\.tmp$/;

/** A file-system error with the errno-style code callers branch on (ENOENT, ENOTDIR, EISDIR, EEXIST, EINVAL). */
export class TreeError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'TreeError';
    this.code = code;
  }
}

const codeOf = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;

function linkRefused(bare: string): PathError {
  return new PathError(`${displayPath(bare)}: goes through a symbolic link, which is refused (it could lead outside the shared directory)`);
}

/** The path the kernel has for an open descriptor. */
function procPath(handle: FileHandle): string {
  return `/proc/self/fd/${handle.fd}`;
}

/** A directory of the tree held open by descriptor; names inside it are reached relative to it. */
class Dir {
  readonly handle: FileHandle;
  constructor(handle: FileHandle) {
    this.handle = handle;
  }
  /** The directory itself, by descriptor. */
  get path(): string {
    return procPath(this.handle);
  }
  /** `name` inside this directory, whatever happens to the path that led here. */
  at(name: string): string {
    return `${this.path}/${name}`;
  }
  close(): Promise<void> {
    return this.handle.close().catch(() => {});
  }
}

/** Checks that what `handle` holds is really `expected` (a real path under the root). */
async function verify(handle: FileHandle, expected: string, bare: string): Promise<void> {
  const real = await readlink(procPath(handle));
  if (real !== expected) throw new PathError(`${displayPath(bare)}: what was opened is not that path (it is ${real}); refused`);
}

/**
 * Says why paths cannot be confined here, or nothing: the confinement needs
 * Linux's `/proc/self/fd`, where an open descriptor's real path can be read
 * and names opened relative to it.
 */
export async function checkConfinementSupport(root: string): Promise<void> {
  const dir = await openDir(root, []).catch((error: Error) => {
    if (codeOf(error) === 'ENOENT' && error.message.includes('/proc/self/fd')) {
      throw new Error('confining paths needs /proc/self/fd (Linux); it is not available here');
    }
    throw error;
  });
  await dir.close();
}

/** How {@link openDir} treats a missing component or a file in the way. */
type Create = 'no' | 'missing' | 'replace';

/**
 * Opens the directory `segments` (already checked wire-path segments) under
 * `root`, component by component with `O_NOFOLLOW`, each relative to its
 * parent's descriptor, then checks its real path. A symbolic link anywhere is
 * a {@link PathError}; a missing component is ENOENT (made with `missing` or
 * `replace`), a file in the way ENOTDIR (replaced by a directory with
 * `replace`).
 */
async function openDir(root: string, segments: readonly string[], create: Create = 'no'): Promise<Dir> {
  let dir: Dir;
  try {
    dir = new Dir(await open(root, DIR_FLAGS));
  } catch (error) {
    if (codeOf(error) === 'ELOOP') throw new PathError(`the shared directory ${root} is a symbolic link`);
    throw error;
  }
  try {
    await verify(dir.handle, root, '');
    for (const [i, segment] of segments.entries()) {
      const bare = segments.slice(0, i + 1).join('/');
      let child: FileHandle | undefined;
      for (let attempt = 0; child === undefined; attempt++) {
        try {
          child = await open(dir.at(segment), DIR_FLAGS);
        } catch (error) {
          const code = codeOf(error);
          if (attempt >= 3 || (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP')) throw error;
          const st = await lstat(dir.at(segment)).catch(() => undefined);
          if (st?.isSymbolicLink()) throw linkRefused(bare);
          if (st === undefined) {
            if (create === 'no') throw new TreeError('ENOENT', `${displayPath(bare)}: No such file or directory`);
            await mkdir(dir.at(segment)).catch((e: unknown) => {
              if (codeOf(e) !== 'EEXIST') throw e;
            });
          } else if (!st.isDirectory()) {
            if (create !== 'replace') throw new TreeError('ENOTDIR', `${displayPath(bare)}: Not a directory`);
            await unlink(dir.at(segment));
          }
          // and try again: what is there now is opened the same careful way
        }
      }
      await dir.close();
      dir = new Dir(child);
    }
    await verify(dir.handle, path.join(root, ...segments), segments.join('/'));
    return dir;
  } catch (error) {
    await dir.close();
    throw error;
  }
}

/** Splits a checked bare wire path into its parent's segments and its name. */
function split(bare: string): { parent: string[]; name: string } {
  const parts = bare.split('/');
  const name = parts.pop() as string;
  return { parent: parts, name };
}

/** Runs `task` with the parent directory of `bare` open. */
async function inParent<T>(root: string, bare: string, create: Create, task: (dir: Dir, name: string) => Promise<T>): Promise<T> {
  const { parent, name } = split(bare);
  const dir = await openDir(root, parent, create);
  try {
    return await task(dir, name);
  } finally {
    await dir.close();
  }
}

/** What a path is: 'dir', 'file', 'other' (a FIFO, a device…), or undefined when it is not there. */
export type Kind = 'dir' | 'file' | 'other' | undefined;

/**
 * The kind of `bare` (a checked wire path without its trailing `/`) under
 * `root`; a {@link PathError} when it, or a directory on the way, is a
 * symbolic link. A missing parent, or a file where a parent should be, makes
 * it undefined.
 */
export async function kindOf(root: string, bare: string): Promise<Kind> {
  if (bare === '') return 'dir';
  try {
    return await inParent(root, bare, 'no', async (dir, name) => {
      const st = await lstat(dir.at(name)).catch((error: unknown) => {
        if (codeOf(error) === 'ENOENT' || codeOf(error) === 'ENOTDIR') return undefined;
        throw error;
      });
      if (st === undefined) return undefined;
      if (st.isSymbolicLink()) throw linkRefused(bare);
      return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    });
  } catch (error) {
    if (error instanceof TreeError && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) return undefined;
    throw error;
  }
}

/** Opens the regular file `bare` for reading and checks it is what was asked for. */
async function openFile(dir: Dir, name: string, expected: string, bare: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(dir.at(name), READ_FLAGS);
  } catch (error) {
    if (codeOf(error) === 'ELOOP') throw linkRefused(bare);
    if (codeOf(error) === 'ENOENT') throw new TreeError('ENOENT', `${displayPath(bare)}: No such file or directory`);
    throw error;
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw new TreeError('EISDIR', `${displayPath(bare)}: Is a directory`);
    if (!st.isFile()) throw new TreeError('EINVAL', `${displayPath(bare)}: not a regular file`);
    await verify(handle, expected, bare);
    return handle;
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

/** The bytes of the regular file `bare`, read from the file actually opened (see the module comment). */
export async function readFileIn(root: string, bare: string): Promise<Uint8Array> {
  if (bare === '') throw new TreeError('EISDIR', '/: Is a directory');
  return inParent(root, bare, 'no', async (dir, name) => {
    const handle = await openFile(dir, name, path.join(root, bare), bare);
    try {
      return new Uint8Array(await handle.readFile());
    } finally {
      await handle.close().catch(() => {});
    }
  });
}

/** Options of {@link writeFileIn}. */
export interface WriteOptions {
  /** Make missing parents (`missing`), also replacing files in the way (`replace`), or neither (`no`, the default). */
  parents?: Create;
}

/**
 * Writes `data` as the file `bare`: to a temporary file with a random name
 * created `O_EXCL` in its (verified) directory, then renamed over `bare`, so
 * whatever was at `bare` (a file, a link, a hard link to a file elsewhere) is
 * replaced, never written through. A directory at `bare` is EISDIR.
 */
export async function writeFileIn(root: string, bare: string, data: Uint8Array, { parents = 'no' }: WriteOptions = {}): Promise<void> {
  if (bare === '') throw new TreeError('EISDIR', '/: Is a directory');
  await inParent(root, bare, parents, async (dir, name) => {
    const temporary = `.ej12-${randomBytes(16).toString('hex')}.tmp`;
    const handle = await open(dir.at(temporary), TEMP_FLAGS, 0o666);
    try {
      try {
        await handle.writeFile(data);
      } finally {
        await handle.close();
      }
      const st = await lstat(dir.at(name)).catch(() => undefined);
      if (st?.isDirectory()) throw new TreeError('EISDIR', `${displayPath(bare)}: Is a directory`);
      await rename(dir.at(temporary), dir.at(name));
    } catch (error) {
      await unlink(dir.at(temporary)).catch(() => {});
      throw error;
    }
  });
}

/** Makes the directory `bare` (EEXIST if something is there); `parents` as in {@link writeFileIn}. */
export async function mkdirIn(root: string, bare: string, { parents = 'no' }: WriteOptions = {}): Promise<void> {
  await inParent(root, bare, parents, async (dir, name) => {
    try {
      await mkdir(dir.at(name));
    } catch (error) {
      if (codeOf(error) === 'EEXIST') throw new TreeError('EEXIST', `${displayPath(bare)}: File exists`);
      throw error;
    }
  });
}

/** Removes `name` of `dir` and, for a directory, everything in it, each step relative to a descriptor. */
async function removeEntry(dir: Dir, name: string): Promise<void> {
  const st = await lstat(dir.at(name)).catch(() => undefined);
  if (st === undefined) return;
  if (!st.isDirectory()) {
    // A link is removed itself; its target is never touched.
    await unlink(dir.at(name)).catch((error: unknown) => {
      if (codeOf(error) !== 'ENOENT') throw error;
    });
    return;
  }
  let child: Dir;
  try {
    child = new Dir(await open(dir.at(name), DIR_FLAGS));
  } catch (error) {
    // Swapped for something else since the lstat: remove that, as what it is now.
    if (codeOf(error) === 'ELOOP' || codeOf(error) === 'ENOTDIR') return removeEntry(dir, name);
    if (codeOf(error) === 'ENOENT') return;
    throw error;
  }
  try {
    for (const entry of await readdir(child.path)) await removeEntry(child, entry);
  } finally {
    await child.close();
  }
  await rmdir(dir.at(name)).catch((error: unknown) => {
    if (codeOf(error) !== 'ENOENT') throw error;
  });
}

/** Removes `bare` (a whole directory with its contents); nothing there is not an error. */
export async function removeIn(root: string, bare: string): Promise<void> {
  if (bare === '') throw new PathError('the shared directory itself cannot be removed');
  try {
    await inParent(root, bare, 'no', (dir, name) => removeEntry(dir, name));
  } catch (error) {
    if (error instanceof TreeError && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) return;
    throw error;
  }
}

/** Renames `from` to `to` (both checked bare wire paths), each relative to its verified parent. */
export async function renameIn(root: string, from: string, to: string): Promise<void> {
  await inParent(root, from, 'no', (a, fromName) => inParent(root, to, 'no', (b, toName) => rename(a.at(fromName), b.at(toName))));
}

/** The directories and regular files directly in `bare`, sorted by name (links, special files and temporaries left out). */
export async function listIn(root: string, bare: string): Promise<{ name: string; type: 'dir' | 'file' }[]> {
  const dir = await openDir(root, bare === '' ? [] : bare.split('/'));
  try {
    const out: { name: string; type: 'dir' | 'file' }[] = [];
    for (const d of await readdir(dir.path, { withFileTypes: true })) {
      if (TEMP_NAME.test(d.name)) continue;
      if (d.isDirectory()) out.push({ name: d.name, type: 'dir' });
      else if (d.isFile()) out.push({ name: d.name, type: 'file' });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    await dir.close();
  }
}

/** One entry of {@link walkIn}: a path relative to the walked directory, its type, and for a file what `read` made of its bytes. */
export interface WalkEntry<T> {
  path: string;
  type: 'dir' | 'file';
  value?: T;
}

/**
 * Every directory and regular file under `bare`, parents before their
 * contents, each opened relative to its parent's descriptor with
 * `O_NOFOLLOW` (links and special files are left out, and so is anything
 * swapped for a link mid-walk). Each file's bytes, read from the descriptor,
 * go through `read` (a hash, say), one file at a time.
 */
export async function walkIn<T>(root: string, bare: string, read: (data: Uint8Array) => T): Promise<WalkEntry<T>[]> {
  const out: WalkEntry<T>[] = [];
  const walk = async (dir: Dir, prefix: string) => {
    const names = (await readdir(dir.path, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const d of names) {
      if (TEMP_NAME.test(d.name)) continue;
      const rel = prefix === '' ? d.name : `${prefix}/${d.name}`;
      if (d.isDirectory()) {
        let child: Dir;
        try {
          child = new Dir(await open(dir.at(d.name), DIR_FLAGS));
        } catch {
          continue; // gone, or a link now
        }
        try {
          out.push({ path: rel, type: 'dir' });
          await walk(child, rel);
        } finally {
          await child.close();
        }
      } else if (d.isFile()) {
        let handle: FileHandle;
        try {
          handle = await open(dir.at(d.name), READ_FLAGS);
        } catch {
          continue;
        }
        try {
          if (!(await handle.stat()).isFile()) continue;
          out.push({ path: rel, type: 'file', value: read(new Uint8Array(await handle.readFile())) });
        } finally {
          await handle.close().catch(() => {});
        }
      }
    }
  };
  const top = await openDir(root, bare === '' ? [] : bare.split('/'));
  try {
    await walk(top, '');
  } finally {
    await top.close();
  }
  return out;
}
