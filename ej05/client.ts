/**
 * Remote shell client: checks the server's host key against the one pinned
 * in known-hosts, under the name typed and the address it resolved to, logs
 * in inside the encrypted channel, and runs commands at a `>>> ` prompt as
 * the assignment shows.
 *
 * A key not pinned yet is a first use, as ssh's StrictHostKeyChecking=ask:
 * on a terminal the client shows its fingerprint and asks; outside one it
 * refuses, unless `--accept-new` (ssh's accept-new) says to pin it. A key
 * other than the one pinned under either name is always refused.
 *
 * ```sh
 * npx tsx ej05/client.ts                        # 127.0.0.1:5005; asks user and password
 * npx tsx ej05/client.ts --user nahuel
 * printf 'nahuel\n1234\npwd\nls\n' | npx tsx ej05/client.ts   # scripted: user, password, commands (echoed after >>>)
 * ```
 *
 * ```
 * user: nahuel
 * nahuel@127.0.0.1:5005's password:
 * >>> pwd
 * /home/usuario/Taller_II
 * >>> cd /tmp
 * >>> ls nope
 * ls: cannot access 'nope': No such file or directory
 * [exit status 2]
 * ```
 *
 * Ctrl-C interrupts the running command (the server stops its process
 * group); at the prompt it clears the line. `exit` or Ctrl-D ends the
 * session; on a terminal the client then says "Connection to HOST:PORT
 * closed.", as ssh does. The exit status is the last command's, as with ssh; 1 when the
 * session could not be opened or broke (a changed host key, a tampered frame).
 *
 * @module
 */
import net from 'node:net';
import { constants } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { MAX_PLAINTEXT, secureClient, type SecureSocket } from '../lib/secure-channel.ts';
import { homeDir, hostKeyChangedError, lookupKnownHost, pinKnownHost } from './keys.ts';
import * as P from './protocol.ts';
import { LineQueue, readTerminalLine } from './tty.ts';

/** Messages of a channel, one at a time; rejects with the reason once the channel has closed. */
export class Inbox {
  readonly #queue: Uint8Array[] = [];
  readonly #waiting: { resolve: (m: { type: number; payload: Uint8Array }) => void; reject: (e: Error) => void }[] = [];
  #closed: Error | undefined;

  #disconnect: string | undefined;

  constructor(channel: SecureSocket) {
    channel.on('message', (message) => {
      if (message[0] === P.DISCONNECT) {
        this.#disconnect = new TextDecoder().decode(message.subarray(1)).slice(0, 500);
        return;
      }
      const waiter = this.#waiting.shift();
      if (waiter) waiter.resolve(P.decodeMessage(message));
      else this.#queue.push(message);
    });
    channel.on('close', (error) => {
      const why = this.#disconnect ? `the server said: ${this.#disconnect}` : (error?.message ?? 'the server ended the session');
      this.#closed = new CliError(`session closed: ${why}`);
      for (const waiter of this.#waiting.splice(0)) waiter.reject(this.#closed);
    });
  }

  next(): Promise<{ type: number; payload: Uint8Array }> {
    const message = this.#queue.shift();
    if (message) return Promise.resolve(P.decodeMessage(message));
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }
}

/** A first use: the server's names (as typed, as resolved) and its key's fingerprint. */
export interface NewHostKey {
  where: string;
  names: string[];
  fingerprint: string;
}

/** What to do with a host key not pinned under any of the server's names: pin it, refuse it, or ask (true pins it). */
export type NewHostKeyPolicy = 'accept' | 'refuse' | ((question: NewHostKey) => Promise<boolean>);

/** Options of {@link openSession}. */
export interface OpenOptions {
  timeoutMs?: number;
  /** Where notices go (a key pinned). */
  warn?: (message: string) => void;
  /** A first use: `'refuse'` (the default), `'accept'`, or a function that asks. */
  newHostKey?: NewHostKeyPolicy;
}

/**
 * Connects and runs the handshake, checking the host key against
 * `knownHosts` under the name typed and the address reached; a first use
 * goes as `newHostKey` says.
 */
export async function openSession(host: string, port: number, knownHosts: string, { timeoutMs = 10_000, warn = () => {}, newHostKey = 'refuse' }: OpenOptions = {}): Promise<SecureSocket> {
  const where = formatAddress(host, port);
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host, port });
    s.setTimeout(timeoutMs, () => {
      s.destroy();
      reject(new CliError(`cannot connect to ${where} within ${timeoutMs / 1000} s`));
    });
    s.once('error', (error: NodeJS.ErrnoException) => reject(describeConnectError(error, where)));
    s.once('connect', () => {
      s.setTimeout(0);
      resolve(s);
    });
  });
  try {
    return await secureClient(
      socket,
      async (key) => {
        // The pin holds under the name typed and the address it resolved to.
        const names = [...new Set([where, formatAddress(socket.remoteAddress ?? host, port)])];
        const found = await lookupKnownHost(knownHosts, names, key);
        if (found.status === 'changed') throw hostKeyChangedError(found.name, knownHosts, found);
        if (found.status === 'known') {
          if (found.missing.length === 0) return;
          await pinKnownHost(knownHosts, found.missing, key);
          warn(`Warning: Permanently added '${found.missing.join(',')}' to the list of known hosts (${knownHosts}): the same key is pinned for '${found.pinnedAs}'.`);
          return;
        }
        const question = { where, names, fingerprint: found.fingerprint };
        if (newHostKey === 'refuse') {
          throw new CliError(
            `Host key verification failed: ${where} is not in ${knownHosts}, and its ED25519 key ${found.fingerprint} cannot be confirmed here (standard input is not a terminal); ` +
              "check that fingerprint with the server's administrator (the server prints it when it starts), then connect from a terminal to confirm it, or run again with --accept-new to pin it without asking.",
          );
        }
        if (newHostKey !== 'accept' && !(await newHostKey(question))) throw new CliError('Host key verification failed.');
        await pinKnownHost(knownHosts, names, key);
        warn(`Warning: Permanently added '${names.join(',')}' (ED25519 ${found.fingerprint}) to the list of known hosts (${knownHosts}).`);
      },
      { timeoutMs },
    );
  } catch (error) {
    if (error instanceof CliError) throw error;
    // A server over its --max-startups caps closes before its hello, as sshd does.
    const hint = /closed before the ServerHello/.test((error as Error).message) ? ' (is it an ej05 server? it may also be refusing connections: too many not yet logged in)' : '';
    throw new CliError(`cannot open a secure session with ${where}: ${(error as Error).message}${hint}`);
  }
}

