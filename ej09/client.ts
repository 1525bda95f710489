/**
 * Chat client: connects, waits to be paired, then sends each line typed and
 * shows the partner's lines as they arrive, without garbling the line being
 * typed (the prompt and the half-typed text are redrawn below the message).
 *
 * ```sh
 * npx tsx ej09/client.ts --name ana                    # type; /quit to leave
 * printf 'hola\n¿qué tal?\n' | npx tsx ej09/client.ts --name bot   # scripted
 * ```
 *
 * ```
 * *** waiting for a partner...
 * *** you are talking to beto
 * <beto> hola ana
 * ana> hola beto
 * *** beto left
 * *** waiting for a partner...
 * ```
 *
 * Lines typed before there is a partner are sent once there is one. From a
 * pipe, the end of input is the end of the conversation (after what was
 * read has been sent). Exit status: 0 after /quit or end of input, 1 when the
 * connection fails or the server cuts it, 2 bad usage.
 *
 * The protocol is in ej09/protocol.ts.
 *
 * @module
 */
import net from 'node:net';
import readline from 'node:readline';
import { defineCommand, formatAddress, parseHost, parsePort, UsageError } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { escapeText, LineSplitter, NAME, parseLine, unescapeText } from './protocol.ts';

/**
 * Makes a partner's text safe to print on a terminal: control characters
 * (an escape sequence could move the cursor or retitle the window) are shown
 * as `^X`, a newline inside a message as `↵ `.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => (c === '\n' ? '\u21b5 ' : `^${String.fromCharCode(c.charCodeAt(0) ^ 0x40)}`));
}

const command = defineCommand({
  name: 'client.ts',
  summary: 'Chat client: talk with the partner the server pairs you with.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'server address' },
    port: { type: 'string', default: '5009', help: 'server port' },
    name: { type: 'string', help: 'your name in the chat (default: your user name)' },
  },
  epilog: 'Type a line and Enter to send it; /quit (or Ctrl-D) to leave.\nExit status: 0 left with /quit or Ctrl-D, 1 cannot connect or the server went away, 2 bad usage.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port, 'port', { zero: false });
  const name = opts.name ?? (process.env.USER && NAME.test(process.env.USER) ? process.env.USER : 'anon');
  if (!NAME.test(name)) throw new UsageError(`argument --name: expected 1 to 32 letters, digits, _ . or -, got '${name}'`);
  const where = formatAddress(host, port);
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;

  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host, port });
    s.once('error', (error: NodeJS.ErrnoException) => reject(describeConnectError(error, where)));
    s.once('connect', () => resolve(s));
  });
  socket.setNoDelay(true);
  socket.write(`NAME ${name}\n`);

  const rl = readline.createInterface({ input: process.stdin, ...(interactive ? { output: process.stdout, terminal: true } : { terminal: false }), crlfDelay: Infinity });
  if (interactive) rl.setPrompt(`${name}> `);

  /** Prints a line above the one being typed, then redraws the prompt and the typed text. */
  const show = (line: string) => {
    if (interactive) {
      readline.clearLine(process.stdout, 0);
      readline.cursorTo(process.stdout, 0);
      process.stdout.write(`${line}\n`);
      rl.prompt(true);
    } else {
      process.stdout.write(`${line}\n`);
    }
  };

  let partner: string | undefined;
  const queue: string[] = [];
  let inputEnded = false;
  let quitting = false;

  const quit = () => {
    if (quitting) return;
    quitting = true;
    socket.end('QUIT\n');
    rl.close();
  };
  const flush = () => {
    while (partner !== undefined && queue.length > 0) {
      if (!socket.write(`MSG ${escapeText(queue.shift()!)}\n`)) {
        // Flow control: stop reading the keyboard (or pipe) until the socket drains.
        rl.pause();
        socket.once('drain', () => {
          rl.resume();
          flush();
        });
        return;
      }
    }
    if (inputEnded && queue.length === 0 && partner !== undefined) quit();
  };

  return new Promise<number>((resolve, reject) => {
    const splitter = new LineSplitter(64 * 1024);
    let failed: Error | undefined;
    socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = splitter.push(chunk);
      } catch (error) {
        failed = new CliError(`the server sent something that is not the chat protocol: ${(error as Error).message}`);
        socket.destroy();
        return;
      }
      for (const line of lines) {
        const { command: word, arg } = parseLine(line);
        if (word === 'MSG') {
          let text: string;
          try {
            text = unescapeText(arg);
          } catch {
            text = arg;
          }
          show(`<${partner ?? '?'}> ${printable(text)}`);
        } else if (word === 'WAIT') {
          show('*** waiting for a partner...');
        } else if (word === 'PAIRED') {
          partner = printable(arg);
          show(`*** you are talking to ${partner}`);
          flush();
        } else if (word === 'LEFT') {
          show(`*** ${printable(arg)} left`);
          partner = undefined;
        } else if (word === 'INFO') {
          show(`*** ${printable(arg)}`);
        } else if (word === 'ERROR') {
          failed = new CliError(`the server cut the connection: ${printable(arg)}`);
        }
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      failed ??= describeConnectError(error, where);
    });
    socket.on('close', () => {
      // Before rl.close(): closing the keyboard leaves (quit()), which would
      // make a server that went away look like the user's own /quit.
      const left = quitting;
      rl.close();
      if (interactive) process.stdout.write('\n');
      if (failed) reject(failed);
      else if (left) resolve(0);
      else reject(new CliError(`connection to ${where} closed by the server`));
      process.stdin.destroy();
    });

    rl.on('line', (line) => {
      if (quitting) return;
      if (line.trim() === '/quit') {
        quit();
        return;
      }
      if (line === '') {
        if (interactive) rl.prompt();
        return;
      }
      queue.push(line);
      flush();
      if (interactive) rl.prompt();
    });
    rl.on('close', () => {
      // Ctrl-D, or the end of a pipe: leave once everything read has been sent.
      inputEnded = true;
      if (queue.length === 0 || partner !== undefined) flush();
      if (queue.length === 0) quit();
    });
    rl.on('SIGINT', () => quit());
    if (interactive) rl.prompt();
  });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
