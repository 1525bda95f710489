/**
 * What exercise 11's client and server share beside the transport: opening
 * and creating a requested name inside the served folder (never outside it), and
 * the small formatting of sizes, rates and progress.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../lib/cli.ts';
import type { CongestionControl } from './transport.ts';

/** A name that would leave the served folder, or is not a file name at all. */
export class BadNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadNameError';
  }
}

/**
 * A client's name as it may be quoted back in a message: control characters
 * escaped, and at most `max` characters of it (a name may fill a whole packet,
 * and the error quoting it must still fit one).
 */
export function quoteName(name: string, max = 60): string {
  const chars = [...name];
  const shown = chars
    .slice(0, max)
    .join('')
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return chars.length > max ? `'${shown}…' (${new TextEncoder().encode(name).length} bytes)` : `'${shown}'`;
}

/**
 * The lexical part of confinement: refuses an empty name, NUL, an absolute
 * path, a backslash or drive letter, and a `..` component that climbs out;
 * returns the name normalised (`sub/../a.txt` is `a.txt`). A name that only
 * starts with two dots (`..hidden`) is an ordinary name.
 */
export function checkName(name: string): string {
  if (name === '' || name.includes('\0') || name.length > 1024) throw new BadNameError(`bad file name ${quoteName(name)}`);
  if (path.isAbsolute(name) || /^[A-Za-z]:|\\/.test(name)) throw new BadNameError(`${quoteName(name)} is not a relative name inside the served folder`);
  const rel = path.posix.normalize(name).replace(/\/+$/, '');
  if (rel === '.' || rel === '' || rel === '..' || rel.startsWith('../')) throw new BadNameError(`${quoteName(name)} is outside the served folder`);
  return rel;
}

function isInside(realRoot: string, real: string): boolean {
  const prefix = realRoot.endsWith(path.sep) ? realRoot : realRoot + path.sep;
  return real.startsWith(prefix);
}

const PROC_FD = '/proc/self/fd';

/**
 * Where the file open on `fd` really is. Under Linux, the kernel's own answer
 * (`/proc/self/fd/N`, checked to be the same file as `fd` by device and inode,
 * so that a runtime whose descriptor numbers are not the system's cannot fool
 * it); elsewhere the real path of `opened`, if it is still the file that was
 * opened (weaker: see README).
 */
function openedPath(fd: number, opened: string, name: string): { real: string; proc: boolean } {
  const stat = fstatSync(fd);
  const link = `${PROC_FD}/${fd}`;
  try {
    const real = readlinkSync(link);
    const viaLink = statSync(link);
    if (viaLink.dev === stat.dev && viaLink.ino === stat.ino && path.isAbsolute(real)) return { real, proc: true };
  } catch {
    // No /proc: the fallback below.
  }
  try {
    const real = realpathSync(opened);
    const now = statSync(real);
    if (now.dev === stat.dev && now.ino === stat.ino) return { real, proc: false };
  } catch {
    // Gone or changed: refused below.
  }
  throw new BadNameError(`${quoteName(name)} changed while it was being opened`);
}

function openError(error: unknown, name: string, what: string): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new BadNameError(`no such ${what} ${quoteName(name)}`);
  if (code === 'ENAMETOOLONG') return new BadNameError(`${quoteName(name)}: name too long`);
  if (code === 'ELOOP') return new BadNameError(`${quoteName(name)}: too many symbolic links`);
  if (code === 'EACCES' || code === 'EPERM') return new BadNameError(`${quoteName(name)}: permission denied`);
  return new BadNameError(`cannot open ${quoteName(name)}: ${code ?? (error as Error).message}`);
}

/** A file of the served folder, open for reading. */
export interface OpenedFile {
  fd: number;
  size: number;
}

/**
 * Opens `name` (as a client sent it) for reading inside `root`, and then
 * checks what was opened, not the path: the descriptor's real path must be
 * inside the folder (a symbolic link that leads out, or a folder of the path
 * swapped for one after any check, is refused), and it must be a regular
 * file. Opened non-blocking, so that a FIFO cannot stall the server.
 */
