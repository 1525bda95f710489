/**
 * A wget-like HTTP/1.1 client on raw sockets (`node:net`, `node:tls`), with
 * the message parsing of `lib/http.ts`: it sends a GET, follows redirects,
 * and saves the body the way wget does.
 *
 * ```sh
 * npx tsx ej03/wget.ts --url http://www.unlu.edu.ar/             # saves index.html
 * npx tsx ej03/wget.ts --url http://127.0.0.1:8080/img/a.png -O -  > a.png
 * npx tsx ej03/wget.ts --url http://example.com/ --proxy 127.0.0.1 --port 8888
 * npx tsx ej03/wget.ts --url https://localhost:8443/ --ca-certificate cert.pem
 * ```
 *
 * Prints wget's lines on stderr (the request, the status line, the length,
 * where it saved); stdout carries only the body, with `-O -`. Every header
 * block received, redirects included, is appended to a log file
 * (`wget-headers.log` unless `--log FILE`) with the time and the URL.
 *
 * Bodies may be delimited by Content-Length, chunked (trailers are logged)
 * or the server closing; a body shorter than its length is an error. The
 * file name is the URL's last path segment (`index.html` for a folder), and
 * an existing file is never overwritten: the next is `name.1`, `name.2`, as
 * wget does; `-O FILE` chooses the name (and overwrites), `-O -` is stdout.
 *
 * Exit codes are wget's: 0 success, 1 generic error, 2 bad option or URL,
 * 3 file I/O error, 4 network failure (refused, reset, timed out, cut short),
 * 5 TLS failure (certificate not trusted), 7 protocol error (a malformed
 * response), 8 the server answered with an error (4xx, 5xx, too many redirects).
 *
 * @module
 */
import { accessSync, constants as fsConstants, createWriteStream, existsSync, readFileSync, renameSync, statSync, type WriteStream } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { defineCommand, formatAddress, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { type HttpEvent, HttpParseError, type ResponseHead, ResponseParser, serializeRequestHead } from '../lib/http.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { ConnectTimeoutError, connectWithin, describeConnectError } from '../lib/net-errors.ts';

/** wget's exit statuses. */
export const EXIT = { ok: 0, generic: 1, parse: 2, io: 3, network: 4, tls: 5, protocol: 7, server: 8 } as const;

/** The User-Agent sent with every request. */
export const USER_AGENT = 'ej03-wget/1.0 (sockets practical; like Wget)';
/** The log of header blocks when no `--log` is given. */
export const DEFAULT_LOG = 'wget-headers.log';
/** The proxy port when `--proxy HOST` is given without `--port`. */
export const DEFAULT_PROXY_PORT = 8080;
/** Response heads may be larger than requests' (cookies, CSPs): 64 KiB. */
export const MAX_RESPONSE_HEADER_BYTES = 64 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Parses the `--url` text: `http://` is assumed when no scheme is given, as wget does. */
export function parseUrl(text: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`argument --url: not a valid URL: '${text}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`argument --url: unsupported scheme '${url.protocol.slice(0, -1)}' (only http and https)`);
  }
  if (url.hostname === '') throw new UsageError(`argument --url: no host in '${text}'`);
  if (url.port === '0') throw new UsageError(`argument --url: port 0 cannot be connected to, in '${text}' (give the server's port, 1-65535)`);
  return url;
}

/** A proxy's address. */
export interface ProxyAddress {
  host: string;
  port: number;
}

/**
 * Reads `--proxy` and `--port`: `HOST` with `--port PORT`, or
 * `http://HOST:PORT` (whose port wins over `--port`).
 */
export function parseProxy(proxy: string, port: string | undefined): ProxyAddress {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(proxy)) {
    let url: URL;
    try {
      url = new URL(proxy);
    } catch {
      throw new UsageError(`argument --proxy: not a valid URL: '${proxy}'`);
    }
    if (url.protocol !== 'http:') throw new UsageError(`argument --proxy: only http:// proxies are supported, got '${proxy}'`);
    const p = url.port || port;
    return { host: unbracket(url.hostname), port: p === undefined ? DEFAULT_PROXY_PORT : parsePort(p, url.port ? 'proxy' : 'port', { zero: false }) };
  }
  const hostPort = /^(\[[^\]]+\]|[^:[\]]+):(\d+)$/.exec(proxy);
  if (hostPort) return { host: unbracket(hostPort[1] as string), port: parsePort(hostPort[2] as string, 'proxy', { zero: false }) };
  if (!/^[A-Za-z0-9.:-]+$/.test(proxy)) throw new UsageError(`argument --proxy: expected HOST or http://HOST:PORT, got '${proxy}'`);
  return { host: proxy, port: port === undefined ? DEFAULT_PROXY_PORT : parsePort(port, 'port', { zero: false }) };
}

