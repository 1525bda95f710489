/**
 * What exercise 11's client and server share beside the transport: where a
 * requested name may lead inside the served folder (never outside it), and
 * the small formatting of sizes, rates and progress.
 *
 * @module
 */
import { realpathSync } from 'node:fs';
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
 * Resolves `name` (as a client sent it) inside `root`, refusing an empty
 * name, NUL, an absolute path, `..` that climbs out, and (through realpath of
 * what exists) a symbolic link that points out. `forWrite`: the file need not
 * exist, its folder must.
 */
export function resolveInside(root: string, name: string, { forWrite = false } = {}): string {
  if (name === '' || name.includes('\0') || name.length > 1024) throw new BadNameError(`bad file name '${name.replace(/\0/g, '\\0')}'`);
  if (path.isAbsolute(name) || /^[A-Za-z]:|\\/.test(name)) throw new BadNameError(`'${name}' is not a relative name inside the served folder`);
  const realRoot = realpathSync(root);
  const full = path.resolve(realRoot, name);
  const rel = path.relative(realRoot, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) throw new BadNameError(`'${name}' is outside the served folder`);
  let real: string;
  try {
    real = forWrite ? path.join(realpathSync(path.dirname(full)), path.basename(full)) : realpathSync(full);
  } catch {
    throw new BadNameError(forWrite ? `no folder for '${name}' in the served folder` : `no such file '${name}'`);
  }
  const realRel = path.relative(realRoot, real);
  if (realRel === '' || realRel.startsWith('..') || path.isAbsolute(realRel)) throw new BadNameError(`'${name}' leads outside the served folder`);
  return real;
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
