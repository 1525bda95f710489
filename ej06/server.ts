/**
 * A static HTTP/1.1 server written on raw TCP sockets (`node:net`), with the
 * HTTP parsing and serializing of `lib/http.ts`: 200 for a file that exists,
 * 404 with a prepared page (ej06/404.html) for one that does not.
 *
 * ```sh
 * npx tsx ej06/server.ts                           # serves ej06/www on 127.0.0.1:8080
 * npx tsx ej06/server.ts --port 0 --root ~/site    # any free port, another folder
 * curl -i http://127.0.0.1:8080/                   # then open it in a browser
 * ```
 *
 * Prints `listening on 127.0.0.1:8080 (tcp)` on stdout when ready, then one
 * line per request in the Common Log Format (`127.0.0.1 - - [24/Nov/2026:20:15:14
 * +0000] "GET / HTTP/1.1" 200 1024`) on stdout; diagnostics on stderr.
 *
 * What it does: GET and HEAD (405 with `Allow` for other methods); the right
 * Content-Type and Content-Length; `index.html` for a folder, and a 301 that
 * adds the slash to a folder named without one (so that relative links in
 * its page resolve); Last-Modified, and 304 for an If-Modified-Since that is
 * not older; keep-alive and pipelining, answered in order; 400 for a
 * malformed request, 414 and 431 for oversized ones, 505 for an HTTP version
 * other than 1.x; a connection idle between requests is closed, and a client
 * that takes too long to send one request (slowloris) gets 408.
 *
 * A request never leaves the root: the path is percent-decoded segment by
 * segment, and `..` or `.` segments, an encoded `/` (`%2f`), a backslash, a
 * NUL or a control byte are refused with 400; a symlink whose target lies
 * outside the root is refused with 403. The check is made on what was
 * opened, not on the path (see {@link openInside}), so a symlink swapped in
 * after a check reads nothing outside. A folder's redirect merges doubled
 * slashes (`//images` → `/images/`, never the scheme-relative `//images/`).
 *
 * @module
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, readFile, readlink, realpath, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive } from '../lib/cli.ts';
import { drained, errorPage as httpErrorPage, escapeHtml, HeaderList, type RequestHead, RequestParser, STATUS_TEXT, keepAlive, serializeResponseHead } from '../lib/http.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { closeKeepAlive, listenTcp, onShutdown, readyLine } from '../lib/server.ts';
import { fsReason } from '../lib/fs-errors.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The demo site served when no `--root` is given. */
export const DEFAULT_ROOT = path.join(HERE, 'www');
/** The page sent with every 404. */
export const DEFAULT_NOT_FOUND = path.join(HERE, '404.html');

