/**
 * The synchronised directory on disk (ej12): paths confined to a root, the
 * tree's manifest (every directory and every file's SHA-256), the diff that
 * brings a replica to the master's tree, applying a replicated change, and
 * the client's commands as the master runs them.
 *
 * Confinement has two layers. A wire path is checked by
 * {@link checkWirePath} (no `..`, no absolute path, no NUL), and every
 * operation on disk then goes through `confined.ts`, which opens each
 * component relative to its parent's descriptor with `O_NOFOLLOW` and checks
 * what it actually opened, so that neither a link planted in a root nor one
 * swapped in mid-operation leads outside it. Symbolic links are neither
 * followed, listed nor replicated.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import {
  AGREGAR_ARCHIVO,
  checkWirePath,
  displayPath,
  ELIMINAR_ARCHIVO,
  MAX_DATA,
  MODIFICAR_ARCHIVO,
  PathError,
} from './protocol.ts';
import { checkConfinementSupport, kindOf, listIn, mkdirIn, readFileIn, removeIn, renameIn, TreeError, walkIn, writeFileIn } from './confined.ts';
import { fsReason } from '../lib/fs-errors.ts';

/** A file or directory of the tree, by wire path; `sha256` for files. */
export interface Entry {
  path: string;
  type: 'dir' | 'file';
  sha256?: string;
}

/** A change to replicate: the action, its wire path (`dir/` for a directory) and, for a file, its contents. */
export interface Change {
  action: number;
  path: string;
  data?: Uint8Array;
}

/** A user's mistake in a command (no such file, not a directory…), reported as it stands. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

async function lstatOrUndefined(p: string) {
  try {
    return await lstat(p);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw error;
  }
}

/**
 * The absolute path of wire path `wire` under `root`, after checking it with
 * {@link checkWirePath} and that none of its existing components is a
 * symbolic link (a {@link PathError} otherwise). `root` must be a real path.
 * A check by name, for callers that want the path; the operations below do
 * not open what it returns (that would race with a link swapped in after the
 * check) but go through `confined.ts`.
 */
export async function resolveIn(root: string, wire: string): Promise<string> {
  const { path: bare } = checkWirePath(wire);
  let at = root;
  for (const segment of bare === '' ? [] : bare.split('/')) {
    at = path.join(at, segment);
    const st = await lstatOrUndefined(at);
    if (st === undefined) break;
    if (st.isSymbolicLink()) throw new PathError(`${displayPath(bare)}: goes through a symbolic link, which is refused (it could lead outside the shared directory)`);
  }
  // Belt and braces: whatever the checks above, the result is under root.
  const relative = path.relative(root, at);
  if (relative.startsWith('..') || path.isAbsolute(relative)) throw new PathError(`${displayPath(bare)}: path leaves the shared directory`);
  return at;
}

/** SHA-256 of bytes, hex. */
export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Every directory and regular file under `root`, sorted by wire path, files
 * with their SHA-256. Symbolic links and special files are left out: they are
 * not part of the synchronised tree.
 */
export async function manifest(root: string): Promise<Entry[]> {
  const entries: Entry[] = (await walkIn(root, '', sha256)).map((e) => (e.type === 'file' ? { path: e.path, type: 'file', sha256: e.value as string } : { path: e.path, type: 'dir' }));
  return entries.sort((a, b) => compare(a.path, b.path));
}

/** Orders paths so that a directory comes right before its contents. */
function compare(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] as string) < (y[i] as string) ? -1 : 1;
  }
  return x.length - y.length;
}

/** Checks a manifest received from a replica: a JSON array of entries with valid wire paths. */
export function parseManifest(text: string): Entry[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SyntaxError('Cannot read manifest: not JSON');
  }
  if (!Array.isArray(value)) throw new SyntaxError('Cannot read manifest: expected an array');
  return value.map((e: unknown) => {
    const { path: p, type, sha256: hash } = (e ?? {}) as Record<string, unknown>;
    if (typeof p !== 'string' || (type !== 'dir' && type !== 'file') || (type === 'file' && (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)))) {
      throw new SyntaxError(`Cannot read manifest: bad entry ${JSON.stringify(e).slice(0, 100)}`);
    }
    const { path: bare, dir } = checkWirePath(p);
    if (dir || bare === '') throw new SyntaxError(`Cannot read manifest: bad path ${JSON.stringify(p)}`);
    return type === 'file' ? { path: bare, type, sha256: hash as string } : { path: bare, type };
  });
}

