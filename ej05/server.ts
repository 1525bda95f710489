/**
 * Remote shell server with ssh's design in small: a host key that signs an
 * ephemeral key exchange, every byte after it sealed (login, commands,
 * output), passwords kept only as salted scrypt hashes, failed logins
 * delayed and limited per address (counted before they are checked), a login
 * deadline and a try limit that end the connection for good, and a cap on
 * unauthenticated connections, per address and in all (sshd's LoginGraceTime,
 * MaxAuthTries, MaxStartups and PerSourceMaxStartups).
 *
 * ```sh
 * npx tsx ej05/server.ts --add-user nahuel          # asks for the password twice (no echo)
 * echo 1234 | npx tsx ej05/server.ts --add-user nahuel   # or reads it from stdin
 * npx tsx ej05/server.ts --log session.log          # serve on 127.0.0.1:5005
 * ```
 *
 * Prints `listening on 127.0.0.1:5005 (tcp)` on stdout when ready, and the
 * host key's fingerprint and one line per event on stderr. On first start it
 * creates the host key (`--host-key`, mode 0600); a host key others can read
 * is refused, as sshd refuses one. The session log (`--log`) is made mode
 * 0600 whatever mode it had.
 *
 * Commands run as the user the server runs as, each through `/bin/sh -c`
 * in the session's working directory, with no standard input. A command that
 * starts with `cd` (and chains nothing with `;`, `&` or `|`) changes that
 * directory for the rest of the session. Output streams back as it comes;
 * an INTERRUPT from the client (its Ctrl-C) sends SIGINT to the command's
 * process group, then SIGKILL 2 s later if it is still there.
 *
 * The protocol: lib/secure-channel.ts (handshake, frames) and
 * ej05/protocol.ts (messages inside the channel).
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, fchmodSync, fstatSync, openSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type nacl from 'tweetnacl';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { fingerprint, secureServer, type SecureSocket } from '../lib/secure-channel.ts';
import { isDeno } from '../lib/udp-buffers.ts';
import { closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';
import { addUser, checkUserName, countUsers, homeDir, loadOrCreateHostKey, LoginLimiter, prepareFolder, UnprotectedKeyError, userExists, verifyPassword } from './keys.ts';
import * as P from './protocol.ts';
import { LineQueue, readTerminalLine } from './tty.ts';

/** Writes the session log: one timestamped line per event, never a password. */
export type AuditLog = (peer: string, event: string) => void;

/**
 * Opens the session log `file` for appending (created if missing) and makes
 * it mode 0600 whatever mode it had: it receives commands and their output.
 * Returns the log and the mode the file had when that was not 0600.
 */
export function openSessionLog(file: string): { audit: AuditLog; previousMode: number | undefined } {
  const fd = openSync(file, 'a', 0o600);
  const mode = fstatSync(fd).mode & 0o777;
  if (mode !== 0o600) fchmodSync(fd, 0o600);
  const audit: AuditLog = (peer, event) => appendFileSync(fd, `${new Date().toISOString()} ${peer} ${event}\n`);
  return { audit, previousMode: mode === 0o600 ? undefined : mode };
}

/** A session log appended to `file` (created if missing), mode 0600. */
export function fileAuditLog(file: string): AuditLog {
  return openSessionLog(file).audit;
}

/** Options of {@link createShellServer}. */
export interface ShellServerOptions {
  hostKey: nacl.SignKeyPair;
  usersFile: string;
  limiter?: LoginLimiter;
  /** Wait after each failed login before answering. */
  failDelayMs?: number;
  /** Login attempts allowed on one connection (sshd's MaxAuthTries); the connection then ends. */
  maxAttempts?: number;
  /** Time allowed from connection to successful login (sshd's LoginGraceTime); the connection then ends. */
  loginTimeoutMs?: number;
  /** Unauthenticated connections allowed at once in all (sshd's MaxStartups); more are closed at once. */
  maxStartups?: number;
  /** Unauthenticated connections allowed at once from one address (sshd's PerSourceMaxStartups). */
  perSourceMaxStartups?: number;
  /** Working directory a session starts in. */
  home?: string;
  log?: Logger;
  audit?: AuditLog;
}

