/**
 * The files of ej05's remote shell, ssh's in miniature: the server's host key,
 * the client's known-hosts pins, and the server's users file of salted scrypt
 * hashes. Also the per-address limit on failed logins.
 *
 * ```
 * host key file     one line: base64 of the 64-byte Ed25519 secret key (mode 0600)
 * known-hosts file  one line per key: NAMES ed25519 BASE64-PUBLIC-KEY, NAMES being the
 *                   HOST:PORT the user typed and the ADDRESS:PORT it resolved to,
 *                   comma-separated as in ssh's known_hosts (one when they are equal)
 * users file        one line per user:  NAME:scrypt:N:r:p:BASE64-SALT:BASE64-HASH (mode 0600)
 * ```
 *
 * @module
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import util from 'tweetnacl-util';
import { ChannelError, fingerprint } from '../lib/secure-channel.ts';

/** The user's home folder, where `~/.ej05/` (the default for every file here) lives, as ~/.ssh. */
export function homeDir(): string {
  return process.env.HOME ?? homedir();
}

/** A host key file that others may read: refused, as sshd refuses one. */
export class UnprotectedKeyError extends Error {
  constructor(file: string, mode: number) {
    const octal = mode.toString(8).padStart(4, '0');
    super(`Permissions ${octal} for host key ${file} are too open: others can read it, and a private key must be private (sshd refuses such a key too); fix it with: chmod 600 ${file}`);
    this.name = 'UnprotectedKeyError';
  }
}

/**
 * Loads the server's Ed25519 host key from `file`, creating it (mode 0600;
 * its folder must exist, see {@link prepareFolder}) on first start. Returns the key pair and whether
 * it was just made. A key file that its group or others can read is refused
 * ({@link UnprotectedKeyError}).
 */