/**
 * The changes that turn a replica whose tree is `replica` into `master`
 * (contents left out: the caller reads them when sending). Deletions first,
 * only the topmost of a deleted subtree, then directories parents first, then
 * files: added when missing (or of the other type), modified when the hash
 * differs. An empty list means the two trees are identical.
 */
export function diff(master: readonly Entry[], replica: readonly Entry[]): Change[] {
  const want = new Map(master.map((e) => [e.path, e]));
  const have = new Map(replica.map((e) => [e.path, e]));
  const deletions: Change[] = [];
  const deleted: string[] = [];
  for (const e of [...replica].sort((a, b) => compare(a.path, b.path))) {
    if (deleted.some((d) => e.path.startsWith(`${d}/`))) continue;
    const w = want.get(e.path);
    if (w === undefined || w.type !== e.type) {
      deletions.push({ action: ELIMINAR_ARCHIVO, path: e.type === 'dir' ? `${e.path}/` : e.path });
      deleted.push(e.path);
    }
  }
  const gone = (p: string) => deleted.some((d) => p === d || p.startsWith(`${d}/`));
  const dirs: Change[] = [];
  const files: Change[] = [];
  for (const e of [...master].sort((a, b) => compare(a.path, b.path))) {
    const h = gone(e.path) ? undefined : have.get(e.path);
    if (e.type === 'dir') {
      if (h === undefined) dirs.push({ action: AGREGAR_ARCHIVO, path: `${e.path}/` });
    } else if (h === undefined) files.push({ action: AGREGAR_ARCHIVO, path: e.path });
    else if (h.sha256 !== e.sha256) files.push({ action: MODIFICAR_ARCHIVO, path: e.path });
  }
  return [...deletions, ...dirs, ...files];
}

/**
 * Applies one replicated change under `root`: AGREGAR_ARCHIVO/MODIFICAR_ARCHIVO
 * write a file (making its parents; replacing a directory in the way) or make a
 * directory (`dir/`), ELIMINAR_ARCHIVO removes a file or a whole directory.
 * Idempotent, so a change received twice does no harm.
 */
export async function applyChange(root: string, change: Change): Promise<void> {
  const { path: bare, dir } = checkWirePath(change.path);
  if (bare === '') throw new PathError('the shared directory itself cannot be added or removed');
  // Refuses a path through a link (or a link itself) before anything changes.
  const existing = await kindOf(root, bare);
  if (change.action === ELIMINAR_ARCHIVO) {
    await removeIn(root, bare);
    return;
  }
  if (change.action !== AGREGAR_ARCHIVO && change.action !== MODIFICAR_ARCHIVO) throw new TypeError(`Cannot apply action ${change.action}: not a file action`);
  if (dir) {
    if (existing === 'dir') return;
    if (existing !== undefined) await removeIn(root, bare);
    await mkdirIn(root, bare, { parents: 'replace' }).catch((error: unknown) => {
      if (!(error instanceof TreeError && error.code === 'EEXIST')) throw error;
    });
    return;
  }
  if (existing === 'dir' || existing === 'other') await removeIn(root, bare);
  await writeFileIn(root, bare, change.data ?? new Uint8Array(0), { parents: 'replace' });
}

// ---------------------------------------------------------------------------
// The client's commands, as the master runs them.

/** Commands that change the tree (a replica refuses them). */
export const MUTATING = new Set(['mkdir', 'rm', 'cp', 'mv']);

/** What a command printed and what it changed. */
export interface Outcome {
  output: Uint8Array;
  changes: Change[];
}

const NOTHING = new Uint8Array(0);
const encoder = new TextEncoder();

async function kind(root: string, wire: string): Promise<{ type: 'dir' | 'file' | 'other' | undefined }> {
  return { type: await kindOf(root, checkWirePath(wire).path) };
}

async function need(root: string, wire: string, type?: 'dir' | 'file'): Promise<void> {
  const k = await kind(root, wire);
  if (k.type === undefined) throw new CommandError(`${displayPath(wire)}: No such file or directory`);
  if (type === 'dir' && k.type !== 'dir') throw new CommandError(`${displayPath(wire)}: Not a directory`);
  if (type === 'file' && k.type === 'dir') throw new CommandError(`${displayPath(wire)}: Is a directory`);
  if (type === 'file' && k.type !== 'file') throw new CommandError(`${displayPath(wire)}: not a regular file`);
}

