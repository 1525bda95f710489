/**
 * File-system errors in words a user can act on. The codes are the kernel's
 * (ENOENT, EISDIR, EEXIST, …); what they mean depends on what was expected at
 * the path, a file or a folder, so the caller says which.
 *
 * @module
 */

/** What a path was expected to be. */
export type Expected = 'file' | 'folder';

/**
 * Why `error` happened at a path where a `expected` was wanted, as a phrase
 * (`no such file`, `it is a folder, not a file`); an error without a known
 * code gives its own message.
 */
export function fsReason(error: unknown, expected: Expected): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const why: Record<string, string> = {
    ENOENT: expected === 'file' ? 'no such file' : 'no such folder',
    EISDIR: 'it is a folder, not a file',
    EEXIST: expected === 'folder' ? 'a file of that name is there, not a folder' : 'it exists already',
    ENOTDIR: expected === 'folder' ? 'it is not a folder (or a part of its path is not)' : 'a part of its path is not a folder',
    EACCES: 'permission denied (check its owner and mode)',
    EPERM: 'operation not permitted (check its owner and mode)',
    ELOOP: 'too many symbolic links on its path',
    ENAMETOOLONG: 'the name is too long',
    EROFS: 'the file system is read-only',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'the disk quota is used up',
    EMFILE: 'too many open files in this process',
    ENFILE: 'too many open files on this machine',
  };
  return why[code ?? ''] ?? (error instanceof Error ? error.message : String(error));
}