function unbracket(host: string): string {
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

/**
 * The file name wget would choose for `url`: its last path segment,
 * percent-decoded, or `index.html` for a folder. Never a path: a name that
 * would climb (`..`) or hold a slash is replaced.
 */
export function localFileName(url: URL): string {
  const last = url.pathname.split('/').at(-1) ?? '';
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    name = last;
  }
  name = name.replace(/[/\\\0]/g, '_');
  if (name === '' || name === '.' || name === '..') return 'index.html';
  return name;
}

/** `name`, or the first of `name.1`, `name.2`, … that does not exist (wget's no-clobber). */
export function unusedName(name: string, exists: (candidate: string) => boolean = existsSync): string {
  if (!exists(name)) return name;
  for (let i = 1; ; i++) if (!exists(`${name}.${i}`)) return `${name}.${i}`;
}

/** Bytes in wget's short form: `1.5K`, `50M`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes}`;
  const units = ['K', 'M', 'G', 'T'];
  let value = bytes;
  let unit = '';
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)}${unit}`;
}

/**
 * One frame of the progress bar for a terminal `columns` wide: percent,
 * bar, size, speed and ETA; with an unknown length, a bouncing marker.
 */
export function progressLine(received: number, total: number | undefined, elapsedMs: number, columns = 80): string {
  const speed = elapsedMs > 0 ? (received * 1000) / elapsedMs : 0;
  const speedText = `${formatSize(Math.round(speed))}B/s`;
  const width = Math.max(10, Math.min(50, columns - 40));
  if (total !== undefined && total > 0) {
    const fraction = Math.min(1, received / total);
    const filled = Math.floor(fraction * width);
    const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? (fraction >= 1 ? '=' : '>') : '') + ' '.repeat(width - filled);
    const eta = speed > 0 && fraction < 1 ? `eta ${formatDuration((total - received) / speed)}` : fraction >= 1 ? `in ${formatDuration(elapsedMs / 1000)}` : '';
    return `${String(Math.floor(fraction * 100)).padStart(3)}%[${bar}] ${formatSize(received).padStart(6)}  ${speedText.padStart(9)}  ${eta}`;
  }
  const at = Math.floor(elapsedMs / 100) % (2 * (width - 3));
  const pos = at < width - 3 ? at : 2 * (width - 3) - at;
  const bar = ' '.repeat(pos) + '<=>' + ' '.repeat(width - 3 - pos);
  return `    [${bar}] ${formatSize(received).padStart(6)}  ${speedText.padStart(9)}`;
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m}m ${Math.round(seconds % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** Options of {@link wget}. */
export interface WgetOptions {
  url: URL;
  proxy?: ProxyAddress;
  /** A file name, `-` for stdout, or undefined for wget's choice. */
  output?: string;
  /** Where header blocks are appended; undefined: nowhere. */
  logFile?: string;
  maxRedirect?: number;
  checkCertificate?: boolean;
  /** PEM certificates to trust (instead of the system's). */
  ca?: string | Buffer;
  /** For the connection, and for each wait for bytes. */
  timeoutMs?: number;
  /** wget's lines (stderr in the script). */
  say?: (line: string) => void;
  /** Show a progress bar (the script: stderr is a terminal). */
  progress?: { write(text: string): void; columns: number };
  /** Where `-O -` writes. */
  stdout?: NodeJS.WritableStream;
  /** wget's `-c`: resume `NAME.part` with a Range request. */
  continue?: boolean;
}

/** What {@link wget} did. */
export interface WgetResult {
  url: URL;
  status: number;
  /** Where the body went (`-` for stdout). */
  savedTo: string;
  bytes: number;
  redirects: number;
}

/** A wget failure with its exit status. */
export class WgetError extends CliError {}

/**
 * Fetches `url` like wget: GET with `Connection: close`, redirects followed
 * (with loop detection and a limit), the body saved; resolves with what it
 * did, rejects with a {@link WgetError} carrying wget's exit status.
 */
export async function wget(options: WgetOptions): Promise<WgetResult> {
  const { maxRedirect = 20, say = () => {} } = options;
  const visited = new Set<string>();
  let url = options.url;
  // Chosen, and checked, before anything is fetched: a bad -O is told at once.
  const name = options.output ?? (options.continue ? localFileName(options.url) : unusedName(localFileName(options.url)));
  if (name !== '-') checkWritable(name);
  const part = `${name}.part`;
  let offset = 0;
  if (options.continue && name !== '-') {
    try {
      offset = statSync(part).size;
    } catch {
      offset = 0;
    }
  }
  for (let redirects = 0; ; redirects++) {
    visited.add(url.href);
    say(`--${timestamp()}--  ${url.href}`);
    const conversation = await open(url, options, offset > 0 ? { Range: `bytes=${offset}-` } : {});
    try {
      const head = await conversation.head();
      say(`HTTP request sent, awaiting response... ${head.status} ${head.reason}`);
      if (REDIRECTS.has(head.status)) {
        const location = head.headers.get('location');
        if (location === undefined) throw new WgetError(`ERROR ${head.status}: a redirect without a Location header`, EXIT.server);
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new WgetError(`ERROR ${head.status}: the Location ${JSON.stringify(location)} is not a URL`, EXIT.protocol);
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new WgetError(`ERROR ${head.status}: cannot follow a redirect to ${next.protocol} (${location})`, EXIT.server);
        }
        next.hash = '';
        say(`Location: ${next.href} [following]`);
        if (visited.has(next.href)) throw new WgetError(`Redirect loop: ${next.href} was already visited (${redirects + 1} redirections)`, EXIT.server);
        if (redirects + 1 > maxRedirect) throw new WgetError(`${maxRedirect} redirections exceeded.`, EXIT.server);
        url = next;
        continue;
      }
      if (head.status === 416 && offset > 0) {
        // The part is already whole (wget: "The file is already fully retrieved").
        renameSync(part, name);
        say(`The file is already fully retrieved; '${name}' saved`);
        return { url, status: head.status, savedTo: name, bytes: 0, redirects };
      }
      if (head.status >= 400) throw new WgetError(`${timestamp()} ERROR ${head.status}: ${head.reason || 'error'}.`, EXIT.server);
      const total = head.framing.kind === 'length' ? head.framing.length : undefined;
      const type = head.headers.get('content-type');
      say(`Length: ${total === undefined ? 'unspecified' : `${total} (${formatSize(total)})`}${type ? ` [${type}]` : ''}`);
      // 206 continues the part; anything else (a server that ignores Range) starts again.
      const append = offset > 0 && head.status === 206;
      if (offset > 0) say(append ? `Resuming '${part}' at byte ${offset}` : `The server ignored the Range request: starting '${part}' again`);
      say(`Saving to: ${name === '-' ? 'STDOUT' : `'${name}'`}`);
      const bytes = await conversation.saveBody(name === '-' ? '-' : part, options, total, append);
      if (name !== '-') renameSync(part, name);
      say(`${timestamp()} (${formatSize(Math.round(bytes / Math.max(0.001, conversation.seconds())))}B/s) - ${name === '-' ? 'written to stdout' : `'${name}' saved`} [${bytes}${total === undefined ? '' : `/${total}`}]`);
      return { url, status: head.status, savedTo: name, bytes, redirects };
    } finally {
      conversation.close();
    }
  }
}

function timestamp(): string {
  return new Date().toISOString().replace('T', ' ').slice(0, 19);
}

/**
 * Checks, before anything is fetched, that `name` can be written: its folder
 * exists and is writable, and it is not itself a folder. A {@link WgetError}
 * (exit 3) naming the path otherwise.
 */
export function checkWritable(name: string): void {
  const folder = path.dirname(path.resolve(name));
  let isFolder = false;
  try {
    isFolder = statSync(folder).isDirectory();
  } catch {
    isFolder = false;
  }
  if (!isFolder) throw new WgetError(`cannot write ${name}: the folder ${folder} does not exist (create it, or choose another -O)`, EXIT.io);
  try {
    accessSync(folder, fsConstants.W_OK);
  } catch {
    throw new WgetError(`cannot write ${name}: no permission to write in the folder ${folder} (choose another -O)`, EXIT.io);
  }
  try {
    if (statSync(name).isDirectory()) throw new WgetError(`cannot write ${name}: it is a folder (give a file name with -O)`, EXIT.io);
  } catch (error) {
    if (error instanceof WgetError) throw error;
  }
}

/** A file-system error in words: what went wrong with `name`. */
function describeFileError(error: NodeJS.ErrnoException, name: string): string {
  const why: Record<string, string> = {
    ENOENT: 'its folder does not exist',
    EACCES: 'permission denied',
    EISDIR: 'it is a folder',
    ENOSPC: 'the disk is full',
    EROFS: 'the file system is read-only',
  };
  return `cannot write ${name}: ${why[error.code ?? ''] ?? error.message}`;
}

/** Connects (through the proxy, with TLS for https), sends the GET, and returns the conversation. */
async function open(url: URL, options: WgetOptions, extraHeaders: Record<string, string> = {}): Promise<Conversation> {
  const { proxy, timeoutMs = 30_000, say = () => {} } = options;
  const host = unbracket(url.hostname);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const via = proxy ? ` via proxy ${formatAddress(proxy.host, proxy.port)}` : '';
  const connectHost = proxy?.host ?? host;
  const connectPort = proxy?.port ?? port;
  let socket: Duplex = await connectTcp(connectHost, connectPort, timeoutMs);
  say(`Connecting to ${formatAddress(connectHost, connectPort)}${proxy ? ' (proxy)' : ''}... connected.`);
  const authority = formatAddress(host, port);
  if (url.protocol === 'https:') {
    if (proxy) {
      // A tunnel: the proxy relays bytes; TLS runs end to end through it.
      const tunnel = new Conversation(socket, url, 'CONNECT', options, `${via} (CONNECT)`);
      tunnel.send(serializeRequestHead({ method: 'CONNECT', target: authority, headers: { Host: authority, 'User-Agent': USER_AGENT } }));
      const head = await tunnel.head();
      if (head.status < 200 || head.status >= 300) {
        tunnel.close();
        throw new WgetError(`Proxy tunneling failed: ${head.status} ${head.reason}`, EXIT.server);
      }
      socket = tunnel.detach();
    }
    socket = await startTls(socket, host, port, options);
  }
  const conversation = new Conversation(socket, url, 'GET', options, via);
  const target = proxy && url.protocol === 'http:' ? `${url.origin}${url.pathname}${url.search}` : `${url.pathname}${url.search}`;
  conversation.send(
    serializeRequestHead({
      method: 'GET',
      target,
      headers: { Host: url.host, 'User-Agent': USER_AGENT, Accept: '*/*', 'Accept-Encoding': 'identity', ...extraHeaders, Connection: 'close' },
    }),
  );
  return conversation;
}

function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  const where = formatAddress(host, port);
  return connectWithin({ host, port }, timeoutMs).catch((error: NodeJS.ErrnoException) => {
    const message = error instanceof ConnectTimeoutError ? `cannot connect to ${where}: ${error.message}` : describeConnectError(error, where).message;
    throw new WgetError(message, EXIT.network);
  });
}