const parentOf = (wire: string) => wire.split('/').slice(0, -1).join('/');
const baseName = (wire: string) => wire.split('/').pop() ?? '';
const join = (dir: string, name: string) => (dir === '' ? name : `${dir}/${name}`);

/** Where a cp/mv to `dst` lands: inside `dst` when it is a directory, as `dst` otherwise (its parent must be a directory). */
async function destination(root: string, src: string, dst: string): Promise<string> {
  if ((await kind(root, dst)).type === 'dir') return join(dst, baseName(src));
  await need(root, parentOf(dst), 'dir');
  return dst;
}

/** The changes that create the whole subtree at `wire` on a replica (a directory and everything in it). */
async function creationOf(root: string, wire: string): Promise<Change[]> {
  if ((await kindOf(root, wire)) === 'file') return [{ action: AGREGAR_ARCHIVO, path: wire, data: await readFileIn(root, wire) }];
  const changes: Change[] = [{ action: AGREGAR_ARCHIVO, path: `${wire}/` }];
  for (const e of await walkIn(root, wire, (data) => data)) {
    const p = `${wire}/${e.path}`;
    changes.push(e.type === 'dir' ? { action: AGREGAR_ARCHIVO, path: `${p}/` } : { action: AGREGAR_ARCHIVO, path: p, data: e.value as Uint8Array });
  }
  return changes;
}

/** Writes a file uploaded by `put` at `wire`, returning the change to replicate. */
export async function putFile(root: string, wire: string, data: Uint8Array): Promise<Outcome> {
  const { path: bare, dir } = checkWirePath(wire);
  if (bare === '' || dir) throw new CommandError(`${displayPath(bare)}: Is a directory`);
  if (data.length > MAX_DATA) throw new CommandError(`${displayPath(bare)}: file too large (${data.length} bytes, the limit is ${MAX_DATA})`);
  await need(root, parentOf(bare), 'dir');
  const k = await kind(root, bare);
  if (k.type === 'dir') throw new CommandError(`${displayPath(bare)}: Is a directory`);
  if (k.type === 'other') throw new CommandError(`${displayPath(bare)}: not a regular file`);
  await writeFileIn(root, bare, data);
  return { output: NOTHING, changes: [{ action: k.type === 'file' ? MODIFICAR_ARCHIVO : AGREGAR_ARCHIVO, path: bare, data }] };
}

/**
 * Runs one client command (`argv[0]` the command, then flags and wire paths)
 * on the tree under `root`: ls, cd (checks a directory), cat and get (a
 * file's bytes), mkdir, rm [-r], cp, mv. Throws {@link CommandError} or
 * {@link PathError} with a message for the user.
 */