export function openInside(root: string, name: string): OpenedFile {
  const rel = checkName(name);
  const realRoot = realpathSync(root);
  const full = path.join(realRoot, rel);
  let fd: number;
  try {
    fd = openSync(full, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw openError(error, name, 'file');
  }
  try {
    const { real } = openedPath(fd, full, name);
    if (!isInside(realRoot, real)) throw new BadNameError(`${quoteName(name)} leads outside the served folder`);
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new BadNameError(`${quoteName(name)} is a folder, not a file`);
    if (!stat.isFile()) throw new BadNameError(`${quoteName(name)} is not a regular file`);
    return { fd, size: stat.size };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** A file being written inside the served folder under a temporary name. */
export interface Upload {
  /** The temporary file, open for writing. */
  fd: number;
  /** Closes the file and renames it to its name (replacing what was there, a link itself and not what it points at). */
  commit(): void;
  /** Closes and deletes the temporary file. Safe to call twice, and after commit(). */
  discard(): void;
}

/**
 * Creates a temporary file for `name` inside `root`: its folder is opened and
 * checked as {@link openInside} checks a file, and under Linux everything
 * after goes through that folder's descriptor (`/proc/self/fd/N/…`), so the
 * folder cannot be swapped for a link once checked; the temporary name is
 * random and created with O_EXCL | O_NOFOLLOW, so a link planted there is
 * never followed.
 */
export function createInside(root: string, name: string): Upload {
  const rel = checkName(name);
  const realRoot = realpathSync(root);
  const folder = path.join(realRoot, path.posix.dirname(rel));
  const base = path.posix.basename(rel);
  let dirFd: number;
  try {
    dirFd = openSync(folder, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    const e = openError(error, name, 'folder for');
    throw (error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR' ? new BadNameError(`no folder for ${quoteName(name)} in the served folder`) : e;
  }
  let fd: number | undefined;
  try {
    const opened = openedPath(dirFd, folder, name);
    if (opened.real !== realRoot && !isInside(realRoot, opened.real)) throw new BadNameError(`${quoteName(name)} leads outside the served folder`);
    const dir = opened.proc ? `${PROC_FD}/${dirFd}` : opened.real;
    if (lstatSync(path.join(dir, base), { throwIfNoEntry: false })?.isDirectory()) throw new BadNameError(`${quoteName(name)} is a folder, not a file`);
    const stem = new TextEncoder().encode(base).length > 200 ? 'upload' : base;
    const temp = path.join(dir, `${stem}.part-${randomBytes(8).toString('hex')}`);
    try {
      fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
    } catch (error) {
      throw openError(error, name, 'folder for');
    }
    const file = fd;
    let open = true;
    let done = false;
    const close = () => {
      if (open) closeSync(file);
      open = false;
    };
    const release = () => {
      if (!done) closeSync(dirFd);
      done = true;
    };
    return {
      fd: file,
      commit() {
        if (done) return;
        close();
        try {
          renameSync(temp, path.join(dir, base));
        } catch (error) {
          rmSync(temp, { force: true });
          throw error;
        } finally {
          release();
        }
      },
      discard() {
        close();
        if (!done) rmSync(temp, { force: true });
        release();
      },
    };
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    closeSync(dirFd);
    throw error;
  }
}

/** `1.5 MiB`, `512 B`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A progress bar for a terminal: `[#######.............]  35%  12.0 MiB of 34.3 MiB  5.1 MiB/s`. */
export function progressBar(done: number, total: number, seconds: number, width = 30): string {
  const fraction = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(fraction * width);
  const rate = seconds > 0 ? done / seconds : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${formatBytes(done)} of ${formatBytes(total)}  ${formatBytes(Math.round(rate))}/s`;
}

/** Reads --cc: gaffer, aimd or none. */
export function parseCc(text: string): CongestionControl {
  if (text !== 'aimd' && text !== 'gaffer' && text !== 'none') throw new UsageError(`argument --cc: expected gaffer, aimd or none, got '${text}'`);
  return text;
}