/** Defaults of the login limits, as the server's options document them. */
export const LIMITS = { maxAttempts: 3, loginTimeoutMs: 60_000, maxStartups: 10, perSourceMaxStartups: 3 } as const;

/** The command line of a `cd` that can be made to persist: a lone `cd`, chaining nothing. */
export function isPersistentCd(command: string): boolean {
  return /^\s*cd(\s|$)/.test(command) && !/[;&|\n]/.test(command);
}

/**
 * Creates (but does not start) the remote shell server: a TCP server whose
 * every connection runs the secure-channel handshake, then a login, then
 * commands one at a time.
 */
export function createShellServer(options: ShellServerOptions): net.Server & { sessions: Set<Session> } {
  const sessions = new Set<Session>();
  const maxStartups = options.maxStartups ?? LIMITS.maxStartups;
  const perSource = options.perSourceMaxStartups ?? LIMITS.perSourceMaxStartups;
  const log = options.log ?? silent;
  // Connections not yet logged in, per address and in all.
  const startups = new Map<string, number>();
  let total = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => {}); // reported through the channel
    const address = socket.remoteAddress ?? '?';
    const fromHere = startups.get(address) ?? 0;
    const refusal =
      fromHere >= perSource
        ? `${fromHere} unauthenticated connections from ${address} already (--per-source-max-startups ${perSource})`
        : total >= maxStartups
          ? `${total} unauthenticated connections in all already (--max-startups ${maxStartups})`
          : undefined;
    if (refusal) {
      const peer = formatAddress(address, socket.remotePort ?? 0);
      log(`${peer} refused: ${refusal}`);
      options.audit?.(peer, `refused: ${refusal}`);
      socket.destroy();
      return;
    }
    startups.set(address, fromHere + 1);
    total++;
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      total--;
      const left = (startups.get(address) ?? 1) - 1;
      if (left > 0) startups.set(address, left);
      else startups.delete(address);
    };
    const session = new Session(socket, options, release);
    sessions.add(session);
    void session.start().finally(() => {
      release();
      sessions.delete(session);
    });
  });
  return Object.assign(server, { sessions });
}

/** One client's connection, from handshake to goodbye. */
export class Session {
  readonly socket: net.Socket;
  readonly peer: string;
  readonly #o: Required<Omit<ShellServerOptions, 'limiter'>> & { limiter: LoginLimiter };
  readonly #authenticated: () => void;
  #channel: SecureSocket | undefined;
  #user: string | undefined;
  #cwd: string;
  #attempts = 0;
  #checking = false;
  #child: ChildProcess | undefined;

