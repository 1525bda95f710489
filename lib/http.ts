/**
 * HTTP/1.1 messages on raw bytes (RFC 9112): an incremental parser for
 * requests and responses fed arbitrary chunks, and the serializers for the
 * other direction. Shared by the wget-like client (ej03), the static server
 * (ej06), the proxy (ej07) and the load balancer (ej08).
 *
 * ```ts
 * const parser = new RequestParser();
 * socket.on('data', (chunk) => {
 *   for (const event of parser.push(chunk)) {
 *     if (event.type === 'head') console.log(event.head.method, event.head.target);
 *     else if (event.type === 'data') body.push(event.data);
 *     else if (event.type === 'end') answer();
 *     else if (event.type === 'error') refuse(event.error.status, event.error.message);
 *   }
 * });
 * socket.on('end', () => parser.finish()); // events too: a body cut short is an error
 * ```
 *
 * Hardened the way undici (`client-h1.js`) and nginx are: the head's total
 * size is capped (431), a request line too (414); Content-Length is one
 * field of ASCII digits only (no list, not even `5, 5`; nothing around it
 * but spaces and tabs: `String.prototype.trim()` would also strip U+00A0)
 * and may not come with Transfer-Encoding; Transfer-Encoding in an HTTP/1.0
 * message is refused (RFC 9112 §6.1); the request target may hold no CR,
 * LF, space or other control byte; header names are tokens, values hold no control bytes, and
 * obs-fold (a line that starts with a space) is refused; a bare CR is never a
 * line end (a bare LF is, as RFC 9112 §2.2 allows); chunk sizes are hex
 * digits of bounded length; a body that ends before its length is an error.
 *
 * The parser never throws for bad input: it returns an `error` event (an
 * {@link HttpParseError} with the status a server should answer) and refuses
 * everything after it, so that events before the error — an earlier request
 * of a pipeline — are still delivered.
 *
 * @module
 */

/** Default cap on a message head (start line + header fields), as undici's 16 KiB. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Default cap on a request line (nginx's `large_client_header_buffers` is 8 KiB). */
export const MAX_START_LINE_BYTES = 8 * 1024;
/** Default cap on the number of header fields. */
export const MAX_HEADER_COUNT = 100;
/** Cap on a chunk-size line, extensions included. */
export const MAX_CHUNK_LINE_BYTES = 4096;

const EMPTY = new Uint8Array(0);
const CR = 0x0d;
const LF = 0x0a;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field value: visible ASCII, obs-text, space and tab (RFC 9110 §5.5); no CR, LF, NUL or other control. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^[\x21-\x7e]+$/;

/** Reason phrases for the status codes the suite sends. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: 'Continue',
  101: 'Switching Protocols',
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  206: 'Partial Content',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
  508: 'Loop Detected',
};

/**
 * Header fields in arrival order, names compared without case, repeated
 * fields kept (`getAll`), the original spelling kept for logs and proxies.
 */
export class HeaderList implements Iterable<[string, string]> {
  readonly #entries: [string, string][] = [];

  constructor(init?: Iterable<readonly [string, string]> | Record<string, string | number>) {
    if (!init) return;
    const pairs = Symbol.iterator in init ? (init as Iterable<readonly [string, string]>) : Object.entries(init);
    for (const [name, value] of pairs) this.add(name, String(value));
  }

  /** Appends a field, keeping any earlier one of the same name. */
  add(name: string, value: string): this {
    this.#entries.push([name, value]);
    return this;
  }

  /** Replaces every field called `name` with one. */
  set(name: string, value: string | number): this {
    this.delete(name);
    return this.add(name, String(value));
  }

  /** Removes every field called `name`. */
  delete(name: string): this {
    const key = name.toLowerCase();
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      if (this.#entries[i]?.[0].toLowerCase() === key) this.#entries.splice(i, 1);
    }
    return this;
  }

