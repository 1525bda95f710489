/**
 * The chat's line protocol (ej09), shared by its server and client.
 *
 * Every message is one line of UTF-8 text ending in `\n` (a `\r` before it
 * is ignored), at most {@link MAX_LINE} bytes long including the `\n`, made
 * of a command word and, after one space, its argument:
 *
 * ```
 * client → server
 *   NAME <name>      first line: who I am (1-32 of A-Z a-z 0-9 _ . -)
 *   MSG <text>       a message for my partner
 *   QUIT             I am leaving
 * server → client
 *   WAIT             no partner yet: you are in the queue
 *   PAIRED <name>    you are now talking to <name>
 *   MSG <text>       your partner said <text>
 *   LEFT <name>      your partner left (quit or lost); you are in the queue again
 *   INFO <text>      a notice (a message sent while unpaired was dropped)
 *   ERROR <text>     you broke the protocol; the server closes the connection
 * ```
 *
 * `<text>` is escaped so that any text fits on one line: `\` is written
 * `\\`, a newline `\n`, a carriage return `\r`. Try it by hand:
 * `printf 'NAME ana\nMSG hola\n' | socat - TCP:127.0.0.1:5009`.
 *
 * @module
 */

/** The longest line accepted, in bytes, `\n` included. */
export const MAX_LINE = 4096;

/** Escapes text for a MSG line: backslash, newline and carriage return. */
export function escapeText(text: string): string {
  return text.replace(/[\\\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : '\\r'));
}

/** Undoes {@link escapeText}; a backslash before anything else is refused. */
export function unescapeText(text: string): string {
  return text.replace(/\\(.?)/gs, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    if (c === 'r') return '\r';
    throw new SyntaxError(`Invalid escape '\\${c}' in message text: only \\\\, \\n and \\r are defined`);
  });
}

/** A name the chat accepts. */
export const NAME = /^[A-Za-z0-9_.-]{1,32}$/;

/** One protocol line as its command word and argument. */
export function parseLine(line: string): { command: string; arg: string } {
  const space = line.indexOf(' ');
  return space < 0 ? { command: line, arg: '' } : { command: line.slice(0, space), arg: line.slice(space + 1) };
}

/**
 * Cuts a byte stream into lines, refusing one longer than `max` bytes as soon
 * as that many bytes have come without a newline (a 10 MB line is never held
 * whole), and refusing invalid UTF-8.
 */
export class LineSplitter {
  readonly max: number;
  #held: Buffer[] = [];
  #heldBytes = 0;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(max = MAX_LINE) {
    this.max = max;
  }

  /** Adds a chunk, returning the complete lines (without `\r\n`). */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline < 0) break;
      const part = chunk.subarray(start, newline);
      if (this.#heldBytes + part.length + 1 > this.max) throw this.#tooLong(this.#heldBytes + part.length + 1);
      const bytes = this.#heldBytes ? Buffer.concat([...this.#held, part]) : part;
      this.#held = [];
      this.#heldBytes = 0;
      lines.push(this.#decode(bytes[bytes.length - 1] === 0x0d ? bytes.subarray(0, -1) : bytes));
      start = newline + 1;
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) {
      if (this.#heldBytes + rest.length >= this.max) throw this.#tooLong(this.#heldBytes + rest.length);
      this.#held.push(Buffer.from(rest));
      this.#heldBytes += rest.length;
    }
    return lines;
  }

  #decode(bytes: Buffer): string {
    try {
      return this.#decoder.decode(bytes);
    } catch {
      throw new SyntaxError('Line is not valid UTF-8 text');
    }
  }

  #tooLong(seen: number): RangeError {
    return new RangeError(`Line too long: ${seen} bytes without a newline, the limit is ${this.max}`);
  }
}