/** Asks on the terminal about a first use, as ssh's StrictHostKeyChecking=ask does: yes, no, or the fingerprint typed. */
export async function askOnTerminal({ where, names, fingerprint }: NewHostKey): Promise<boolean> {
  const shown = names.length > 1 ? `${where} (${names.slice(1).join(', ')})` : where;
  process.stderr.write(`The authenticity of host '${shown}' can't be established.\nED25519 key fingerprint is ${fingerprint}.\nThis key is not known by any other names.\n`);
  let answer = await readTerminalLine('Are you sure you want to continue connecting (yes/no/[fingerprint])? ');
  for (;;) {
    answer = answer.trim();
    if (answer === 'yes' || answer === fingerprint) return true;
    if (answer === 'no') return false;
    if (answer.startsWith('SHA256:')) {
      process.stderr.write("The fingerprint typed is not this server's.\n");
      return false;
    }
    answer = await readTerminalLine("Please type 'yes', 'no' or the fingerprint: ");
  }
}

/** How a command ended, as a shell's exit status (128 + signal number for a signal). */
export function exitStatus(code: unknown, signal: unknown): number {
  if (typeof code === 'number') return code;
  const number = typeof signal === 'string' ? (constants.signals as Record<string, number>)[signal] : undefined;
  return number === undefined ? 255 : 128 + number;
}