/** Content types by extension; anything else is `application/octet-stream`. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.xml': 'application/xml',
  '.csv': 'text/csv; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.pdf': 'application/pdf',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.mp4': 'video/mp4',
  '.mp3': 'audio/mpeg',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
};

/** The Content-Type for a file name, by its extension. */
export function contentType(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Where a request target leads, before the file system is asked. */
export type TargetPath =
  | { ok: true; segments: string[]; trailingSlash: boolean; path: string; query: string }
  | { ok: false; status: 400; reason: string };

/**
 * Turns a request target into path segments under the root, refusing every
 * way out: `..` and `.` segments (also when encoded, `%2e%2e`), an encoded
 * slash, a backslash, NUL and other control bytes, malformed escapes.
 * Accepts the origin form (`/a/b?q`) and the absolute form (`http://h/a/b`).
 * Pure: it never touches the file system.
 */
export function parseTargetPath(target: string): TargetPath {
  const refuse = (reason: string): TargetPath => ({ ok: false, status: 400, reason });
  let rest = target;
  const absolute = /^https?:\/\/[^/?#]*/i.exec(rest);
  if (absolute) rest = rest.slice(absolute[0].length) || '/';
  if (!rest.startsWith('/')) return refuse(`the target ${JSON.stringify(target)} is not a path starting with /`);
  if (rest.includes('#')) return refuse('a fragment (#) is not sent in a request');
  const q = rest.indexOf('?');
  const rawPath = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? '' : rest.slice(q);
  const segments: string[] = [];
  const raw = rawPath.split('/').slice(1);
  for (const [i, encoded] of raw.entries()) {
    if (encoded === '' && i < raw.length - 1) continue; // `//` collapses, as nginx does
    let segment: string;
    try {
      segment = decodeURIComponent(encoded);
    } catch {
      return refuse(`malformed percent-escape in ${JSON.stringify(encoded)}`);
    }
    if (segment === '..' || segment === '.') return refuse(`a "${segment}" segment would walk the path`);
    if (segment.includes('/')) return refuse('an encoded slash (%2f) inside a segment');
    if (segment.includes('\\')) return refuse('a backslash in the path');
    if (/[\x00-\x1f\x7f]/.test(segment)) return refuse('a control byte (NUL, CR, LF, …) in the path');
    if (segment !== '') segments.push(segment);
  }
  return { ok: true, segments, trailingSlash: rawPath.endsWith('/'), path: rawPath, query };
}

/**
 * Where a folder named without its slash moves: its path with every run of
 * slashes merged into one, the slash added, the query kept. Merged because
 * `//images` would otherwise become `//images/`, which a browser reads as a
 * scheme-relative URL: the host `images`, somewhere else.
 */
export function folderLocation(target: { path: string; query: string }): string {
  return `${target.path.replace(/\/{2,}/g, '/')}/${target.query}`;
}

/** Whether `real` (an absolute real path) is `root` itself or lies under it. */
export function isInside(root: string, real: string): boolean {
  return real === root || real.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** What {@link openInside} opened and checked, or why it refused. */
export type Opened = { ok: true; handle: FileHandle; real: string; stats: Stats } | { ok: false; status: 403 | 404; reason?: string };

/**
 * Read-only; O_NONBLOCK so that opening a named pipe returns at once instead
 * of holding a thread until a writer comes (reads of regular files ignore
 * it); O_NOCTTY so that a terminal device never becomes ours.
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

/**
 * Opens `file` (a path under `realRoot`) and then checks what was opened,
 * not the path: a path checked first and opened afterwards can be changed
 * in between (a symlink swapped in for a file or for a folder on the way)
 * and the open would read outside the root. The descriptor's real path is
 * asked of the kernel (`/proc/self/fd/N` on Linux; elsewhere `realpath` of
 * the name, after the open) and trusted only if it names the very file that
 * is open (same device and inode as `fstat` of the descriptor); it must lie
 * inside `realRoot`. A symlink is followed wherever it is on the path, and
 * served only when what it leads to is inside. Anything but a regular file
 * or a folder (a pipe, a socket, a device) is refused. The caller closes
 * the handle it gets.
 */
export async function openInside(realRoot: string, file: string): Promise<Opened> {
  let handle: FileHandle;
  try {
    handle = await open(file, OPEN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP') return { ok: false, status: 404 };
    if (code === 'EACCES' || code === 'EPERM') return { ok: false, status: 403, reason: 'permission denied' };
    if (code === 'ENXIO' || code === 'ENODEV' || code === 'EOPNOTSUPP') return { ok: false, status: 403, reason: 'not a regular file' };
    throw error;
  }
  let refusal: Opened | undefined;
  try {
    const stats = await handle.stat();
    const real = await openedPath(handle, file, stats);
    if (real === undefined) refusal = { ok: false, status: 403, reason: 'the file changed while it was being opened' };
    else if (!isInside(realRoot, real)) refusal = { ok: false, status: 403, reason: 'the path leads outside the served folder (a symlink)' };
    else if (!stats.isFile() && !stats.isDirectory()) refusal = { ok: false, status: 403, reason: 'not a regular file' };
    else return { ok: true, handle, real, stats };
  } catch (error) {
    await handle.close();
    throw error;
  }
  await handle.close();
  return refusal;
}

/** The real path of an open file, or undefined when no path names that very file (it was swapped or removed meanwhile). */
async function openedPath(handle: FileHandle, file: string, opened: Stats): Promise<string | undefined> {
  const names = async (candidate: string | undefined) => {
    if (candidate === undefined || !path.isAbsolute(candidate)) return false;
    const now = await stat(candidate).catch(() => undefined);
    return now !== undefined && now.dev === opened.dev && now.ino === opened.ino;
  };
  if (process.platform === 'linux') {
    const link = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
    if (await names(link)) return link;
  }
  const real = await realpath(file).catch(() => undefined);
  return (await names(real)) ? real : undefined;
}

/** An HTTP date (IMF-fixdate), e.g. `Tue, 24 Nov 2026 20:15:14 GMT`. */
export function httpDate(date: Date): string {
  return date.toUTCString();
}

/** A time in the Common Log Format: `24/Nov/2026:20:15:14 +0000`. */
export function clfDate(date: Date): string {
  const [, day, month, year, time] = /^\w+, (\d\d) (\w+) (\d+) (\S+)/.exec(date.toUTCString()) ?? [];
  return `${day}/${month}/${year}:${time} +0000`;
}

/** Options of {@link createStaticServer}. */
export interface StaticServerOptions {
  /** The folder served; nothing outside it is ever read. */
  root: string;
  /** The page sent with a 404. */
  notFoundPage?: string;
  /** Close a keep-alive connection silent this long between requests. */
  idleTimeoutMs?: number;
  /** A request must arrive whole within this time from its first byte (else 408). */
  requestTimeoutMs?: number;
  /** One Common Log Format line per request. */
  accessLog?: Logger;
  /** Diagnostics. */
  log?: Logger;
}

/** A server made by {@link createStaticServer}, with a close that ends idle connections at once. */
export interface StaticServer {
  server: net.Server;
  /** Stops accepting, closes idle connections, lets busy ones finish (destroyed after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

interface Resolved {
  status: number;
  file?: string;
  stats?: Stats;
  /** The open file of a 200, already checked to lie inside the root; whoever gets it closes it. */
  handle?: FileHandle;
  location?: string;
  reason?: string;
}

const ALLOW = 'GET, HEAD';
/** Stop reading a connection's pipelined requests past this many unanswered ones. */
const MAX_PENDING = 16;
/** Files up to this size are read whole and sent with their head in one write. */
const SMALL_FILE = 64 * 1024;

/**
 * Creates (but does not start) the static file server. Each connection
 * parses requests incrementally and answers them strictly in order; a
 * malformed one is answered (400, 414, 431, 505) and the connection closed,
 * and no client can disturb the others: the handler is an error boundary.
 */
export async function createStaticServer({
  root,
  notFoundPage = DEFAULT_NOT_FOUND,
  idleTimeoutMs = 5000,
  requestTimeoutMs = 10_000,
  accessLog = silent,
  log = silent,
}: StaticServerOptions): Promise<StaticServer> {
  const realRoot = await realpath(root).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot serve ${root}: ${error.code === 'ENOENT' ? 'no such folder' : error.message}`);
  });
  if (!(await stat(realRoot)).isDirectory()) throw new CliError(`cannot serve ${root}: not a folder`);
  const notFound = await readFile(notFoundPage).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot read the 404 page ${notFoundPage}: ${fsReason(error, 'file')}`);
  });

  const connections = new Set<Connection>();
  let stopping = false;

  async function resolve(head: RequestHead): Promise<Resolved> {
    const target = parseTargetPath(head.target);
    if (!target.ok) return { status: 400, reason: target.reason };
    const first = await openInside(realRoot, path.join(realRoot, ...target.segments));
    if (!first.ok) return first;
    let { handle, real, stats } = first;
    if (stats.isDirectory()) {
      await handle.close();
      if (!target.trailingSlash) return { status: 301, location: folderLocation(target) };
      const index = await openInside(realRoot, path.join(real, 'index.html'));
      if (!index.ok) return index.status === 403 ? { status: 403, reason: `index.html: ${index.reason}` } : { status: 404 };
      if (!index.stats.isFile()) {
        await index.handle.close();
        return { status: 404 };
      }
      ({ handle, real, stats } = index);
    }
    return { status: 200, file: real, stats, handle };
  }

  class Connection {
    readonly socket: net.Socket;
    readonly peer: string;
    readonly parser = new RequestParser();
    head: RequestHead | undefined;
    /** Responses are chained so that pipelined requests are answered in order. */
    queue: Promise<void> = Promise.resolve();
    pending = 0;
    closing = false;
    timer: ReturnType<typeof setTimeout> | undefined;
    /** What the timer waits for: a first byte (idle) or the rest of a request begun. */
    timerKind: 'idle' | 'request' | undefined;

    constructor(socket: net.Socket) {
      this.socket = socket;
      this.peer = socket.remoteAddress ?? '-';
      socket.on('error', (error: NodeJS.ErrnoException) => log(`${formatAddress(this.peer, socket.remotePort ?? 0)} ${error.code ?? error.message}`));
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('end', () => this.onEnd());
      socket.on('close', () => {
        this.setTimer(undefined);
        connections.delete(this);
      });
      // A client that stops reading our responses is dropped after a while.
      socket.setTimeout(Math.max(60_000, requestTimeoutMs), () => socket.destroy());
      this.setTimer('idle');
    }

    get idle(): boolean {
      return this.pending === 0 && this.parser.idle;
    }

    /**
     * Idle: a connection silent this long between requests is closed without
     * a word. Request: a request begun must be whole within requestTimeoutMs
     * of its first byte; more bytes do not reset the clock (slowloris).
     */
    setTimer(kind: 'idle' | 'request' | undefined): void {
      clearTimeout(this.timer);
      this.timerKind = kind;
      this.timer = undefined;
      if (kind === 'idle') {
        if (stopping) return void this.socket.destroy();
        this.timer = setTimeout(() => this.socket.destroy(), idleTimeoutMs);
      } else if (kind === 'request') {
        this.timer = setTimeout(() => {
          this.closing = true;
          this.enqueue(() => this.sendError(this.head, 408, `the request did not arrive whole within ${requestTimeoutMs / 1000} s`));
        }, requestTimeoutMs);
      }
    }

    onData(chunk: Buffer): void {
      // Once closing, bytes are read and dropped (a lingering close: unread
      // bytes would make the kernel reset the connection and lose our answer).
      if (this.closing) return;
      for (const event of this.parser.push(chunk)) {
        if (event.type === 'head') {
          this.head = event.head;
        } else if (event.type === 'end') {
          const head = this.head as RequestHead;
          this.head = undefined;
          if (head.method === 'CONNECT') this.closing = true;
          this.enqueue(() => this.respond(head));
          if (this.closing) break;
        } else if (event.type === 'error') {
          this.closing = true;
          const { status, message } = event.error;
          this.enqueue(() => this.sendError(this.head, status, message));
        }
        // 'data' (a request body) is read and dropped; 'upgrade' only follows CONNECT.
      }
      if (this.closing) this.setTimer(undefined);
      else if (!this.parser.idle) {
        if (this.timerKind !== 'request') this.setTimer('request');
      } else if (this.timerKind === 'request' || this.pending > 0) this.setTimer(undefined);
      if (this.pending >= MAX_PENDING) this.socket.pause();
    }

    onEnd(): void {
      // The client sent FIN: answer what it asked, then close our side.
      this.setTimer(undefined);
      this.closing = true;
      this.queue = this.queue.then(() => void this.socket.end());
    }

    enqueue(task: () => Promise<boolean>): void {
      this.pending++;
      this.queue = this.queue
        .then(async () => {
          if (this.socket.destroyed || this.socket.writableEnded) return;
          const keep = await task();
          if (!keep && !this.socket.writableEnded) {
            this.closing = true;
            this.socket.end();
            // Give the client a moment to read the answer and close first.
            setTimeout(() => this.socket.destroy(), 2000).unref();
          }
        })
        .catch((error: unknown) => {
          log(`${this.peer}: ${error instanceof Error ? error.message : String(error)}`);
          this.socket.destroy();
        })
        .finally(() => {
          this.pending--;
          if (this.closing || this.socket.destroyed) return;
          if (this.pending < MAX_PENDING / 2) this.socket.resume();
          if (this.pending === 0 && this.parser.idle) this.setTimer('idle');
        });
    }

    /** Answers one request; resolves with whether the connection stays open. */
    async respond(head: RequestHead): Promise<boolean> {
      const keep = keepAlive(head) && !stopping;
      if (head.version === 'HTTP/1.1' && head.headers.getAll('host').length !== 1) {
        return this.sendError(head, 400, 'an HTTP/1.1 request needs exactly one Host header');
      }
      if (head.method !== 'GET' && head.method !== 'HEAD') {
        const close = head.method === 'CONNECT' || !keep;
        return this.sendPage(head, 405, errorPage(405, `${head.method} is not allowed here; this server answers ${ALLOW}.`), { Allow: ALLOW }, !close);
      }
      const found = await resolve(head);
      if (found.status === 404) return this.sendPage(head, 404, notFound, {}, keep);
      if (found.status === 301 && found.location) {
        const body = errorPage(301, 'The folder is at', `<p><a href="${escapeHtml(found.location)}">${escapeHtml(found.location)}</a></p>\n`);
        return this.sendPage(head, 301, body, { Location: found.location }, keep);
      }
      if (found.status !== 200 || !found.file || !found.stats || !found.handle) {
        await found.handle?.close();
        return this.sendPage(head, found.status, errorPage(found.status, found.reason ?? ''), {}, keep && found.status !== 400);
      }
      const { handle } = found;
      try {
        return await this.sendFile(head, found.file, found.stats, handle, keep);
      } finally {
        await handle.close();
      }
    }

    /** Sends the file already opened (and checked) as `handle`; the caller closes it. */
    async sendFile(head: RequestHead, file: string, stats: Stats, handle: FileHandle, keep: boolean): Promise<boolean> {
      const modified = Math.floor(stats.mtimeMs / 1000);
      const headers = new HeaderList({ 'Last-Modified': httpDate(new Date(modified * 1000)) });
      const since = head.headers.get('if-modified-since');
      if (since !== undefined) {
        const sinceMs = Date.parse(since);
        if (!Number.isNaN(sinceMs) && modified * 1000 <= sinceMs) {
          this.writeHead(304, headers, keep);
          this.logLine(head, 304, 0);
          return keep;
        }
      }
      headers.set('Content-Type', contentType(file));
      headers.set('Content-Length', stats.size);
      if (head.method === 'HEAD') {
        this.writeHead(200, headers, keep);
        this.logLine(head, 200, 0);
        return keep;
      }
      if (stats.size <= SMALL_FILE) {
        const body = Buffer.alloc(stats.size);
        const { bytesRead } = await handle.read(body, 0, stats.size, 0);
        await this.send(Buffer.concat([this.head200(headers, keep), body.subarray(0, bytesRead)]));
        // A file that shrank meanwhile cannot honour its Content-Length: close.
        if (bytesRead < stats.size) keep = false;
      } else {
        this.socket.write(this.head200(headers, keep));
        let offset = 0;
        const buffer = Buffer.alloc(256 * 1024);
        while (offset < stats.size && !this.socket.destroyed) {
          const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, stats.size - offset), offset);
          if (bytesRead === 0) {
            keep = false;
            break;
          }
          offset += bytesRead;
          // A copy: the buffer is reused for the next read while this one may still be queued.
          await this.send(Buffer.from(buffer.subarray(0, bytesRead)));
        }
      }
      this.logLine(head, 200, stats.size);
      return keep;
    }

    /**
     * Writes, and waits while the socket's buffer is full: a client that
     * pipelines requests without reading the answers is held back (its
     * socket is paused once MAX_PENDING answers wait), not buffered for.
     */
    async send(bytes: Uint8Array): Promise<void> {
      if (!this.socket.write(bytes)) await drained(this.socket);
    }

    head200(headers: HeaderList, keep: boolean): Buffer {
      return Buffer.from(serializeResponseHead({ status: 200, headers: this.common(headers, keep) }));
    }

    /** Date and Server first, then the response's own fields, then Connection. */
    common(headers: HeaderList, keep: boolean): HeaderList {
      const all = new HeaderList({ Date: currentDate(), Server: 'ej06' });
      for (const [name, value] of headers) all.add(name, value);
      return all.set('Connection', keep ? 'keep-alive' : 'close');
    }

    writeHead(status: number, headers: HeaderList, keep: boolean): void {
      this.socket.write(serializeResponseHead({ status, headers: this.common(headers, keep) }));
    }

    async sendPage(head: RequestHead | undefined, status: number, body: Uint8Array, extra: Record<string, string>, keep: boolean): Promise<boolean> {
      const headers = new HeaderList(extra);
      headers.set('Content-Type', 'text/html; charset=utf-8');
      headers.set('Content-Length', body.length);
      const bytes = serializeResponseHead({ status, headers: this.common(headers, keep) });
      const withBody = head?.method !== 'HEAD';
      await this.send(withBody ? Buffer.concat([bytes, body]) : bytes);
      this.logLine(head, status, withBody ? body.length : 0);
      return keep;
    }

    async sendError(head: RequestHead | undefined, status: number, message: string): Promise<boolean> {
      log(`${this.peer}: ${status} ${message}`);
      return this.sendPage(head, status, errorPage(status, message), {}, false);
    }

    logLine(head: RequestHead | undefined, status: number, bytes: number): void {
      const request = head ? `${head.method} ${head.target} ${head.version}` : '-';
      accessLog(`${this.peer} - - [${clfDate(new Date())}] "${request.replace(/["\\]/g, '\\$&')}" ${status} ${bytes}`);
    }
  }

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    connections.add(new Connection(socket));
  });

  return {
    server,
    close(graceMs = 2500) {
      stopping = true;
      return closeKeepAlive(server, connections, graceMs);
    },
  };
}