export async function runCommand(root: string, argv: readonly string[]): Promise<Outcome> {
  const [cmd, ...rest] = argv;
  const flags = new Set(rest.filter((a) => a.startsWith('-') && a.length > 1));
  const args = rest.filter((a) => !(a.startsWith('-') && a.length > 1));
  const arity = (n: number) => {
    if (args.length !== n) throw new CommandError(`expected ${n} path${n === 1 ? '' : 's'}, received ${args.length}`);
  };
  for (const f of flags) if (!(cmd === 'rm' && f === '-r') && !(cmd === 'mkdir' && f === '-p')) throw new CommandError(`unknown option ${f}`);
  for (const a of args) checkWirePath(a);
  switch (cmd) {
    case 'ls': {
      if (args.length > 1) throw new CommandError(`expected at most 1 path, received ${args.length}`);
      const target = args[0] ?? '';
      const k = await kind(root, target);
      if (k.type === undefined) throw new CommandError(`${displayPath(target)}: No such file or directory`);
      if (k.type !== 'dir') return { output: encoder.encode(`${baseName(target)}\n`), changes: [] };
      const lines = (await listIn(root, target)).map((d) => (d.type === 'dir' ? `${d.name}/` : d.name));
      return { output: encoder.encode(lines.map((l) => `${l}\n`).join('')), changes: [] };
    }
    case 'cd':
      arity(1);
      await need(root, args[0] as string, 'dir');
      return { output: NOTHING, changes: [] };
    case 'cat':
    case 'get': {
      arity(1);
      await need(root, args[0] as string, 'file');
      return { output: await readFileIn(root, args[0] as string), changes: [] };
    }
    case 'mkdir': {
      arity(1);
      const wire = args[0] as string;
      if (wire === '') throw new CommandError('/: File exists');
      const k = await kind(root, wire);
      if (k.type !== undefined) {
        if (flags.has('-p') && k.type === 'dir') return { output: NOTHING, changes: [] };
        throw new CommandError(`${displayPath(wire)}: File exists`);
      }
      if (flags.has('-p')) {
        const changes: Change[] = [];
        const parts = wire.split('/');
        for (let i = 1; i <= parts.length; i++) {
          const p = parts.slice(0, i).join('/');
          const pk = await kind(root, p);
          if (pk.type === 'dir') continue;
          if (pk.type !== undefined) throw new CommandError(`${displayPath(p)}: Not a directory`);
          await mkdirIn(root, p);
          changes.push({ action: AGREGAR_ARCHIVO, path: `${p}/` });
        }
        return { output: NOTHING, changes };
      }
      await need(root, parentOf(wire), 'dir');
      await mkdirIn(root, wire);
      return { output: NOTHING, changes: [{ action: AGREGAR_ARCHIVO, path: `${wire}/` }] };
    }
    case 'rm': {
      arity(1);
      const wire = args[0] as string;
      if (wire === '') throw new CommandError('refusing to remove the shared directory itself');
      const k = await kind(root, wire);
      if (k.type === undefined) throw new CommandError(`${displayPath(wire)}: No such file or directory`);
      if (k.type === 'dir' && !flags.has('-r')) throw new CommandError(`${displayPath(wire)}: Is a directory (use rm -r)`);
      await removeIn(root, wire);
      return { output: NOTHING, changes: [{ action: ELIMINAR_ARCHIVO, path: k.type === 'dir' ? `${wire}/` : wire }] };
    }
    case 'cp': {
      arity(2);
      const [src, dst] = args as [string, string];
      await need(root, src, 'file');
      const data = await readFileIn(root, src);
      const to = await destination(root, src, dst);
      if (to === src) throw new CommandError(`${displayPath(src)} and ${displayPath(to)} are the same file`);
      return putFile(root, to, data);
    }
    case 'mv': {
      arity(2);
      const [src, dst] = args as [string, string];
      if (src === '') throw new CommandError('refusing to move the shared directory itself');
      await need(root, src);
      const to = await destination(root, src, dst);
      if (to === src) throw new CommandError(`${displayPath(src)} and ${displayPath(to)} are the same file`);
      if (to.startsWith(`${src}/`)) throw new CommandError(`cannot move ${displayPath(src)} into itself`);
      const toKind = await kind(root, to);
      const srcIsDir = (await kindOf(root, src)) === 'dir';
      if (toKind.type === 'dir') throw new CommandError(`${displayPath(to)}: Is a directory`);
      if (srcIsDir && toKind.type !== undefined) throw new CommandError(`${displayPath(to)}: File exists`);
      await renameIn(root, src, to);
      const created = await creationOf(root, to);
      if (!srcIsDir && toKind.type === 'file') for (const c of created) c.action = MODIFICAR_ARCHIVO;
      return { output: NOTHING, changes: [...created, { action: ELIMINAR_ARCHIVO, path: srcIsDir ? `${src}/` : src }] };
    }
    default:
      throw new CommandError(`unknown command ${JSON.stringify(cmd ?? '')}`);
  }
}

/**
 * The contents a change from {@link diff} must carry, read now: undefined for
 * a directory or a deletion, null when the file is no longer there (a later
 * change has removed it, and will be replicated in its turn).
 */
export async function readChangeData(root: string, change: Change): Promise<Uint8Array | undefined | null> {
  if (change.action === ELIMINAR_ARCHIVO || change.path.endsWith('/')) return undefined;
  try {
    return await readFileIn(root, checkWirePath(change.path).path);
  } catch (error) {
    if (error instanceof TreeError) return null;
    throw error;
  }
}

/**
 * Makes the folder `dir` if missing and returns its real path, the root every
 * path is then confined to; rejects with a RangeError saying why it cannot be one.
 */
export async function openRoot(dir: string): Promise<string> {
  try {
    await mkdir(dir, { recursive: true });
    const root = await realpath(dir);
    await checkConfinementSupport(root);
    return root;
  } catch (error) {
    throw new RangeError(`cannot use --root ${dir}: ${error instanceof Error && 'code' in error ? fsReason(error, 'folder') : (error as Error).message}`);
  }
}