  /** The values of every field called `name`, in order. */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    return this.#entries.filter(([n]) => n.toLowerCase() === key).map(([, v]) => v);
  }

  /** The field's value; repeated fields are joined with `, ` (RFC 9110 §5.3). */
  get(name: string): string | undefined {
    const all = this.getAll(name);
    return all.length === 0 ? undefined : all.join(', ');
  }

  has(name: string): boolean {
    const key = name.toLowerCase();
    return this.#entries.some(([n]) => n.toLowerCase() === key);
  }

  /** Whether a comma-separated field (Connection, Transfer-Encoding) lists `token`. */
  hasToken(name: string, token: string): boolean {
    return listTokens(this.get(name)).includes(token.toLowerCase());
  }

  get size(): number {
    return this.#entries.length;
  }

  [Symbol.iterator](): Iterator<[string, string]> {
    return this.#entries.map(([n, v]) => [n, v] as [string, string])[Symbol.iterator]();
  }
}

/**
 * The lower-cased, non-empty items of a comma-separated field, stripped of
 * OWS (spaces and tabs) only: `trim()` would also strip U+00A0 (the byte 0xA0
 * read as latin1), so that `chunked\xa0` would pass for `chunked` here and
 * not in a server behind.
 */
export function listTokens(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((item) => stripOws(item).toLowerCase())
    .filter((item) => item !== '');
}

/** `text` without leading and trailing spaces and tabs (RFC 9110 §5.6.3 OWS), and nothing else. */
function stripOws(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

/** How a message's body is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  /** A response read until the server closes the connection. */
  | { kind: 'close' }
  /** A CONNECT 2xx or a 101: what follows the head is no longer HTTP. */
  | { kind: 'tunnel' };

interface HeadBase {
  /** `HTTP/1.1` or `HTTP/1.0` (another 1.x minor version is read as 1.1's). */
  version: string;
  headers: HeaderList;
  framing: BodyFraming;
  /** The head exactly as received (latin1), for logs. */
  raw: string;
}

/** A request's head. */
export interface RequestHead extends HeadBase {
  method: string;
  /** The request target as sent: origin form (`/a?b`), absolute form, authority form or `*`. */
  target: string;
}

/** A response's head. */
export interface ResponseHead extends HeadBase {
  status: number;
  reason: string;
}

/** What {@link MessageParser.push} reports, in order. */
export type HttpEvent<H> =
  | { type: 'head'; head: H }
  | { type: 'data'; data: Uint8Array }
  | { type: 'trailers'; trailers: HeaderList }
  /** The message is complete; the next bytes begin another one. */
  | { type: 'end' }
  /** The connection now carries something else; `rest` is what followed the head. */
  | { type: 'upgrade'; rest: Uint8Array }
  /** The input is malformed (or cut short); the parser accepts nothing more. */
  | { type: 'error'; error: HttpParseError };

/** Why a message could not be parsed, with the status code a server should answer. */
export class HttpParseError extends SyntaxError {
  /** A stable identifier a caller may branch on (`HPE_HEADER_OVERFLOW`, after llhttp). */
  readonly code: string;
  /** 400, 414, 431, 501 or 505. */
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = 'HttpParseError';
    this.code = code;
    this.status = status;
  }
}

/** Limits of a parser; each has a default suited to a server facing strangers. */
export interface ParserOptions {
  maxHeaderBytes?: number;
  maxStartLineBytes?: number;
  maxHeaderCount?: number;
}

type State = 'start' | 'headers' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'close' | 'tunnel' | 'dead';

/**
 * The incremental parser both directions share; use {@link RequestParser}
 * or {@link ResponseParser}. Body bytes are handed out as they arrive
 * (never buffered whole), so a 50 MiB body costs no more memory than a small one.
 */
export abstract class MessageParser<H extends RequestHead | ResponseHead> {
  #state: State = 'start';
  #buffer: Uint8Array = EMPTY;
  /** How much of #buffer was already searched for a line end. */
  #scanned = 0;
  #remaining = 0;
  #headBytes = 0;
  #lines: string[] = [];
  #trailers = new HeaderList();
  protected readonly limits: Required<ParserOptions>;