const command = defineCommand({
  name: 'client.ts',
  summary: 'Remote shell client: runs commands on the server at a ">>> " prompt, over an encrypted, authenticated channel.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'server address' },
    port: { type: 'string', default: '5005', help: 'server port' },
    user: { type: 'string', metavar: 'NAME', help: 'user name (asked when omitted)' },
    'known-hosts': { type: 'string', metavar: 'FILE', default: '~/.ej05/known_hosts', help: 'pinned host keys' },
    'accept-new': {
      type: 'boolean',
      help: "pin an unknown host key without asking (ssh's StrictHostKeyChecking=accept-new); a changed key is still refused. Without it an unknown key is asked about on a terminal and refused elsewhere",
    },
    timeout: { type: 'string', metavar: 'SECONDS', default: '10', help: 'give up connecting after this long' },
  },
  epilog:
    'From a pipe, standard input gives the user name (unless --user), the password, then one command per line;\n' +
    'an unknown host key is then refused unless --accept-new.\n' +
    'Ctrl-C stops the running command; at the prompt it clears the line. `exit` or Ctrl-D ends the session\n' +
    '(on a terminal: "Connection to HOST:PORT closed.").\n' +
    "Exit status: the last command's, as ssh; 1 the session could not be opened, the login was refused, or it broke; 2 bad usage; 130 Ctrl-C outside a terminal.",
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const knownHosts = opts['known-hosts'].startsWith('~/') ? path.join(homeDir(), opts['known-hosts'].slice(2)) : opts['known-hosts'];
  const where = formatAddress(host, port);
  const interactive = process.stdin.isTTY === true;
  const piped = interactive ? undefined : new LineQueue();
  const ask = async (prompt: string, echo: boolean): Promise<string> => {
    if (interactive) return readTerminalLine(prompt, { echo });
    const line = await piped!.next();
    if (line === undefined) throw new CliError(`end of input: no ${echo ? 'user name' : 'password'} given`);
    return line;
  };

  const newHostKey: NewHostKeyPolicy = opts['accept-new'] ? 'accept' : interactive ? askOnTerminal : 'refuse';
  const channel = await openSession(host, port, knownHosts, { timeoutMs, warn: (m) => process.stderr.write(`${m}\n`), newHostKey });
  // A bad frame from the server: tell it why before closing, as it tells us.
  channel.once('broken', (error) => channel.send(P.encodeMessage(P.DISCONNECT, error.message)));
  const inbox = new Inbox(channel);
  try {
    const status = await session(channel, inbox, { ask, interactive, piped, where, user: opts.user });
    // As ssh on a terminal: the session's end is said, whether by exit or Ctrl-D.
    if (interactive) process.stderr.write(`Connection to ${where} closed.\n`);
    return status;
  } finally {
    channel.end();
    process.stdin.destroy();
  }
}

interface SessionIo {
  ask: (prompt: string, echo: boolean) => Promise<string>;
  interactive: boolean;
  piped: LineQueue | undefined;
  where: string;
  user: string | undefined;
}

async function session(channel: SecureSocket, inbox: Inbox, io: SessionIo): Promise<number> {
  // Login: everything typed here travels only inside the channel.
  for (;;) {
    const user = io.user ?? (await io.ask('user: ', true));
    const password = await io.ask(`${user}@${io.where}'s password: `, false);
    const login = P.encodeMessage(P.LOGIN, { user, password });
    if (login.length > MAX_PLAINTEXT) throw new CliError('user name and password are too long (64 KiB at most)');
    channel.send(login);
    const reply = await inbox.next();
    if (reply.type === P.WELCOME) break;
    if (reply.type !== P.DENIED) throw new CliError(`unexpected answer to the login (type 0x${reply.type.toString(16)})`);
    const { message, retry } = P.payloadJson(reply.payload);
    if (retry !== true) throw new CliError(String(message));
    process.stderr.write(`${String(message)}\n`);
  }

  let running = false;
  let status = 0;
  let rl: readline.Interface | undefined;
  const commands = io.interactive ? new LineQueue(undefined, (rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true, prompt: '>>> ' }))) : io.piped!;
  const interrupt = () => {
    if (running) {
      channel.send(P.encodeMessage(P.INTERRUPT));
      process.stderr.write('^C\n');
    } else if (rl) {
      rl.write(null, { ctrl: true, name: 'u' });
      process.stdout.write('^C\n');
      rl.prompt();
    } else {
      process.exit(130);
    }
  };
  rl?.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);
  try {
    for (;;) {
      if (rl) rl.prompt();
      const line = await commands.next();
      if (line === undefined) {
        if (rl) process.stdout.write('\n');
        break;
      }
      const text = line.trim();
      if (text === '') continue;
      // From a pipe, the transcript shows each command after its prompt, as it would have been typed.
      if (!rl) process.stdout.write(`>>> ${line}\n`);
      if (text === 'exit' || text === 'logout') break;
      const run = P.encodeMessage(P.RUN, line);
      if (run.length > MAX_PLAINTEXT) {
        process.stderr.write(`command not sent: ${run.length - 1} bytes, the limit is ${MAX_PLAINTEXT - 1}\n`);
        status = 2;
        continue;
      }
      channel.send(run);
      running = true;
      for (;;) {
        const { type, payload } = await inbox.next();
        if (type === P.STDOUT) process.stdout.write(payload);
        else if (type === P.STDERR) process.stderr.write(payload);
        else if (type === P.ERROR) process.stderr.write(`server: ${P.payloadText(payload)}\n`);
        else if (type === P.EXIT) {
          const { code, signal } = P.payloadJson(payload);
          status = exitStatus(code, signal);
          if (status !== 0) process.stderr.write(`[exit status ${status}${typeof signal === 'string' ? `, ${signal}` : ''}]\n`);
          break;
        } else throw new CliError(`unexpected message from the server (type 0x${type.toString(16)})`);
      }
      running = false;
    }
  } finally {
    process.off('SIGINT', interrupt);
    rl?.close();
  }
  return status;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