  /** `authenticated` is called once the login succeeds (the connection is no longer a startup). */
  constructor(socket: net.Socket, options: ShellServerOptions, authenticated: () => void = () => {}) {
    this.socket = socket;
    this.#authenticated = authenticated;
    this.peer = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    this.#o = {
      limiter: options.limiter ?? new LoginLimiter(),
      failDelayMs: 1000,
      ...LIMITS,
      home: process.env.HOME ?? process.cwd(),
      log: silent,
      audit: () => {},
      ...options,
    };
    this.#cwd = this.#o.home;
  }

  #event(message: string, { audit = true } = {}): void {
    this.#o.log(`${this.peer} ${message}`);
    if (audit) this.#o.audit(this.peer, message);
  }

  /** Runs the session to its end. */
  async start(): Promise<void> {
    this.#event('connected');
    // The deadline counts from the connection, handshake included, and ends it for good.
    const loginTimer = setTimeout(() => {
      if (this.#user !== undefined) return;
      const why = `no login within ${this.#o.loginTimeoutMs / 1000} s`;
      this.#event(`${why}: closing`);
      if (this.#channel) {
        this.#send(P.DISCONNECT, why);
        this.#channel.end();
      } else {
        this.socket.destroy();
      }
    }, this.#o.loginTimeoutMs);
    let channel: SecureSocket;
    try {
      channel = await secureServer(this.socket, this.#o.hostKey, { timeoutMs: Math.min(10_000, this.#o.loginTimeoutMs) });
    } catch (error) {
      clearTimeout(loginTimer);
      this.#event(`handshake failed: ${(error as Error).message}`);
      return;
    }
    this.#channel = channel;
    await new Promise<void>((resolve) => {
      channel.on('message', (message) => {
        try {
          this.#handle(message);
        } catch (error) {
          this.#event(`protocol error: ${(error as Error).message}; closing`);
          channel.socket.destroy();
        }
      });
      channel.once('broken', (error) => this.#send(P.DISCONNECT, error.message));
      channel.once('close', (error) => {
        clearTimeout(loginTimer);
        this.#stopChild('SIGHUP');
        this.#event(error && error.message !== 'Connection closed' ? `session closed: ${error.message}` : 'disconnected');
        resolve();
      });
    });
  }

  #send(type: number, payload?: Uint8Array | string | object): boolean {
    return this.#channel?.send(P.encodeMessage(type, payload)) ?? false;
  }

  #handle(message: Uint8Array): void {
    const { type, payload } = P.decodeMessage(message);
    if (type === P.DISCONNECT) {
      this.#event(`client disconnects: ${JSON.stringify(P.payloadText(payload).slice(0, 200))}`);
      this.#channel?.end();
      return;
    }
    if (this.#user === undefined) {
      if (type !== P.LOGIN) throw new SyntaxError(`message type 0x${type.toString(16)} before login`);
      if (this.#checking) throw new SyntaxError('a second login while the first is being checked');
      // Counted before any work: a try past the limit is never checked.
      if (++this.#attempts > this.#o.maxAttempts) throw new SyntaxError(`login attempt ${this.#attempts} after the last allowed (${this.#o.maxAttempts})`);
      const { user, password } = P.payloadJson(payload);
      if (typeof user !== 'string' || typeof password !== 'string') throw new SyntaxError('login without a user and password string');
      this.#checking = true;
      void this.#login(user, password).finally(() => (this.#checking = false));
      return;
    }
    if (type === P.RUN) {
      const command = P.payloadText(payload);
      if (this.#child) {
        this.#send(P.ERROR, 'a command is already running');
        return;
      }
      this.#run(command);
    } else if (type === P.INTERRUPT) {
      if (this.#child) {
        this.#event('interrupt');
        this.#stopChild('SIGINT');
      }
    } else {
      throw new SyntaxError(`unknown message type 0x${type.toString(16)}`);
    }
  }

  /**
   * The user field of a login as the log may show it: the name when the
   * users file has it, otherwise never the text itself (it may be a
   * password typed one line too early), only its length.
   */
  async #loggedName(user: string): Promise<string> {
    if (/^[\x21-\x7e]{1,64}$/.test(user) && (await userExists(this.#o.usersFile, user))) return `user ${user}`;
    return `an unknown user name (${[...user].length} characters, not logged)`;
  }

  async #login(user: string, password: string): Promise<void> {
    const address = this.socket.remoteAddress ?? '?';
    const { limiter } = this.#o;
    const attempt = this.#attempts;
    // Counted as a failure before scrypt runs, so parallel logins cannot all start.
    const ticket = limiter.begin(address);
    if (ticket.blockedMs > 0) {
      const seconds = Math.ceil(ticket.blockedMs / 1000);
      this.#send(P.DENIED, { message: `Too many failed logins from ${address}: try again in ${seconds} s`, retry: false });
      this.#channel?.end();
      this.#event(`login refused for ${await this.#loggedName(user)}: ${limiter.failures(address)} failed logins from ${address} (rate limited for ${seconds} s)`);
      return;
    }
    const ok = await verifyPassword(this.#o.usersFile, user, password);
    // Ended meanwhile (the deadline, a bad frame): the verdict is never sent.
    if (this.#channel?.closed) return;
    if (ok) {
      ticket.succeeded();
      this.#user = user;
      this.#authenticated();
      this.#event(`login ok: user ${user}`);
      this.#send(P.WELCOME, { user, cwd: this.#cwd });
      return;
    }
    this.#event(`login failed: ${await this.#loggedName(user)} (attempt ${attempt} of ${this.#o.maxAttempts})`);
    // The delay makes guessing slow even within the per-address limit.
    await new Promise((resolve) => setTimeout(resolve, this.#o.failDelayMs));
    if (this.#channel?.closed) return;
    const retry = attempt < this.#o.maxAttempts && limiter.blockedFor(address) === 0;
    this.#send(P.DENIED, { message: 'Permission denied: wrong user name or password', retry });
    if (!retry) this.#channel?.end();
  }

  #run(command: string): void {
    const cd = isPersistentCd(command);
    this.#event(`command: ${JSON.stringify(command)}`);
    // A cd runs in the shell too (so ~, $HOME, quotes and errors are the
    // shell's); its last output line, the new directory, is kept, not shown.
    const script = cd ? `${command} && pwd` : command;
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', script], { cwd: this.#cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PWD: this.#cwd } });
    } catch (error) {
      this.#startFailed(error as Error);
      return;
    }
    this.#child = child;
    let cdOutput = '';
    let done = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      // A pending SIGKILL stays armed: what ignored SIGINT (a background
      // job of the command) may still hold the group.
      this.#child = undefined;
      child.stdout?.destroy();
      child.stderr?.destroy();
      if (cd && code === 0) {
        const dir = cdOutput.trimEnd().split('\n').at(-1);
        if (dir && path.isAbsolute(dir)) this.#cwd = dir;
      }
      this.#event(`exit ${code ?? signal}${cd ? ` (cwd ${this.#cwd})` : ''}`);
      this.#send(P.EXIT, { code, signal, cwd: this.#cwd });
    };
    const forward = (type: number, stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      if (cd && type === P.STDOUT) {
        cdOutput += chunk.toString('utf8');
        return;
      }
      this.#o.audit(this.peer, `${stream} ${JSON.stringify(chunk.toString('utf8'))}`);
      for (let at = 0; at < chunk.length; at += P.MAX_CHUNK) {
        if (!this.#send(type, chunk.subarray(at, at + P.MAX_CHUNK))) {
          // Backpressure: a slow client pauses the command's output, not the server.
          child.stdout?.pause();
          child.stderr?.pause();
          this.#channel?.once('drain', () => {
            child.stdout?.resume();
            child.stderr?.resume();
          });
        }
      }
    };
    child.stdout?.on('data', forward(P.STDOUT, 'stdout'));
    child.stderr?.on('data', forward(P.STDERR, 'stderr'));
    child.on('error', (error) => {
      if (!done) {
        done = true;
        this.#child = undefined;
        this.#startFailed(error);
      }
    });
    child.on('close', finish);
    // A command that leaves a background job holding its output must still end.
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 500).unref());
  }

  #startFailed(error: Error): void {
    const message = `cannot run the command in ${this.#cwd}: ${(error as NodeJS.ErrnoException).code ?? error.message}\n`;
    this.#event(message.trim());
    this.#send(P.STDERR, message);
    this.#send(P.EXIT, { code: 127, signal: null, cwd: this.#cwd });
  }

  #stopChild(signal: NodeJS.Signals): void {
    const child = this.#child;
    if (!child?.pid) return;
    const kill = (s: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, s);
      } catch {
        // the group is gone already
      }
    };
    kill(signal);
    // Each group gets its own deadline: whatever ignores the signal is killed 2 s later.
    setTimeout(() => kill('SIGKILL'), 2000).unref();
  }

  /** Ends the session's running command (server shutdown). */
  stop(): void {
    this.#stopChild('SIGHUP');
  }
}