  constructor({ maxHeaderBytes = MAX_HEADER_BYTES, maxStartLineBytes = MAX_START_LINE_BYTES, maxHeaderCount = MAX_HEADER_COUNT }: ParserOptions = {}) {
    this.limits = { maxHeaderBytes, maxStartLineBytes, maxHeaderCount };
  }

  /** True between messages: nothing of a next message has arrived yet. */
  get idle(): boolean {
    return this.#state === 'start' && this.#buffer.length === 0;
  }

  /** Feeds bytes as they came off the socket; returns what they completed. */
  push(chunk: Uint8Array): HttpEvent<H>[] {
    const events: HttpEvent<H>[] = [];
    if (this.#state === 'dead') {
      events.push({ type: 'error', error: new HttpParseError('HPE_CLOSED', 400, 'Cannot parse: the parser stopped at an earlier error') });
      return events;
    }
    if (this.#state === 'tunnel') {
      if (chunk.length > 0) events.push({ type: 'data', data: chunk });
      return events;
    }
    try {
      this.#feed(chunk, events);
    } catch (error) {
      if (!(error instanceof HttpParseError)) throw error;
      this.#state = 'dead';
      this.#buffer = EMPTY;
      events.push({ type: 'error', error });
    }
    return events;
  }

  /**
   * Tells the parser the connection ended: completes a body read until close,
   * and reports as an error a message cut short (a head unfinished, a body
   * shorter than its length, a chunked body without its last chunk).
   */
  finish(): HttpEvent<H>[] {
    const state = this.#state;
    if (state === 'close') {
      this.#state = 'start';
      return [{ type: 'end' }];
    }
    if (state === 'dead' || state === 'tunnel' || (state === 'start' && this.#buffer.length === 0)) return [];
    this.#state = 'dead';
    const detail =
      state === 'start' || state === 'headers'
        ? `the head was not complete (${this.#headBytes + this.#buffer.length} bytes received)`
        : state === 'length'
          ? `the body was ${this.#remaining} bytes short of its Content-Length`
          : 'the chunked body had not ended (no last chunk)';
    return [{ type: 'error', error: new HttpParseError('HPE_INCOMPLETE', 400, `Connection closed before the message was complete: ${detail}`) }];
  }

  /** Reads the start line; throws an HttpParseError when it is malformed. */
  protected abstract parseStartLine(line: string): void;
  /** Builds the head once its fields are known (framing decided here). */
  protected abstract buildHead(headers: HeaderList, raw: string): H;

  #feed(chunk: Uint8Array, events: HttpEvent<H>[]): void {
    const buf = this.#buffer.length === 0 ? chunk : concat2(this.#buffer, chunk);
    let pos = 0;
    this.#buffer = EMPTY;
    while (pos < buf.length) {
      const state = this.#state;
      if (state === 'length' || state === 'chunk-data') {
        const take = Math.min(this.#remaining, buf.length - pos);
        events.push({ type: 'data', data: buf.subarray(pos, pos + take) });
        pos += take;
        this.#remaining -= take;
        if (this.#remaining === 0) {
          if (state === 'length') this.#endMessage(events);
          else this.#state = 'chunk-crlf';
        }
        continue;
      }
      if (state === 'close') {
        events.push({ type: 'data', data: buf.subarray(pos) });
        pos = buf.length;
        continue;
      }
      if (state === 'chunk-crlf') {
        // The CRLF after a chunk's data: exactly CRLF (or LF), nothing else.
        if (buf[pos] === LF) {
          pos += 1;
        } else if (buf[pos] === CR) {
          if (pos + 1 >= buf.length) break;
          if (buf[pos + 1] !== LF) throw new HttpParseError('HPE_STRICT', 400, 'Cannot parse chunked body: expected CRLF after the chunk data');
          pos += 2;
        } else {
          throw new HttpParseError('HPE_STRICT', 400, 'Cannot parse chunked body: the chunk holds more bytes than its size says');
        }
        this.#state = 'chunk-size';
        continue;
      }
      // Line-oriented states: start, headers, chunk-size, trailers.
      const from = pos + this.#scanned;
      const lf = buf.indexOf(LF, from);
      if (lf < 0) {
        this.#scanned = buf.length - pos;
        this.#checkPartialLine(buf.length - pos);
        break;
      }
      this.#scanned = 0;
      const lineBytes = lf + 1 - pos;
      const end = lf > pos && buf[lf - 1] === CR ? lf - 1 : lf;
      const line = latin1(buf.subarray(pos, end));
      if (line.includes('\r')) throw new HttpParseError('HPE_CR', 400, 'Cannot parse: a bare CR inside a line (only CRLF ends a line)');
      pos = lf + 1;
      this.#line(line, lineBytes, events);
      if (this.#state === 'tunnel') {
        events.push({ type: 'upgrade', rest: buf.slice(pos) });
        pos = buf.length;
      }
    }
    // Keep the unparsed tail (a copy: the caller's chunk may be large).
    if (pos < buf.length) this.#buffer = buf.slice(pos);
  }

  #checkPartialLine(length: number): void {
    const { maxHeaderBytes, maxStartLineBytes } = this.limits;
    if (this.#state === 'start' && length > maxStartLineBytes) {
      throw this.startLineTooLong(length);
    }
    if ((this.#state === 'headers' || this.#state === 'trailers') && this.#headBytes + length > maxHeaderBytes) {
      throw headerOverflow(maxHeaderBytes);
    }
    if (this.#state === 'chunk-size' && length > MAX_CHUNK_LINE_BYTES) {
      throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 400, `Cannot parse chunked body: a chunk-size line longer than ${MAX_CHUNK_LINE_BYTES} bytes`);
    }
  }

  /** The error for a start line longer than allowed (414 for a request). */
  protected abstract startLineTooLong(length: number): HttpParseError;

  #line(line: string, lineBytes: number, events: HttpEvent<H>[]): void {
    switch (this.#state) {
      case 'start': {
        // RFC 9112 §2.2: empty lines before a request line are ignored (some
        // clients send CRLF after a POST body); a bounded number of them.
        if (line === '') {
          if ((this.#headBytes += lineBytes) > 16) throw new HttpParseError('HPE_INVALID_CONSTANT', 400, 'Cannot parse: too many empty lines before the start line');
          return;
        }
        if (lineBytes > this.limits.maxStartLineBytes) throw this.startLineTooLong(lineBytes);
        this.parseStartLine(line);
        this.#headBytes = lineBytes;
        this.#lines = [line];
        this.#state = 'headers';
        return;
      }
      case 'headers':
      case 'trailers': {
        this.#headBytes += lineBytes;
        if (this.#headBytes > this.limits.maxHeaderBytes) throw headerOverflow(this.limits.maxHeaderBytes);
        if (this.#state === 'headers') this.#lines.push(line);
        if (line !== '') {
          const count = this.#state === 'headers' ? this.#lines.length - 2 : this.#trailers.size;
          if (count >= this.limits.maxHeaderCount) {
            throw new HttpParseError('HPE_HEADER_OVERFLOW', 431, `Header fields too many: more than ${this.limits.maxHeaderCount}`);
          }
          const [name, value] = parseField(line);
          if (this.#state === 'trailers') this.#trailers.add(name, value);
          return;
        }
        if (this.#state === 'trailers') {
          if (this.#trailers.size > 0) events.push({ type: 'trailers', trailers: this.#trailers });
          this.#endMessage(events);
          return;
        }
        const headers = new HeaderList();
        for (const l of this.#lines.slice(1, -1)) headers.add(...parseField(l));
        const raw = this.#lines.join('\r\n') + '\r\n';
        const head = this.buildHead(headers, raw);
        events.push({ type: 'head', head });
        const { framing } = head;
        if (framing.kind === 'length' && framing.length > 0) {
          this.#state = 'length';
          this.#remaining = framing.length;
        } else if (framing.kind === 'chunked') {
          this.#state = 'chunk-size';
          this.#headBytes = 0;
        } else if (framing.kind === 'close') {
          this.#state = 'close';
        } else if (framing.kind === 'tunnel') {
          this.#state = 'tunnel';
          events.push({ type: 'end' });
        } else {
          if ('status' in head && head.status < 200) {
            // An interim response: the final one follows on the same request.
            this.#state = 'start';
            this.#headBytes = 0;
          } else {
            this.#endMessage(events);
          }
        }
        return;
      }
      case 'chunk-size': {
        const size = parseChunkSize(line);
        if (size === 0) {
          this.#state = 'trailers';
          this.#trailers = new HeaderList();
          this.#headBytes = 0;
        } else {
          this.#state = 'chunk-data';
          this.#remaining = size;
        }
        return;
      }
      default:
        throw new Error(`unreachable parser state ${this.#state}`);
    }
  }

  #endMessage(events: HttpEvent<H>[]): void {
    events.push({ type: 'end' });
    this.#state = 'start';
    this.#headBytes = 0;
    this.#lines = [];
  }
}

function headerOverflow(max: number): HttpParseError {
  return new HttpParseError('HPE_HEADER_OVERFLOW', 431, `Header fields too large: more than ${max} bytes`);
}

/** Parses requests, one after another on a connection (pipelining). */
export class RequestParser extends MessageParser<RequestHead> {
  #method = '';
  #target = '';
  #version = '';

  protected parseStartLine(line: string): void {
    const parts = line.split(' ');
    if (parts.length !== 3) {
      throw new HttpParseError('HPE_INVALID_REQUEST_LINE', 400, `Cannot parse request line: expected "METHOD TARGET HTTP/1.1", got ${quote(line)}`);
    }
    const [method, target, version] = parts as [string, string, string];
    if (!TOKEN.test(method)) throw new HttpParseError('HPE_INVALID_METHOD', 400, `Cannot parse request line: the method ${quote(method)} is not a token`);
    if (!TARGET.test(target)) {
      throw new HttpParseError('HPE_INVALID_URL', 400, `Cannot parse request line: the target ${quote(target)} holds a control byte, a space or a non-ASCII byte`);
    }
    this.#method = method;
    this.#target = target;
    this.#version = parseVersion(version, true);
  }

  protected startLineTooLong(length: number): HttpParseError {
    return new HttpParseError('HPE_URI_TOO_LONG', 414, `Request line too long: more than ${this.limits.maxStartLineBytes} bytes (${length} received)`);
  }

  protected buildHead(headers: HeaderList, raw: string): RequestHead {
    // After CONNECT the bytes are the tunnel's, whatever the proxy answers.
    const body: BodyFraming = this.#method === 'CONNECT' ? { kind: 'tunnel' } : framing(headers, 'request', this.#version);
    return { method: this.#method, target: this.#target, version: this.#version, headers, framing: body, raw };
  }
}

/**
 * Parses responses. A response's framing depends on the request it answers
 * (HEAD, CONNECT): call {@link expect} with each request's method, in the
 * order the requests were sent; a response with none expected is taken as
 * answering a GET.
 */
export class ResponseParser extends MessageParser<ResponseHead> {
  #methods: string[] = [];
  #status = 0;
  #reason = '';
  #version = '';

  /** Records that a request with `method` was sent; its response comes in turn. */
  expect(method: string): void {
    this.#methods.push(method.toUpperCase());
  }

  protected parseStartLine(line: string): void {
    const match = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(line);
    if (!match) throw new HttpParseError('HPE_INVALID_STATUS', 400, `Cannot parse status line: expected "HTTP/1.1 200 OK", got ${quote(line)}`);
    this.#version = parseVersion(match[1] as string, false);
    this.#status = Number(match[2]);
    if (this.#status < 100) throw new HttpParseError('HPE_INVALID_STATUS', 400, `Cannot parse status line: status ${match[2]} is below 100`);
    this.#reason = match[3] ?? '';
    if (!FIELD_VALUE.test(this.#reason)) throw new HttpParseError('HPE_INVALID_STATUS', 400, 'Cannot parse status line: a control byte in the reason phrase');
  }

  protected startLineTooLong(length: number): HttpParseError {
    return new HttpParseError('HPE_INVALID_STATUS', 400, `Status line too long: more than ${this.limits.maxStartLineBytes} bytes (${length} received)`);
  }

  protected buildHead(headers: HeaderList, raw: string): ResponseHead {
    const method = this.#methods[0] ?? 'GET';
    const status = this.#status;
    let body: BodyFraming;
    if ((method === 'CONNECT' && status >= 200 && status < 300) || status === 101) body = { kind: 'tunnel' };
    else if (method === 'HEAD' || status < 200 || status === 204 || status === 304) body = { kind: 'none' };
    else body = framing(headers, 'response', this.#version);
    if (status >= 200 || status === 101) this.#methods.shift();
    return { version: this.#version, status, reason: this.#reason, headers, framing: body, raw };
  }
}

/**
 * Decides how the body after a head is delimited; throws on a contradiction
 * or on anything two parsers could read two ways (the ground of request
 * smuggling): TE with CL, TE in HTTP/1.0, CL repeated or a list.
 */
function framing(headers: HeaderList, kind: 'request' | 'response', version: string): BodyFraming {
  const te = headers.getAll('transfer-encoding');
  const cl = headers.getAll('content-length');
  if (te.length > 0) {
    if (version === 'HTTP/1.0') {
      // RFC 9112 §6.1: an HTTP/1.0 recipient may not know chunked; the framing is faulty.
      throw new HttpParseError('HPE_INVALID_TRANSFER_ENCODING', 400, 'Cannot frame the body: Transfer-Encoding is not allowed in an HTTP/1.0 message (RFC 9112 §6.1)');
    }
    if (cl.length > 0) {
      throw new HttpParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 400, 'Cannot frame the body: both Transfer-Encoding and Content-Length are present (request smuggling)');
    }
    const codings = listTokens(te.join(','));
    const chunkedAt = codings.indexOf('chunked');
    if (chunkedAt >= 0 && chunkedAt !== codings.length - 1) {
      throw new HttpParseError('HPE_INVALID_TRANSFER_ENCODING', 400, 'Cannot frame the body: "chunked" must be the last transfer coding, and only once');
    }
    if (chunkedAt === codings.length - 1 && chunkedAt >= 0) {
      if (kind === 'request' && codings.length > 1) {
        throw new HttpParseError('HPE_INVALID_TRANSFER_ENCODING', 501, `Cannot decode the body: transfer coding ${quote(codings[0] ?? '')} is not implemented`);
      }
      return { kind: 'chunked' };
    }
    if (kind === 'request') {
      throw new HttpParseError('HPE_INVALID_TRANSFER_ENCODING', 400, `Cannot frame the body: Transfer-Encoding ${quote(te.join(', '))} does not end in chunked`);
    }
    return { kind: 'close' };
  }
  if (cl.length > 0) {
    // One field, one value: RFC 9112 §6.3 lets a recipient merge `5, 5`, but a server
    // behind that reads the first item of `5, 6` (or only one of two fields) frames
    // the body differently; nginx refuses a repeated Content-Length too.
    const values = cl.join(',').split(',').map(stripOws);
    if (cl.length > 1 || values.length > 1) {
      const disagree = new Set(values).size > 1 ? 'values disagree' : 'must be one value, not a list';
      throw new HttpParseError('HPE_INVALID_CONTENT_LENGTH', 400, `Cannot frame the body: Content-Length ${disagree} (${cl.join(', ')})`);
    }
    const text = values[0] ?? '';
    if (!/^\d{1,15}$/.test(text)) {
      throw new HttpParseError('HPE_INVALID_CONTENT_LENGTH', 400, `Cannot frame the body: Content-Length ${quote(cl.join(', '))} is not a number of ASCII digits`);
    }
    return { kind: 'length', length: Number(text) };
  }
  return kind === 'request' ? { kind: 'none' } : { kind: 'close' };
}

function parseVersion(text: string, request: boolean): string {
  const match = /^HTTP\/(\d)\.(\d)$/.exec(text);
  if (!match) throw new HttpParseError('HPE_INVALID_VERSION', 400, `Cannot parse ${request ? 'request' : 'status'} line: ${quote(text)} is not an HTTP version`);
  if (match[1] !== '1') throw new HttpParseError('HPE_INVALID_VERSION', 505, `HTTP version not supported: ${text} (only HTTP/1.0 and HTTP/1.1)`);
  return match[2] === '0' ? 'HTTP/1.0' : 'HTTP/1.1';
}

function parseField(line: string): [string, string] {
  if (line.startsWith(' ') || line.startsWith('\t')) {
    throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 400, 'Cannot parse header: a line folded onto the previous one (obs-fold) is not accepted');
  }
  const colon = line.indexOf(':');
  if (colon <= 0) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 400, `Cannot parse header: expected "Name: value", got ${quote(line)}`);
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 400, `Cannot parse header: the name ${quote(name)} is not a token (no space before the colon)`);
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
  if (!FIELD_VALUE.test(value)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 400, `Cannot parse header ${name}: its value holds a control byte`);
  return [name, value];
}

function parseChunkSize(line: string): number {
  const match = /^([0-9A-Fa-f]{1,12})[ \t]*(;.*)?$/.exec(line);
  if (!match || (match[2] !== undefined && !FIELD_VALUE.test(match[2]))) {
    throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 400, `Cannot parse chunked body: expected a hexadecimal chunk size, got ${quote(line)}`);
  }
  return parseInt(match[1] as string, 16);
}

function quote(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return JSON.stringify(shown);
}

function latin1(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function fromLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/** Headers as a caller may give them to a serializer. */
export type HeadersInit = HeaderList | Iterable<readonly [string, string]> | Record<string, string | number>;

function serializeFields(headers: HeadersInit): string {
  let out = '';
  for (const [name, value] of headers instanceof HeaderList ? headers : new HeaderList(headers)) {
    if (!TOKEN.test(name)) throw new TypeError(`Cannot serialize header: the name ${quote(name)} is not a token`);
    if (!FIELD_VALUE.test(value)) throw new TypeError(`Cannot serialize header ${name}: its value holds CR, LF or another control byte`);
    out += `${name}: ${value}\r\n`;
  }
  return out;
}

/** A request head to serialize. */
export interface RequestInit {
  method: string;
  target: string;
  version?: string;
  headers?: HeadersInit;
}

/**
 * The bytes of a request head, ending with the empty line. Refuses (TypeError)
 * what would let a value inject a line: CR/LF in the target or a header.
 */
export function serializeRequestHead({ method, target, version = 'HTTP/1.1', headers = [] }: RequestInit): Uint8Array {
  if (!TOKEN.test(method)) throw new TypeError(`Cannot serialize request: the method ${quote(method)} is not a token`);
  if (!TARGET.test(target)) throw new TypeError(`Cannot serialize request: the target ${quote(target)} holds a space, a control or a non-ASCII byte`);
  return fromLatin1(`${method} ${target} ${version}\r\n${serializeFields(headers)}\r\n`);
}

/** A response head to serialize. */
export interface ResponseInit {
  status: number;
  reason?: string;
  version?: string;
  headers?: HeadersInit;
}

/** The bytes of a response head, ending with the empty line. */
export function serializeResponseHead({ status, reason = STATUS_TEXT[status] ?? '', version = 'HTTP/1.1', headers = [] }: ResponseInit): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`Cannot serialize response: status ${status} is not a 3-digit code`);
  if (!FIELD_VALUE.test(reason)) throw new TypeError('Cannot serialize response: the reason phrase holds a control byte');
  return fromLatin1(`${version} ${status} ${reason}\r\n${serializeFields(headers)}\r\n`);
}

/** One chunk of a chunked body: size in hex, CRLF, the data, CRLF. An empty `data` gives nothing (it would end the body). */
export function encodeChunk(data: Uint8Array): Uint8Array {
  if (data.length === 0) return EMPTY;
  const size = fromLatin1(`${data.length.toString(16)}\r\n`);
  const out = new Uint8Array(size.length + data.length + 2);
  out.set(size, 0);
  out.set(data, size.length);
  out.set([CR, LF], size.length + data.length);
  return out;
}

/** The last chunk of a chunked body, with optional trailer fields. */
export function lastChunk(trailers: HeadersInit = []): Uint8Array {
  return fromLatin1(`0\r\n${serializeFields(trailers)}\r\n`);
}

/**
 * Header fields that describe one connection, not the message (RFC 9110
 * §7.6.1): a proxy or load balancer must not forward them.
 */
export const HOP_BY_HOP: readonly string[] = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization'];

/**
 * Fields a Connection header may not name away: the message is framed
 * (Content-Length) and routed (Host) by them, so a proxy that dropped them
 * on the sender's word would forward a body nothing delimits — request
 * smuggling (`Connection: Content-Length`). RFC 9110 §7.6.1 forbids a sender
 * to name a field meant for every recipient; a recipient ignores the option.
 */
export const NOT_CONNECTION_OPTIONS: readonly string[] = ['content-length', 'host'];

/**
 * A copy of `headers` without the hop-by-hop fields, nor the fields the
 * Connection header names (`Connection: close, X-Secret` drops X-Secret too),
 * except {@link NOT_CONNECTION_OPTIONS}: Content-Length and Host stay. A proxy
 * that changes a body's framing still sets its own Content-Length or
 * Transfer-Encoding.
 */
export function withoutHopByHop(headers: HeaderList): HeaderList {
  const named = listTokens(headers.get('connection')).filter((name) => !NOT_CONNECTION_OPTIONS.includes(name));
  const drop = new Set([...HOP_BY_HOP, ...named]);
  return new HeaderList([...headers].filter(([name]) => !drop.has(name.toLowerCase())));
}

/** Whether the connection stays open after this message (HTTP/1.1 unless `close`; 1.0 only with `keep-alive`). */
export function keepAlive(head: { version: string; headers: HeaderList }): boolean {
  if (head.headers.hasToken('connection', 'close')) return false;
  if (head.version === 'HTTP/1.0') return head.headers.hasToken('connection', 'keep-alive');
  return true;
}

/** Resolves when `socket` can take more writes (`drain`), or has closed and never will. */
export function drained(socket: { destroyed?: boolean; on(event: 'drain' | 'close', listener: () => void): unknown; off(event: 'drain' | 'close', listener: () => void): unknown }): Promise<void> {
  // A socket already destroyed has had its close, or will never drain: waiting would hang for good.
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** `text` made safe to put inside HTML (the five characters that matter, as numeric references). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Options of {@link errorPage}. */
export interface ErrorPageOptions {
  /** Who answered, in the page's footer (`ej06`, `ej07 caching proxy`). */
  signature: string;
  /** HTML placed after the detail as given (a table, a link); the caller escapes what it puts there. */
  extraHtml?: string;
}

/** The small HTML page a server sends with an error or redirect status: its title, the detail (escaped), and who answered. */
export function errorPage(status: number, detail: string, { signature, extraHtml = '' }: ErrorPageOptions): Buffer {
  const title = `${status} ${STATUS_TEXT[status] ?? ''}`.trim();
  return Buffer.from(
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>\n` +
      `<body><h1>${title}</h1>\n<p>${escapeHtml(detail)}</p>\n${extraHtml}<hr><address>${escapeHtml(signature)}</address></body></html>\n`,
  );
}
