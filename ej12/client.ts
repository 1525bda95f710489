/**
 * Client of the replicated directory: a small terminal with the usual Unix
 * commands, run on the master's tree as if it were a local directory.
 *
 * ```sh
 * npx tsx ej12/client.ts --port 8000                       # the master's address
 * printf 'mkdir docs\nput notes.txt docs\nls docs\n' | npx tsx ej12/client.ts --port 8000
 * ```
 *
 * ```
 * ej12:/$ mkdir docs
 * ej12:/$ put notes.txt docs/
 * ej12:/$ cd docs
 * ej12:/docs$ ls
 * notes.txt
 * ej12:/docs$ cat ../../etc/passwd
 * cat: ../../etc/passwd: path leaves the shared directory
 * ```
 *
 * Commands: ls [PATH], cd [PATH], pwd, cat PATH, cp SRC DST, mv SRC DST,
 * rm [-r] PATH, mkdir [-p] PATH, put LOCAL [REMOTE], get REMOTE [LOCAL],
 * help, exit. Remote paths are relative to the current directory; `/` is
 * the shared directory's root and `..` never climbs above it. LOCAL paths are
 * on this machine. The prompt shows only on a terminal; from a pipe the
 * commands run one per line and only their output is printed, so a script's
 * output is just its results. Errors go to stderr as `command: reason`; the
 * exit status is 1 if any command failed, 0 otherwise.
 *
 * @module
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { defineCommand, parseHost, parsePort } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { Link } from './link.ts';
import { AGREGAR_ARCHIVO, dataText, displayPath, ERROR, MAX_DATA, message, PathError, REMOTO, resolveUserPath } from './protocol.ts';

/** Splits a command line into words; "double" or 'single' quotes keep spaces. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(re)) words.push(m[1] ?? m[2] ?? m[3] ?? '');
  return words;
}

const HELP = `commands:
  ls [PATH]            list a directory (directories end in /)
  cd [PATH]            change directory (no PATH: the root)
  pwd                  print the current directory
  cat PATH             print a file
  cp SRC DST           copy a file (into DST if it is a directory)
  mv SRC DST           move or rename a file or directory
  rm [-r] PATH         remove a file (-r: a directory and its contents)
  mkdir [-p] PATH      make a directory (-p: and its parents)
  put LOCAL [REMOTE]   upload a local file
  get REMOTE [LOCAL]   download a file
  exit                 end the session
`;

/** A session with the master: the current directory and the commands. */
export class Session {
  readonly link: Link;
  cwd = '';
  readonly out: (bytes: Uint8Array | string) => void;

  constructor(link: Link, out: (bytes: Uint8Array | string) => void) {
    this.link = link;
    this.out = out;
  }

