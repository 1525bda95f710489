/**
 * Reading a line from the terminal, with or without echo (passwords), and
 * lines from a pipe, for ej05's client and `server.ts --add-user`.
 *
 * @module
 */
import readline from 'node:readline';
import { CliError } from '../lib/main.ts';

/**
 * Reads one line from a terminal in raw mode, echoing it or not (a password
 * shows nothing, as ssh's prompt). Backspace edits; Ctrl-C rejects (exit
 * 130); Ctrl-D on an empty line rejects as end of input.
 */
export function readTerminalLine(prompt: string, { echo = true } = {}): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let value = '';
    process.stderr.write(prompt);
    const finish = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          finish();
          reject(new CliError('interrupted', 130));
          return;
        }
        if (ch === '\u0004' && value === '') {
          finish();
          reject(new CliError('end of input before a line was typed'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') {
          if (value.length > 0) {
            value = [...value].slice(0, -1).join('');
            if (echo) process.stderr.write('\b \b');
          }
        } else if (ch >= ' ') {
          value += ch;
          if (echo) process.stderr.write(ch);
        }
      }
    };
    stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** Lines of a non-terminal input (a pipe, a file), one at a time, in order. */
export class LineQueue {
  readonly #lines: string[] = [];
  readonly #waiting: ((line: string | undefined) => void)[] = [];
  #ended = false;

  /** Reads `input` as lines, or takes the lines of an existing interface (a terminal's, with its prompt). */
  constructor(input: NodeJS.ReadableStream = process.stdin, existing?: readline.Interface) {
    const rl = existing ?? readline.createInterface({ input, terminal: false, crlfDelay: Infinity });
    rl.on('line', (line) => {
      const waiter = this.#waiting.shift();
      if (waiter) waiter(line);
      else this.#lines.push(line);
    });
    rl.on('close', () => {
      this.#ended = true;
      for (const waiter of this.#waiting.splice(0)) waiter(undefined);
    });
  }

  /** The next line, or undefined at the end of the input. */
  next(): Promise<string | undefined> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#ended) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}