export async function loadOrCreateHostKey(file: string): Promise<{ keyPair: nacl.SignKeyPair; created: boolean }> {
  let text: string;
  try {
    // The mode is read from the opened file, the one whose bytes are then read.
    const handle = await open(file, 'r');
    try {
      const mode = (await handle.stat()).mode & 0o777;
      if ((mode & 0o077) !== 0) throw new UnprotectedKeyError(file, mode);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const keyPair = nacl.sign.keyPair();
    await writeFile(file, `${util.encodeBase64(keyPair.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
    return { keyPair, created: true };
  }
  let secret: Uint8Array;
  try {
    secret = util.decodeBase64(text.trim());
  } catch {
    throw new SyntaxError(`Cannot read host key ${file}: expected one line of base64`);
  }
  if (secret.length !== nacl.sign.secretKeyLength) {
    throw new RangeError(`Cannot read host key ${file}: expected a ${nacl.sign.secretKeyLength}-byte Ed25519 secret key, found ${secret.length} bytes`);
  }
  return { keyPair: nacl.sign.keyPair.fromSecretKey(secret), created: false };
}

/** What known-hosts says about a server's key, under all the names it was reached by. */
export type HostLookup =
  /** Pinned with this key under at least one name, under none with another; `missing`: names to add. */
  | { status: 'known'; missing: string[]; pinnedAs: string }
  /** Not pinned under any of its names: a first use. */
  | { status: 'unknown'; fingerprint: string }
  /** Pinned with another key under `name` (at `line`): refuse. */
  | { status: 'changed'; name: string; fingerprint: string; line: number };

async function readKnownHosts(file: string): Promise<string> {
  return readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
}

/**
 * Looks `key` up in the known-hosts `file` under every name in `names`
 * (HOST:PORT as typed, and ADDRESS:PORT as resolved): another key under any
 * of them is a change, so that a second name for the same address (or an old
 * name on a new address) is never a fresh first use.
 */
export async function lookupKnownHost(file: string, names: string[], key: Uint8Array): Promise<HostLookup> {
  const wanted = [...new Set(names)];
  const found = new Set<string>();
  for (const [index, line] of (await readKnownHosts(file)).split('\n').entries()) {
    const [patterns, type, encoded] = line.trim().split(/\s+/);
    if (patterns === undefined || type !== 'ed25519' || encoded === undefined) continue;
    const listed = patterns.split(',');
    const name = wanted.find((n) => listed.includes(n));
    if (name === undefined) continue;
    let pinned: Uint8Array;
    try {
      pinned = util.decodeBase64(encoded);
    } catch {
      pinned = new Uint8Array(0);
    }
    if (!(pinned.length === key.length && nacl.verify(pinned, key))) return { status: 'changed', name, fingerprint: fingerprint(key), line: index + 1 };
    for (const n of wanted) if (listed.includes(n)) found.add(n);
  }
  if (found.size === 0) return { status: 'unknown', fingerprint: fingerprint(key) };
  return { status: 'known', missing: wanted.filter((n) => !found.has(n)), pinnedAs: [...found].join(',') };
}

/** Pins `key` for `names` in the known-hosts `file` (created mode 0600 in a folder of mode 0700). */
export async function pinKnownHost(file: string, names: string[], key: Uint8Array): Promise<void> {
  const text = await readKnownHosts(file);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const prefix = text === '' || text.endsWith('\n') ? '' : '\n';
  await writeFile(file, `${prefix}${[...new Set(names)].join(',')} ed25519 ${util.encodeBase64(key)}\n`, { flag: 'a', mode: 0o600 });
}

/** What {@link checkKnownHost} found for a server. */
export type HostCheck =
  | { status: 'known' }
  | { status: 'added'; fingerprint: string }
  | { status: 'changed'; fingerprint: string; line: number };

/**
 * Trust on first use without asking, as ssh's `accept-new`: an unknown
 * server (`host`, or all of its names) is pinned with `key`; a known one
 * must present the same key under every name.
 */
export async function checkKnownHost(file: string, host: string | string[], key: Uint8Array): Promise<HostCheck> {
  const names = typeof host === 'string' ? [host] : host;
  const found = await lookupKnownHost(file, names, key);
  if (found.status === 'changed') return { status: 'changed', fingerprint: found.fingerprint, line: found.line };
  if (found.status === 'known') {
    if (found.missing.length > 0) await pinKnownHost(file, found.missing, key);
    return { status: 'known' };
  }
  await pinKnownHost(file, names, key);
  return { status: 'added', fingerprint: found.fingerprint };
}

/** The warning ssh prints for a changed host key, adapted; the session is refused. */
export function hostKeyChangedError(host: string, file: string, found: { fingerprint: string; line: number }): ChannelError {
  return new ChannelError(
    'HOST_KEY_MISMATCH',
    [
      '',
      '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
      '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @',
      '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
      'IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!',
      'Someone could be eavesdropping on you right now (man-in-the-middle attack)!',
      'It is also possible that the host key has just been changed.',
      `The fingerprint for the ED25519 key sent by ${host} is`,
      found.fingerprint,
      `Offending key in ${file}:${found.line}`,
      `If the change is expected, remove that line. Host key verification failed.`,
    ].join('\n'),
  );
}

/** scrypt's cost: 2^14 × 8 × 1 takes ~50 ms and 16 MiB, a deliberate brake on guessing. */
export const SCRYPT = { N: 16384, r: 8, p: 1, keyLength: 32 } as const;

function scrypt(password: string, salt: Uint8Array, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** One line of a users file for `name` with a fresh salt. */
export async function hashPassword(name: string, password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 });
  return [name, 'scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), hash.toString('base64')].join(':');
}

/** A user name the users file can hold: letters, digits, `_ . -`, up to 32. */
export function checkUserName(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(name)) {
    throw new TypeError(`Invalid user name '${name}': expected a letter or _, then up to 31 letters, digits, _ . or -`);
  }
  return name;
}

/**
 * A missing folder for a file about to be written, refused or created. The
 * program's own folder (`~/.ej05`, when `create` is set) is created mode
 * 0700 and returned, as ssh creates `~/.ssh`; any other missing folder is
 * refused with a {@link TypeError} that names it, as htpasswd and ssh-keygen
 * refuse one: a mistyped path must not quietly grow a tree of folders.
 * `what` names the file in the message ("the users file").
 */
export async function prepareFolder(file: string, what: string, { create }: { create: boolean }): Promise<string | undefined> {
  const dir = path.dirname(path.resolve(file));
  const found = await stat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (found?.isDirectory()) return undefined;
  if (found) throw new TypeError(`Cannot write ${what} ${file}: ${dir} is not a folder`);
  if (!create) throw new TypeError(`Cannot write ${what} ${file}: the folder ${dir} does not exist; create it first (mkdir -p ${dir}) or name a file in a folder that exists`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** How many users the users file holds: 0 when it does not exist. */
export async function countUsers(file: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  return text.split('\n').filter((line) => line.trim() !== '').length;
}

/**
 * Adds `name` to the users file, or replaces its password; the file stays
 * mode 0600. Its folder must exist ({@link prepareFolder}).
 */
export async function addUser(file: string, name: string, password: string): Promise<'added' | 'replaced'> {
  checkUserName(name);
  if (password === '') throw new TypeError('Refusing an empty password');
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const others = text.split('\n').filter((line) => line.trim() !== '' && line.split(':')[0] !== name);
  const replaced = others.length < text.split('\n').filter((line) => line.trim() !== '').length;
  const line = await hashPassword(name, password);
  // Written aside and renamed: a crash never leaves a half-written users file.
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, [...others, line].join('\n') + '\n', { mode: 0o600 });
  await rename(temp, file);
  await chmod(file, 0o600);
  return replaced ? 'replaced' : 'added';
}

// A hash to check unknown users against, so that they take as long as known ones.
const DUMMY = { salt: randomBytes(16), hash: randomBytes(SCRYPT.keyLength), N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p };

/**
 * Whether `password` is `name`'s, per the users file (re-read on every login,
 * so `--add-user` takes effect at once). Unknown users cost the same scrypt
 * as known ones; the hashes are compared in constant time.
 */
export async function verifyPassword(file: string, name: string, password: string): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => l.split(':')[0] === name);
  const fields = line?.split(':') ?? [];
  const parsed =
    fields.length === 7 && fields[1] === 'scrypt'
      ? { N: Number(fields[2]), r: Number(fields[3]), p: Number(fields[4]), salt: Buffer.from(fields[5]!, 'base64'), hash: Buffer.from(fields[6]!, 'base64') }
      : undefined;
  const entry = parsed && parsed.hash.length > 0 && Number.isInteger(Math.log2(parsed.N)) ? parsed : DUMMY;
  const derived = await scrypt(password, entry.salt, entry.hash.length, { N: entry.N, r: entry.r, p: entry.p, maxmem: 256 * 1024 * 1024 });
  return timingSafeEqual(derived, entry.hash) && entry !== DUMMY;
}

/** Whether the users file has an entry for `name` (to decide whether a failed login's user field may be logged). */
export async function userExists(file: string, name: string): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').some((line) => line.trim() !== '' && line.split(':')[0] === name);
}

/** A login counted by {@link LoginLimiter.begin}. */
export interface LoginTicket {
  /** Milliseconds the address is still refused; 0 when this login may be checked. */
  blockedMs: number;
  /** The login succeeded: it no longer counts as a failure. */
  succeeded: () => void;
}

/**
 * Failed logins per source address: after `maxFailures` within `windowMs`
 * the address is refused until the oldest of them leaves the window.
 */
export class LoginLimiter {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly #failures = new Map<string, number[]>();
  readonly #now: () => number;

  constructor({ maxFailures = 5, windowMs = 60_000, now = Date.now } = {}) {
    this.maxFailures = maxFailures;
    this.windowMs = windowMs;
    this.#now = now;
  }

  #recent(address: string): number[] {
    const since = this.#now() - this.windowMs;
    const recent = (this.#failures.get(address) ?? []).filter((time) => time > since);
    if (recent.length === 0) this.#failures.delete(address);
    else this.#failures.set(address, recent);
    return recent;
  }

  /** Milliseconds until `address` may try again; 0 when it may now. */
  blockedFor(address: string): number {
    const recent = this.#recent(address);
    if (recent.length < this.maxFailures) return 0;
    return recent[recent.length - this.maxFailures]! + this.windowMs - this.#now();
  }

  /** Records one failed login from `address`. */
  fail(address: string): void {
    this.#failures.set(address, [...this.#recent(address), this.#now()]);
  }

  /**
   * Counts a login from `address` *before* it is checked, as a failure until
   * {@link LoginTicket.succeeded} says otherwise: parallel logins cannot all
   * start while none has failed yet. Returns `blockedMs > 0` (and counts
   * nothing) when the address is refused now.
   */
  begin(address: string): LoginTicket {
    const blockedMs = this.blockedFor(address);
    if (blockedMs > 0) return { blockedMs, succeeded: () => {} };
    const at = this.#now();
    this.#failures.set(address, [...this.#recent(address), at]);
    let done = false;
    return {
      blockedMs: 0,
      succeeded: () => {
        if (done) return;
        done = true;
        const list = this.#failures.get(address) ?? [];
        const index = list.indexOf(at);
        if (index >= 0) list.splice(index, 1);
        if (list.length === 0) this.#failures.delete(address);
      },
    };
  }

  /** Failures of `address` still counting. */
  failures(address: string): number {
    return this.#recent(address).length;
  }
}