let dateCache = { second: 0, text: '' };
function currentDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateCache.second) dateCache = { second, text: httpDate(new Date(second * 1000)) };
  return dateCache.text;
}

/** ej06's page for an error or redirect status (lib/http's, signed ej06). */
export function errorPage(status: number, detail: string, extraHtml = ''): Buffer {
  return httpErrorPage(status, detail, { signature: 'ej06', extraHtml });
}

const command = defineCommand({
  name: 'server.ts',
  summary: 'Static HTTP/1.1 server on raw sockets: 200 for what exists, 404 with a prepared page otherwise.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '8080', help: 'port to listen on; 0 picks a free one' },
    root: { type: 'string', metavar: 'DIR', help: 'folder to serve (default: the demo site ej06/www)' },
    'not-found': { type: 'string', metavar: 'FILE', help: 'page sent with a 404 (default: ej06/404.html)' },
    'idle-timeout': { type: 'string', default: '5', metavar: 'SECONDS', help: 'close a keep-alive connection idle this long' },
    'request-timeout': { type: 'string', default: '10', metavar: 'SECONDS', help: 'answer 408 to a request not received whole in this time' },
    quiet: { type: 'boolean', short: 'q', help: 'no access log on stdout, no diagnostics on stderr' },
  },
  epilog: 'Prints "listening on HOST:PORT (tcp)" on stdout when ready, then one Common Log Format line per request. Ctrl-C stops it.\nExit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen or read the site or the 404 page, 2 bad usage, 130 a second Ctrl-C or connections still open after the grace period.',
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const idleTimeoutMs = parsePositive(opts['idle-timeout'], 'idle-timeout') * 1000;
  const requestTimeoutMs = parsePositive(opts['request-timeout'], 'request-timeout') * 1000;
  const log = createLogger('server', { quiet: opts.quiet });
  const accessLog: Logger = opts.quiet ? silent : (line) => process.stdout.write(`${line}\n`);

  const site = await createStaticServer({
    root: opts.root ?? DEFAULT_ROOT,
    notFoundPage: opts['not-found'] ?? DEFAULT_NOT_FOUND,
    idleTimeoutMs,
    requestTimeoutMs,
    accessLog,
    log,
  });
  console.log(readyLine(await listenTcp(site.server, host, port), 'tcp'));
  onShutdown(() => site.close(2500), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