function startTls(socket: Duplex, host: string, port: number, { checkCertificate = true, ca, timeoutMs = 30_000, say = () => {} }: WgetOptions): Promise<tls.TLSSocket> {
  const where = formatAddress(host, port);
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      // SNI carries a host name, never an address (RFC 6066 §3).
      ...(net.isIP(host) ? {} : { servername: host }),
      host,
      rejectUnauthorized: checkCertificate,
      ...(ca ? { ca } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new WgetError(`TLS handshake with ${host} timed out after ${timeoutMs / 1000} s`, EXIT.tls));
    }, timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.off('error', onError);
      if (!checkCertificate && !secure.authorized) say(`WARNING: the certificate of ${host} is not trusted (${String(secure.authorizationError)}); continuing as asked (--no-check-certificate).`);
      resolve(secure);
    });
    const onError = (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      secure.destroy();
      // A plain-HTTP server answers the ClientHello with text, which OpenSSL reads as a bad record.
      if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|RECORD_LAYER/i.test(`${error.code ?? ''} ${error.message}`)) {
        reject(new WgetError(`${where} does not speak TLS (a plain-HTTP port? try http:// instead of https://)`, EXIT.tls));
        return;
      }
      reject(new WgetError(`cannot verify ${host}'s certificate or establish TLS: ${error.code ? `${error.code}: ` : ''}${error.message}${checkCertificate ? ' (--ca-certificate FILE to trust it, --no-check-certificate to skip the check)' : ''}`, EXIT.tls));
    };
    secure.once('error', onError);
  });
}