const command = defineCommand({
  name: 'server.ts',
  summary: 'Remote shell server: ssh-like host key, key exchange, sealed frames, scrypt passwords.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '5005', help: 'port to listen on; 0 picks a free one' },
    log: { type: 'string', help: 'append a log of every session (logins, commands, exit codes, output; never passwords) to LOG' },
    'host-key': { type: 'string', metavar: 'FILE', default: '~/.ej05/host_ed25519_key', help: 'Ed25519 host key, created on first start (its folder must exist; ~/.ej05 is created)' },
    users: { type: 'string', metavar: 'FILE', default: '~/.ej05/users', help: 'users file (salted scrypt hashes; its folder must exist; ~/.ej05 is created)' },
    workdir: { type: 'string', metavar: 'DIR', help: "directory every session starts in (default: the server user's home)" },
    'add-user': { type: 'string', metavar: 'NAME', help: 'add NAME to the users file (or change its password) and exit; the password is read without echo, or from stdin' },
    'max-failures': { type: 'string', metavar: 'N', default: '5', help: 'failed logins from one address before it is refused' },
    lockout: { type: 'string', metavar: 'SECONDS', default: '60', help: 'window in which failed logins count' },
    'fail-delay': { type: 'string', metavar: 'SECONDS', default: '1', help: 'wait before answering a failed login' },
    'login-grace': { type: 'string', metavar: 'SECONDS', default: String(LIMITS.loginTimeoutMs / 1000), help: "time from connecting to logging in; then the connection is closed (sshd's LoginGraceTime)" },
    'max-auth-tries': { type: 'string', metavar: 'N', default: String(LIMITS.maxAttempts), help: "login tries on one connection; then it is closed (sshd's MaxAuthTries)" },
    'max-startups': { type: 'string', metavar: 'N', default: String(LIMITS.maxStartups), help: "connections not yet logged in, in all; more are closed at once (sshd's MaxStartups)" },
    'per-source-max-startups': { type: 'string', metavar: 'N', default: String(LIMITS.perSourceMaxStartups), help: "connections not yet logged in from one address (sshd's PerSourceMaxStartups)" },
    quiet: { type: 'boolean', short: 'q', help: 'do not log events on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (tcp)" on stdout when ready, and a warning on stderr when no user can log in.
Ctrl-C stops it. Commands run as the user running this server.
Exit status: 0 stopped by Ctrl-C or SIGTERM (or --add-user done), 1 cannot listen, or a host key, users file or log it cannot use, 2 bad usage, 130 a second Ctrl-C.`,
});

/** The defaults of the file options, as `-h` shows them. */
const DEFAULTS = { users: '~/.ej05/users', hostKey: '~/.ej05/host_ed25519_key' } as const;

/** An fs error on `file` in words: a folder, a missing folder, no permission, else its code. */
function fileProblem(error: NodeJS.ErrnoException, file: string): string {
  if (error.code === 'EISDIR') return `${file} is a folder; name a file (for example ${path.join(file, 'users')})`;
  if (error.code === 'EACCES' || error.code === 'EPERM') return 'permission denied';
  if (error.code === 'ENOENT') return `the folder ${path.dirname(file)} does not exist`;
  if (error.code === 'ENOTDIR') return `a part of the path ${file} is not a folder`;
  return error.code ?? error.message;
}

/**
 * Runs a step on the server's files, turning what a user can fix into one
 * sentence (exit 1): {@link prepareFolder}'s refusals as they stand, an fs
 * error on `file` as "cannot write WHAT FILE: why".
 */
async function fileStep<T>(step: () => Promise<T>, what?: string, file?: string): Promise<T> {
  try {
    return await step();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (what && file && typeof code === 'string') throw new CliError(`cannot use ${what} ${file}: ${fileProblem(error as NodeJS.ErrnoException, file)}`);
    if (error instanceof TypeError || error instanceof SyntaxError || error instanceof RangeError || error instanceof UnprotectedKeyError) {
      throw new CliError(error.message.replace(/^Cannot/, 'cannot'));
    }
    throw error;
  }
}

function expandHome(file: string): string {
  return file.startsWith('~/') ? path.join(homeDir(), file.slice(2)) : file;
}

async function readNewPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const line = await new LineQueue().next();
    process.stdin.destroy();
    if (line === undefined || line === '') throw new CliError('no password on standard input (one line was expected)');
    return line;
  }
  const first = await readTerminalLine('New password: ', { echo: false });
  const again = await readTerminalLine('Retype new password: ', { echo: false });
  if (first !== again) throw new CliError('the passwords do not match; nothing changed');
  if (first === '') throw new CliError('refusing an empty password');
  return first;
}

async function main(argv: string[]): Promise<number | void> {
  const opts = command.parseOrExit(argv);
  const usersFile = expandHome(opts.users);
  if (opts['add-user'] !== undefined) {
    let name: string;
    try {
      name = checkUserName(opts['add-user']);
    } catch (error) {
      throw new UsageError(`argument --add-user: ${(error as Error).message}`);
    }
    // Checked before the password is asked: a wrong path is said at once.
    const created = await fileStep(() => prepareFolder(usersFile, 'the users file', { create: usersFile === expandHome(DEFAULTS.users) }));
    if (created) process.stdout.write(`Created folder ${created} (mode 700) for the users file\n`);
    const password = await readNewPassword();
    const what = await fileStep(() => addUser(usersFile, name, password), 'the users file', usersFile);
    process.stdout.write(`${what === 'added' ? 'Added' : 'Changed the password of'} user ${name} in ${usersFile}\n`);
    return 0;
  }
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const maxFailures = parsePositive(opts['max-failures'], 'max-failures', { integer: true });
  const windowMs = parsePositive(opts.lockout, 'lockout') * 1000;
  const failDelayMs = parsePositive(opts['fail-delay'], 'fail-delay') * 1000;
  const loginTimeoutMs = parsePositive(opts['login-grace'], 'login-grace') * 1000;
  const maxAttempts = parsePositive(opts['max-auth-tries'], 'max-auth-tries', { integer: true });
  const maxStartups = parsePositive(opts['max-startups'], 'max-startups', { integer: true });
  const perSourceMaxStartups = parsePositive(opts['per-source-max-startups'], 'per-source-max-startups', { integer: true });
  const log = createLogger('ej05-server', { quiet: opts.quiet });
  const workdir = opts.workdir === undefined ? undefined : path.resolve(opts.workdir);
  if (workdir && !(await stat(workdir).catch(() => undefined))?.isDirectory()) throw new UsageError(`argument --workdir: ${workdir} is not a directory`);

  const hostKeyFile = expandHome(opts['host-key']);
  const keyFolder = await fileStep(() => prepareFolder(hostKeyFile, 'the host key', { create: hostKeyFile === expandHome(DEFAULTS.hostKey) }));
  if (keyFolder) log(`created folder ${keyFolder} (mode 700) for the host key`);
  const { keyPair, created } = await fileStep(() => loadOrCreateHostKey(hostKeyFile), 'the host key', hostKeyFile);
  log(`${created ? 'created' : 'loaded'} host key ${hostKeyFile}: ED25519 ${fingerprint(keyPair.publicKey)}`);
  // Said even with --quiet: a server nobody can log in to is a mistake, not an event.
  const users = await countUsers(usersFile).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read the users file ${usersFile}: ${fileProblem(error, usersFile)}`);
  });
  if (users === 0) {
    const runner = isDeno ? 'npx deno run -A' : 'npx tsx';
    const script = path.relative(process.cwd(), fileURLToPath(import.meta.url)) || 'server.ts';
    const usersArg = usersFile === expandHome(DEFAULTS.users) ? '' : ` --users ${usersFile}`;
    createLogger('ej05-server')(
      `warning: no users in ${usersFile}, so nobody can log in; add one with: ${runner} ${script} --add-user NAME${usersArg} (this server sees it at once)`,
    );
  }
  let audit: AuditLog | undefined;
  if (opts.log !== undefined) {
    try {
      const opened = openSessionLog(opts.log);
      audit = opened.audit;
      if (opened.previousMode !== undefined) log(`session log ${opts.log} was mode ${opened.previousMode.toString(8)}: made it 600 (it holds commands and their output)`);
      audit('-', `server starting on ${formatAddress(host, port)}, host key ${fingerprint(keyPair.publicKey)}`);
    } catch (error) {
      throw new CliError(`cannot write the session log ${opts.log}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }

  const server = trackConnections(
    createShellServer({
      hostKey: keyPair,
      usersFile,
      limiter: new LoginLimiter({ maxFailures, windowMs }),
      failDelayMs,
      loginTimeoutMs,
      maxAttempts,
      maxStartups,
      perSourceMaxStartups,
      log,
      ...(workdir ? { home: workdir } : {}),
      ...(audit ? { audit } : {}),
    }),
  );
  console.log(readyLine(await listenTcp(server, host, port), 'tcp'));
  onShutdown(
    () => {
      for (const session of server.sessions) session.stop();
      return closeGracefully(server, 2500);
    },
    { log },
  );
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