  async #remote(argv: string[]): Promise<Uint8Array> {
    const reply = await this.link.request(message(REMOTO, this.cwd, JSON.stringify(argv)), 120_000);
    if (reply.action === ERROR) throw new CliError(dataText(reply));
    if (reply.action !== REMOTO) throw new CliError('unexpected answer from the master');
    return reply.data;
  }

  #resolve(typed: string): string {
    return resolveUserPath(this.cwd, typed);
  }

  /** Runs one command line; returns false for `exit`. Throws a {@link CliError} or {@link PathError} for a failed command. */
  async run(words: string[]): Promise<boolean> {
    const [cmd, ...rest] = words;
    const flags = rest.filter((w) => /^-[a-z]$/.test(w));
    const args = rest.filter((w) => !/^-[a-z]$/.test(w));
    const count = (min: number, max: number) => {
      if (args.length < min || args.length > max) throw new CliError(`expected ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'} (try help)`);
    };
    switch (cmd) {
      case undefined:
        return true;
      case 'exit':
      case 'quit':
        return false;
      case 'help':
        this.out(HELP);
        return true;
      case 'pwd':
        count(0, 0);
        this.out(`${displayPath(this.cwd)}\n`);
        return true;
      case 'cd': {
        count(0, 1);
        const to = args[0] === undefined ? '' : this.#resolve(args[0]);
        await this.#remote(['cd', to]);
        this.cwd = to;
        return true;
      }
      case 'ls':
        count(0, 1);
        this.out(await this.#remote(['ls', args[0] === undefined ? this.cwd : this.#resolve(args[0])]));
        return true;
      case 'cat':
        count(1, 1);
        this.out(await this.#remote(['cat', this.#resolve(args[0] as string)]));
        return true;
      case 'rm':
      case 'mkdir':
        count(1, 1);
        await this.#remote([cmd, ...flags, this.#resolve(args[0] as string)]);
        return true;
      case 'cp':
      case 'mv':
        count(2, 2);
        await this.#remote([cmd, this.#resolve(args[0] as string), this.#resolve(args[1] as string)]);
        return true;
      case 'put': {
        count(1, 2);
        const local = args[0] as string;
        let data: Uint8Array;
        try {
          const st = await stat(local);
          if (!st.isFile()) throw new CliError(`${local}: not a regular file`);
          if (st.size > MAX_DATA) throw new CliError(`${local}: file too large (${st.size} bytes, the limit is ${MAX_DATA})`);
          data = await readFile(local);
        } catch (error) {
          if (error instanceof CliError) throw error;
          throw new CliError(`${local}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (error as Error).message}`);
        }
        const typed = args[1] ?? path.basename(local);
        // "put x dir/" and "put x ." name a directory: the file keeps its name there.
        const remote = /(^|\/)\.{0,2}$/.test(typed) ? this.#resolve(`${typed}/${path.basename(local)}`) : this.#resolve(typed);
        const reply = await this.link.request(message(AGREGAR_ARCHIVO, remote, data), 120_000);
        if (reply.action === ERROR) throw new CliError(dataText(reply));
        return true;
      }
      case 'get': {
        count(1, 2);
        const remote = this.#resolve(args[0] as string);
        const data = await this.#remote(['get', remote]);
        const local = args[1] ?? (path.basename(remote) || 'download');
        let target = local;
        try {
          if ((await stat(local)).isDirectory()) target = path.join(local, path.basename(remote));
        } catch {
          // does not exist yet: write it there
        }
        try {
          await writeFile(target, data);
        } catch (error) {
          throw new CliError(`${target}: ${(error as Error).message}`);
        }
        return true;
      }
      default:
        throw new CliError(`unknown command (try help)`);
    }
  }
}

const command = defineCommand({
  name: 'client.ts',
  summary: 'Client of the replicated directory: a terminal with ls, cd, pwd, cat, cp, mv, rm, mkdir, put and get.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: "the master's address" },
    port: { type: 'string', default: '8000', help: "the master's port" },
  },
  epilog: 'Reads commands from the terminal (prompt ej12:/DIR$) or one per line from a pipe. Type help for the commands.\nOn a terminal, Ctrl-C clears the line and Ctrl-D (or exit) quits.\nExit status: 1 if any command failed or the connection broke, 0 otherwise; 2 bad usage.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  let link: Link;
  try {
    link = await Link.connect(host, port);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  const interactive = process.stdin.isTTY === true;
  const session = new Session(link, (bytes) => process.stdout.write(bytes));
  const rl = readline.createInterface({ input: process.stdin, ...(interactive ? { output: process.stdout, terminal: true } : { terminal: false }) });
  const prompt = () => {
    if (interactive) {
      rl.setPrompt(`ej12:${displayPath(session.cwd)}$ `);
      rl.prompt();
    }
  };
  let status = 0;
  let running = false;
  // Ctrl-C at the prompt drops what was typed and gives a fresh prompt, as a shell does; during a
  // command it says that the command goes on (the master runs each one whole). Ctrl-D quits.
  rl.on('SIGINT', () => {
    if (running) {
      process.stdout.write('^C (the command goes on: the master runs each command whole; Ctrl-D or exit quits after it)\n');
      return;
    }
    process.stdout.write('^C\n');
    rl.write(null, { ctrl: true, name: 'u' });
    prompt();
  });
  try {
    prompt();
    for await (const line of rl) {
      const words = splitWords(line);
      running = true;
      try {
        if (!(await session.run(words))) break;
      } catch (error) {
        if (link.closed) throw new CliError(`connection to the master lost: ${link.closed.message}`);
        if (!(error instanceof CliError || error instanceof PathError)) throw error;
        process.stderr.write(`${words[0]}: ${error.message}\n`);
        status = 1;
      } finally {
        running = false;
      }
      prompt();
    }
    // Ctrl-D at the prompt: end the prompt's line, so the shell's prompt starts on its own.
    if (interactive) process.stdout.write('\n');
  } finally {
    rl.close();
    link.close();
    process.stdin.destroy();
  }
  return status;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