/**
 * One request's response on a socket: its events from the parser, pulled in
 * order, with the socket paused while the consumer is behind (backpressure).
 */
class Conversation {
  readonly #socket: Duplex;
  readonly #parser = new ResponseParser({ maxHeaderBytes: MAX_RESPONSE_HEADER_BYTES });
  readonly #events: HttpEvent<ResponseHead>[] = [];
  readonly #url: URL;
  readonly #options: WgetOptions;
  readonly #via: string;
  readonly #started = performance.now();
  #failure: WgetError | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  readonly #listeners: [string, (...args: never[]) => void][];

  constructor(socket: Duplex, url: URL, method: string, options: WgetOptions, via: string) {
    this.#socket = socket;
    this.#url = url;
    this.#options = options;
    this.#via = via;
    this.#parser.expect(method);
    const timeoutMs = options.timeoutMs ?? 30_000;
    const where = url.host;
    const onData = (chunk: Buffer) => {
      this.#events.push(...this.#parser.push(chunk));
      if (this.#events.length > 64) socket.pause();
      this.#notify();
    };
    const onEnd = () => {
      this.#events.push(...this.#parser.finish());
      this.#closed = true;
      this.#notify();
    };
    const onError = (error: NodeJS.ErrnoException) => {
      this.#failure ??= new WgetError(`${describeConnectError(error, where).message}`, EXIT.network);
      this.#notify();
    };
    const onClose = () => {
      if (!this.#closed) onEnd();
    };
    this.#listeners = [
      ['data', onData],
      ['end', onEnd],
      ['error', onError],
      ['close', onClose],
    ];
    for (const [name, listener] of this.#listeners) socket.on(name, listener);
    (socket as net.Socket).setTimeout?.(timeoutMs, () => {
      this.#failure ??= new WgetError(`no data from ${where} for ${timeoutMs / 1000} s: giving up`, EXIT.network);
      this.#notify();
    });
  }

  send(bytes: Uint8Array): void {
    this.#socket.write(bytes);
  }

  seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #next(): Promise<HttpEvent<ResponseHead>> {
    for (;;) {
      const event = this.#events.shift();
      if (event) {
        if (this.#events.length < 16) this.#socket.resume();
        if (event.type === 'error') throw describeParseError(event.error, this.#url);
        return event;
      }
      if (this.#failure) throw this.#failure;
      if (this.#closed) throw new WgetError(`the connection to ${this.#url.host} closed before a response came`, EXIT.network);
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Waits for the final response's head (interim 1xx heads are logged and skipped). */
  async head(): Promise<ResponseHead> {
    for (;;) {
      const event = await this.#next();
      if (event.type !== 'head') continue;
      await this.#log(event.head.raw);
      if (event.head.status >= 200 || event.head.framing.kind === 'tunnel') return event.head;
    }
  }

  /** Writes the body to `name` (or stdout for `-`), returning its length; trailers go to the log. */
  async saveBody(name: string, options: WgetOptions, total: number | undefined, append = false): Promise<number> {
    let sink: WriteStream | NodeJS.WritableStream;
    if (name === '-') sink = options.stdout ?? process.stdout;
    else {
      const file = createWriteStream(name, { flags: append ? 'a' : 'w' });
      await new Promise<void>((resolve, reject) => {
        file.once('open', () => resolve());
        file.once('error', (error: NodeJS.ErrnoException) => reject(new WgetError(describeFileError(error, name), EXIT.io)));
      });
      sink = file;
    }
    const progress = options.progress;
    let received = 0;
    let lastDraw = 0;
    const draw = (force = false) => {
      if (!progress) return;
      const now = performance.now();
      if (!force && now - lastDraw < 150) return;
      lastDraw = now;
      progress.write(`\r${progressLine(received, total, now - this.#started, progress.columns)}\x1b[K`);
    };
    let sinkError: NodeJS.ErrnoException | undefined;
    sink.on('error', (error: NodeJS.ErrnoException) => (sinkError = error));
    try {
      for (;;) {
        let event: HttpEvent<ResponseHead>;
        try {
          event = await this.#next();
        } catch (error) {
          if (error instanceof WgetError && error.exitCode === EXIT.network && total !== undefined) {
            throw new WgetError(`${error.message} (received ${received} of ${total} bytes)`, EXIT.network);
          }
          throw error;
        }
        if (sinkError) throw new WgetError(describeFileError(sinkError, name), EXIT.io);
        if (event.type === 'data') {
          received += event.data.length;
          if (!sink.write(event.data)) await new Promise((resolve) => sink.once('drain', resolve));
          draw();
        } else if (event.type === 'trailers') {
          await this.#log([...event.trailers].map(([n, v]) => `${n}: ${v}\r\n`).join('') + '\r\n', 'trailers');
        } else if (event.type === 'end') {
          break;
        }
      }
    } finally {
      if (progress && received > 0) {
        draw(true);
        progress.write('\n');
      }
      if (sink !== (options.stdout ?? process.stdout)) await new Promise((resolve) => (sink as WriteStream).end(resolve));
    }
    return received;
  }

  async #log(block: string, what = 'headers'): Promise<void> {
    const file = this.#options.logFile;
    if (!file) return;
    const line = `--- ${new Date().toISOString()} ${what} of ${this.#url.href}${this.#via}\n${block.replace(/\r\n/g, '\n')}`;
    try {
      await appendFile(file, line.endsWith('\n\n') ? line : `${line}\n`);
    } catch (error) {
      throw new WgetError(`cannot write the log ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, EXIT.io);
    }
  }

  /** Hands the raw socket over (after a CONNECT), without the listeners of this conversation. */
  detach(): Duplex {
    for (const [name, listener] of this.#listeners) this.#socket.off(name, listener);
    (this.#socket as net.Socket).setTimeout?.(0);
    this.#socket.resume();
    return this.#socket;
  }

  close(): void {
    this.#socket.destroy();
  }
}

function describeParseError(error: HttpParseError, url: URL): WgetError {
  if (error.code === 'HPE_INCOMPLETE') return new WgetError(`${url.host}: ${error.message}`, EXIT.network);
  return new WgetError(`malformed response from ${url.host}: ${error.message}`, EXIT.protocol);
}

const command = defineCommand({
  name: 'wget.ts',
  summary: 'Download a URL over HTTP/1.1 on raw sockets, like wget: redirects, proxy, HTTPS, a header log.',
  options: {
    url: { type: 'string', required: true, help: 'the http:// or https:// URL to fetch' },
    proxy: { type: 'string', help: 'HTTP proxy: HOST (with --port) or http://HOST:PORT' },
    port: { type: 'string', help: `the proxy's port (default: ${DEFAULT_PROXY_PORT})` },
    'output-document': { type: 'string', short: 'O', metavar: 'FILE', help: "save to FILE ('-' for stdout) instead of the URL's name" },
    log: { type: 'string', metavar: 'FILE', default: DEFAULT_LOG, help: 'append every header block received to FILE' },
    'max-redirect': { type: 'string', metavar: 'N', default: '20', help: 'follow at most N redirections' },
    'no-check-certificate': { type: 'boolean', help: "don't verify the server's certificate" },
    'ca-certificate': { type: 'string', metavar: 'FILE', help: 'trust the certificates in FILE (PEM)' },
    timeout: { type: 'string', metavar: 'SECONDS', default: '30', help: 'give up connecting, or waiting for data, after this long' },
    quiet: { type: 'boolean', short: 'q', help: 'print nothing but errors' },
    continue: { type: 'boolean', short: 'c', help: 'resume FILE.part left by an interrupted download (a Range request)' },
  },
  epilog: `Exit status, as wget's: 0 ok, 1 generic error, 2 bad option or URL, 3 file I/O error,
4 network failure, 5 TLS failure, 7 malformed response, 8 server error response.`,
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const url = parseUrl(opts.url);
  if (opts.port !== undefined && opts.proxy === undefined) throw new UsageError('argument --port: is the proxy\'s port; give --proxy too');
  const proxy = opts.proxy === undefined ? undefined : parseProxy(opts.proxy, opts.port);
  const maxRedirect = /^\d+$/.test(opts['max-redirect']) ? Number(opts['max-redirect']) : NaN;
  if (!Number.isSafeInteger(maxRedirect)) throw new UsageError(`argument --max-redirect: expected a whole number, got '${opts['max-redirect']}'`);
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  let ca: Buffer | undefined;
  if (opts['ca-certificate'] !== undefined) {
    try {
      ca = readFileSync(opts['ca-certificate']);
    } catch (error) {
      throw new CliError(`cannot read --ca-certificate ${opts['ca-certificate']}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, EXIT.io);
    }
  }
  const say = opts.quiet ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
  const progress = !opts.quiet && process.stderr.isTTY ? { write: (text: string) => process.stderr.write(text), columns: process.stderr.columns || 80 } : undefined;
  await wget({
    url,
    ...(proxy ? { proxy } : {}),
    ...(opts['output-document'] === undefined ? {} : { output: opts['output-document'] }),
    logFile: path.resolve(opts.log),
    maxRedirect,
    checkCertificate: !opts['no-check-certificate'],
    ...(ca ? { ca } : {}),
    timeoutMs,
    say,
    ...(progress ? { progress } : {}),
    continue: opts.continue,
  });
  return EXIT.ok;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
