/**
 * An HTTP/1.1 load balancer on raw TCP sockets (`node:net`), with the HTTP
 * parsing and serializing of `lib/http.ts`: it stands in front of the ej06
 * static servers named in `config.ini` and hands each request to the next
 * healthy one, round robin.
 *
 * ```sh
 * npx tsx ej06/server.ts --port 8001 &    # three backends (ej08/config.ini names them)
 * npx tsx ej06/server.ts --port 8002 &
 * npx tsx ej06/server.ts --port 8003 &
 * npx tsx ej08/balancer.ts                # listens on 127.0.0.1:8080
 * curl -i http://127.0.0.1:8080/
 * ```
 *
 * `config.ini` is read from the current folder (as the assignment's
 * `python ejer8.py` does), else from beside this script; `--config FILE`
 * names another. One section per backend:
 *
 * ```ini
 * [nodo1]
 * host = 127.0.0.1
 * port = 8001
 * ```
 *
 * Prints `listening on 127.0.0.1:8080 (tcp)` on stdout when ready; on stderr,
 * one timestamped line per request (client, request, backend chosen, status,
 * milliseconds, retries) and one per health change (`nodo2 127.0.0.1:8002
 * is DOWN after 2 failed checks: connection refused`).
 *
 * How it balances: round robin, request by request (a keep-alive client's
 * requests go to successive backends), skipping backends marked down. The
 * client keeps its connection; backend connections are pooled per backend
 * (kept alive, reused, closed after 2 s idle), except for non-idempotent
 * requests, which always get a fresh one. Adds `X-Forwarded-For` (appended
 * to any the client sent), `X-Forwarded-Proto: http`, `X-Forwarded-Host`
 * and `Via: 1.1 ej08`; drops hop-by-hop fields (but `Connection` cannot
 * name Content-Length or Host away) and writes each body's framing itself
 * (its own Content-Length or chunked), so that a backend reads every
 * request where the balancer did (no request smuggling). Bodies are
 * streamed both ways with backpressure, never buffered whole.
 *
 * Health: every `--check-interval` seconds each backend gets a `GET
 * --check-path`; a 2xx or 3xx within `--check-timeout` is a success. A
 * backend is marked down after `--fall` failures in a row (a connection
 * refused during a real request counts too) and up again after `--rise`
 * successes. A request whose backend connection fails before any byte of
 * the response (refused, reset, closed, timed out) is retried on the next
 * backend when its method is idempotent and it has no body; otherwise the
 * client gets 502 (504 on a timeout). No healthy backend: 503 with a page
 * that lists the backends and why each is down. A malformed request: 400
 * (414, 431, 501, 505), as ej06 answers, and the connection closes; so does
 * framing two parsers could read two ways (Content-Length with
 * Transfer-Encoding, Transfer-Encoding in HTTP/1.0, `Content-Length: 5, 5`).
 *
 * @module
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive } from '../lib/cli.ts';
import {
  encodeChunk,
  HeaderList,
  keepAlive,
  lastChunk,
  type RequestHead,
  RequestParser,
  type ResponseHead,
  ResponseParser,
  STATUS_TEXT,
  serializeRequestHead,
  serializeResponseHead,
  withoutHopByHop,
  drained,
  errorPage as httpErrorPage,
  escapeHtml,
} from '../lib/http.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { configPath as sharedConfigPath, loadConfigFile, parseHostSections } from '../lib/config-ini.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { ConnectTimeoutError, connectWithin } from '../lib/net-errors.ts';
import { closeKeepAlive, listenTcp, onShutdown, readyLine } from '../lib/server.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The example configuration beside this script, used when the current folder has no config.ini. */
export const BUNDLED_CONFIG = path.join(HERE, 'config.ini');
/** The pseudonym in `Via` (RFC 9110 §7.6.3). */
export const VIA = '1.1 ej08';

// ---------------------------------------------------------------------------
// config.ini

/** One backend as config.ini declares it. */
export interface BackendSpec {
  /** The section name (`nodo1`), used in logs and pages. */
  name: string;
  host: string;
  port: number;
  /** The line of its `[section]` header. */
  line: number;
}

/** A config.ini that cannot be used: the message names the file, the line and the section. */
export class ConfigError extends SyntaxError {
  readonly line: number | undefined;
  constructor(message: string, line?: number) {
    super(message);
    this.name = 'ConfigError';
    this.line = line;
  }
}

/**
 * Reads the backends from config.ini text (lib/config-ini: each mistake
 * reported with its line and section). Throws {@link ConfigError}.
 */
export function parseConfig(text: string, file = 'config.ini'): BackendSpec[] {
  return parseHostSections(text, {
    file,
    what: 'backends',
    example: '[nodo1]',
    header: '[section]',
    checkSection: (name) => (/^[A-Za-z0-9_-]+$/.test(name) ? undefined : `section name ${JSON.stringify(name)} must be letters, digits, _ or - (like [nodo1])`),
    error: (message, line) => new ConfigError(message, line),
  });
}

/**
 * Which config.ini to read: `--config` when given, else `./config.ini`,
 * else the example beside this script.
 */
export function configPath(option: string | undefined, cwd = process.cwd()): string {
  return sharedConfigPath(option, BUNDLED_CONFIG, cwd);
}

/** Reads and parses a config file; a missing or bad one is a {@link CliError} with exit 2. */
export function loadConfig(file: string): Promise<BackendSpec[]> {
  return loadConfigFile(file, parseConfig);
}

// ---------------------------------------------------------------------------
// Health and selection

/** What {@link Health.record} reports when a result changes the state. */
export type Transition = 'up' | 'down' | undefined;

/**
 * A backend's health, HAProxy-style: up until `fall` failures in a row,
 * then down until `rise` successes in a row. Starts up (a dead backend is
 * found by the first checks, or by the first refused request).
 */
export class Health {
  up = true;
  failures = 0;
  successes = 0;
  /** Why the last failure happened, for the log and the 503 page. */
  lastError = '';
  readonly fall: number;
  readonly rise: number;

  constructor(fall = 2, rise = 2) {
    if (!(Number.isInteger(fall) && fall >= 1 && Number.isInteger(rise) && rise >= 1)) {
      throw new RangeError(`Cannot track health: fall and rise must be integers >= 1, got ${fall} and ${rise}`);
    }
    this.fall = fall;
    this.rise = rise;
  }

  /** Records one result; returns `'down'` or `'up'` when it changes the state. */
  record(ok: boolean, error = ''): Transition {
    if (!ok) this.lastError = error;
    if (this.up) {
      if (ok) {
        this.failures = 0;
        return undefined;
      }
      this.failures += 1;
      if (this.failures < this.fall) return undefined;
      this.up = false;
      this.successes = 0;
      return 'down';
    }
    if (!ok) {
      this.successes = 0;
      return undefined;
    }
    this.successes += 1;
    if (this.successes < this.rise) return undefined;
    this.up = true;
    this.failures = 0;
    return 'up';
  }
}

/**
 * Round robin over the items that are up: each pick takes the next one after
 * the previous pick, skipping those down and those in `exclude` (the ones a
 * request has already tried). Undefined when none is eligible.
 */
export class RoundRobin<T extends { health: { up: boolean } }> {
  readonly items: readonly T[];
  #next = 0;

  constructor(items: readonly T[]) {
    this.items = items;
  }

  pick(exclude: ReadonlySet<T> = new Set()): T | undefined {
    const n = this.items.length;
    for (let i = 0; i < n; i++) {
      const index = (this.#next + i) % n;
      const item = this.items[index] as T;
      if (item.health.up && !exclude.has(item)) {
        this.#next = (index + 1) % n;
        return item;
      }
    }
    return undefined;
  }
}

/** Methods whose request may be sent twice (RFC 9110 §9.2.2). */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * The request head sent to a backend: hop-by-hop fields dropped,
 * `X-Forwarded-For` extended with the client's address, `X-Forwarded-Proto`,
 * `X-Forwarded-Host` and `Via` added, a Host supplied for an HTTP/1.0
 * client that sent none, and the body framing written by the balancer
 * itself from what its parser read: `Content-Length: N` for a body of N
 * bytes, `Transfer-Encoding: chunked` for a chunked one, neither for none.
 * Whatever framing fields the client sent (or named in Connection) never
 * reach the backend as they were, so the backend delimits the body exactly
 * where the balancer did (no request smuggling).
 */
export function backendRequestHeaders(head: RequestHead, clientIp: string, backend: { host: string; port: number }, reuse: boolean): HeaderList {
  const headers = withoutHopByHop(head.headers);
  headers.delete('expect').delete('content-length').delete('transfer-encoding');
  const forwarded = headers.get('x-forwarded-for');
  headers.set('X-Forwarded-For', forwarded ? `${forwarded}, ${clientIp}` : clientIp);
  headers.set('X-Forwarded-Proto', 'http');
  const host = head.headers.get('host');
  if (host === undefined) headers.set('Host', formatAddress(backend.host, backend.port));
  else headers.set('X-Forwarded-Host', host);
  const via = headers.get('via');
  headers.set('Via', via ? `${via}, ${VIA}` : VIA);
  if (head.framing.kind === 'length') headers.set('Content-Length', head.framing.length);
  else if (head.framing.kind === 'chunked') headers.set('Transfer-Encoding', 'chunked');
  headers.set('Connection', reuse ? 'keep-alive' : 'close');
  return headers;
}

// ---------------------------------------------------------------------------
// Backends: pooled connections and health checks

/** Options of {@link createBalancer}. */
export interface BalancerOptions {
  backends: readonly BackendSpec[];
  /** Seconds between health checks of each backend (0: no checks). */
  checkIntervalMs?: number;
  checkPath?: string;
  checkTimeoutMs?: number;
  fall?: number;
  rise?: number;
  connectTimeoutMs?: number;
  /** How long a backend may take to start its response. */
  responseTimeoutMs?: number;
  /** Close a client connection idle this long between requests. */
  idleTimeoutMs?: number;
  /** One line per request. */
  accessLog?: Logger;
  /** Health changes and diagnostics. */
  log?: Logger;
}

/** A backend at run time. */
export class Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly health: Health;
  /** Kept-alive connections waiting for a request. */
  readonly idle: net.Socket[] = [];
  /** Requests answered, for logs and tests. */
  served = 0;

  constructor(spec: BackendSpec, fall: number, rise: number) {
    this.name = spec.name;
    this.host = spec.host;
    this.port = spec.port;
    this.health = new Health(fall, rise);
  }

  get label(): string {
    return `${this.name} ${formatAddress(this.host, this.port)}`;
  }
}

const POOL_IDLE_MS = 2000;
const POOL_MAX_IDLE = 32;
const MAX_QUEUED = 16;

/** Why an attempt on one backend failed before any response byte reached the client. */
class AttemptError extends Error {
  /** Whether the backend is to blame as for a health check (refused, unreachable). */
  readonly connect: boolean;
  readonly timeout: boolean;
  /** The balancer itself could not open a connection (out of descriptors): no backend is to blame. */
  readonly local: boolean;
  constructor(message: string, { connect = false, timeout = false, local = false } = {}) {
    super(message);
    this.connect = connect;
    this.timeout = timeout;
    this.local = local;
  }
}

/**
 * Errors of this process, not of the peer: a connect that fails with them
 * says nothing of the backend. Counting them as its failures let a client
 * flood that exhausted the balancer's descriptors mark every backend down
 * (503 for everyone until `--rise` good checks; found by the fuzz campaign).
 */
const LOCAL_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** What {@link checkBackend} resolves to when the balancer could not even open the check's connection. */
export const NO_VERDICT = 'the balancer is out of descriptors or memory: no verdict on the backend';

function describeSocketError(error: NodeJS.ErrnoException): string {
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    EPIPE: 'connection closed while sending',
    ETIMEDOUT: 'timed out',
    EHOSTUNREACH: 'no route to host',
    ENETUNREACH: 'network unreachable',
    ENOTFOUND: 'host not found',
  };
  return words[error.code ?? ''] ?? error.message;
}

/** Opens a connection; rejects with an {@link AttemptError} (connect: true) on failure or after `timeoutMs`. */
function connect(backend: Backend, timeoutMs: number): Promise<net.Socket> {
  return connectWithin({ host: backend.host, port: backend.port, noDelay: true }, timeoutMs).catch((error: NodeJS.ErrnoException) => {
    if (error instanceof ConnectTimeoutError) throw new AttemptError(`connect timed out after ${timeoutMs} ms`, { connect: true, timeout: true });
    if (LOCAL_ERRORS.has(error.code ?? '')) throw new AttemptError(`the balancer cannot open a connection (${error.code}: out of descriptors or memory)`, { local: true });
    throw new AttemptError(describeSocketError(error), { connect: true });
  });
}

/** Removes the listeners of the exchange (or the pool) that last used a backend connection. */
function detach(socket: net.Socket): void {
  for (const event of ['data', 'end', 'close', 'error', 'timeout', 'drain']) socket.removeAllListeners(event);
}

/** Takes an idle pooled connection to `backend`, if one is still open. */
function takeIdle(backend: Backend): net.Socket | undefined {
  let socket: net.Socket | undefined;
  while ((socket = backend.idle.pop())) {
    detach(socket);
    socket.setTimeout(0);
    if (!socket.destroyed && socket.readyState === 'open') return socket;
    socket.destroy();
  }
  return undefined;
}

/** Puts a connection back in its backend's pool; it leaves the pool when the backend closes it or after POOL_IDLE_MS. */
function release(backend: Backend, socket: net.Socket): void {
  detach(socket);
  if (socket.destroyed || backend.idle.length >= POOL_MAX_IDLE) {
    socket.destroy();
    return;
  }
  socket.resume();
  const drop = () => {
    const at = backend.idle.indexOf(socket);
    if (at >= 0) backend.idle.splice(at, 1);
    socket.destroy();
  };
  socket.on('data', drop); // a pooled connection has nothing to say
  socket.on('end', drop);
  socket.on('close', drop);
  socket.on('error', drop);
  socket.setTimeout(POOL_IDLE_MS, drop);
  backend.idle.push(socket);
}

/**
 * One health check: `GET path` on a new connection; resolves with an error
 * text, or undefined for a 2xx or 3xx status line within `timeoutMs`.
 */
export function checkBackend(backend: { host: string; port: number }, checkPath: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: backend.host, port: backend.port });
    const parser = new ResponseParser();
    let settled = false;
    const done = (error: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(error);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.on('error', (error: NodeJS.ErrnoException) => done(LOCAL_ERRORS.has(error.code ?? '') ? NO_VERDICT : describeSocketError(error)));
    socket.on('end', () => done('connection closed before a status line'));
    socket.on('close', () => done('connection closed before a status line'));
    socket.on('data', (chunk: Buffer) => {
      for (const event of parser.push(chunk)) {
        if (event.type === 'head') {
          const { status } = event.head;
          if (status < 200) continue;
          done(status < 400 ? undefined : `status ${status} for GET ${checkPath}`);
        } else if (event.type === 'error') {
          done(`malformed answer: ${event.error.message}`);
        }
      }
    });
    const host = formatAddress(backend.host, backend.port);
    socket.write(serializeRequestHead({ method: 'GET', target: checkPath, headers: { Host: host, 'User-Agent': 'ej08-health-check', Connection: 'close' } }));
  });
}

// ---------------------------------------------------------------------------
// The balancer

/** A balancer made by {@link createBalancer}. */
export interface Balancer {
  server: net.Server;
  backends: readonly Backend[];
  /** Starts the periodic health checks (the first round at once). */
  startChecks(): void;
  /** Runs one round of checks on every backend and waits for it. */
  checkAll(): Promise<void>;
  /** Stops accepting and checking, closes idle connections, lets busy ones finish (destroyed after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

/** A request read from a client, its body still arriving perhaps. */
interface Pending {
  head?: RequestHead;
  /** A malformed request: answered with this status and message, then the connection closes. */
  error?: { status: number; message: string };
  chunks: Uint8Array[];
  ended: boolean;
  /** Set while the request is being forwarded: where body bytes go. */
  sink?: (data: Uint8Array) => void;
  onEnd?: () => void;
  /** Body bytes already handed to a backend (then a retry is impossible). */
  sent: boolean;
}

/**
 * Creates (but does not start) the balancer. Each client connection reads
 * requests incrementally and forwards them one at a time, in order; the
 * handler is an error boundary (a client's garbage gets its 400 and closes
 * that connection only).
 */
export function createBalancer({
  backends: specs,
  checkIntervalMs = 2000,
  checkPath = '/',
  checkTimeoutMs = 1000,
  fall = 2,
  rise = 2,
  connectTimeoutMs = 2000,
  responseTimeoutMs = 30_000,
  idleTimeoutMs = 5000,
  accessLog = silent,
  log = silent,
}: BalancerOptions): Balancer {
  if (specs.length === 0) throw new TypeError('Cannot balance: no backends');
  const backends = specs.map((spec) => new Backend(spec, fall, rise));
  const ring = new RoundRobin(backends);
  const clients = new Set<ClientConnection>();
  const checkTimers = new Set<ReturnType<typeof setTimeout>>();
  let stopping = false;

  function note(backend: Backend, ok: boolean, error: string, kind: 'check' | 'request'): void {
    const change = backend.health.record(ok, error);
    if (change === 'down') {
      const why = kind === 'check' ? `${backend.health.fall} failed checks in a row` : `${backend.health.fall} failures in a row (the last a request)`;
      log(`${backend.label} is DOWN after ${why}: ${error}`);
    } else if (change === 'up') {
      log(`${backend.label} is UP again after ${backend.health.rise} good checks`);
    }
  }

  async function checkOne(backend: Backend): Promise<void> {
    const error = await checkBackend(backend, checkPath, checkTimeoutMs);
    // Out of descriptors here says nothing of the backend: the check is not counted.
    if (!stopping && error !== NO_VERDICT) note(backend, error === undefined, error ?? '', 'check');
  }

  function schedule(backend: Backend, delay: number): void {
    const timer = setTimeout(() => {
      checkTimers.delete(timer);
      if (stopping) return;
      void checkOne(backend).finally(() => {
        if (!stopping) schedule(backend, checkIntervalMs);
      });
    }, delay);
    checkTimers.add(timer);
  }

  class ClientConnection {
    readonly socket: net.Socket;
    readonly ip: string;
    readonly parser = new RequestParser();
    readonly queue: Pending[] = [];
    /** The request whose body the parser is reading. */
    reading: Pending | undefined;
    busy = false;
    closing = false;
    clientEnded = false;
    idleTimer: ReturnType<typeof setTimeout> | undefined;
    /** The backend connection of the request in flight, destroyed if the client goes away. */
    upstream: net.Socket | undefined;

    constructor(socket: net.Socket) {
      this.socket = socket;
      this.ip = socket.remoteAddress?.replace(/^::ffff:/, '') ?? '-';
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('end', () => {
        this.clientEnded = true;
        for (const event of this.parser.finish()) if (event.type === 'error') this.fail(event.error.status, event.error.message);
        this.pump();
      });
      socket.on('close', () => {
        clearTimeout(this.idleTimer);
        this.upstream?.destroy();
        clients.delete(this);
      });
      socket.setTimeout(120_000, () => socket.destroy());
      this.armIdle();
    }

    get idle(): boolean {
      return !this.busy && this.queue.length === 0 && this.parser.idle;
    }

    armIdle(): void {
      clearTimeout(this.idleTimer);
      if (stopping) return void this.socket.destroy();
      this.idleTimer = setTimeout(() => this.socket.destroy(), idleTimeoutMs);
    }

    onData(chunk: Buffer): void {
      if (this.closing) return; // read and dropped: a lingering close keeps our answer from a reset
      clearTimeout(this.idleTimer);
      for (const event of this.parser.push(chunk)) {
        if (event.type === 'head') {
          const pending: Pending = { head: event.head, chunks: [], ended: false, sent: false };
          this.reading = pending;
          this.queue.push(pending);
        } else if (event.type === 'data') {
          const pending = this.reading;
          if (!pending) continue;
          if (pending.sink) pending.sink(event.data);
          else pending.chunks.push(event.data);
        } else if (event.type === 'end') {
          const pending = this.reading;
          this.reading = undefined;
          if (!pending) continue;
          pending.ended = true;
          pending.onEnd?.();
          if (pending.head?.method === 'CONNECT') {
            this.fail(405, 'CONNECT is not served here: this is a load balancer, not a forward proxy');
            break;
          }
        } else if (event.type === 'error') {
          this.fail(event.error.status, event.error.message);
          break;
        }
      }
      if (this.queue.length > MAX_QUEUED) this.socket.pause();
      this.pump();
    }

    /** Queues an error answer; nothing after it is read. */
    fail(status: number, message: string): void {
      if (this.reading?.sink) this.upstream?.destroy(); // its body will never end
      if (this.reading && !this.reading.ended) {
        // The request being read never ended: drop it, the error answers instead.
        const at = this.queue.indexOf(this.reading);
        if (at >= 0 && !this.queue[at]?.sink) this.queue.splice(at, 1);
        this.reading = undefined;
      }
      this.queue.push({ error: { status, message }, chunks: [], ended: true, sent: false });
      this.closing = true;
    }

    pump(): void {
      if (this.busy) return;
      const next = this.queue[0];
      if (!next) {
        if (this.clientEnded || this.closing) this.socket.end();
        else if (this.parser.idle) this.armIdle();
        return;
      }
      this.busy = true;
      this.socket.resume();
      void this.handle(next)
        .catch((error: unknown) => {
          log(`${this.ip}: ${error instanceof Error ? error.message : String(error)}`);
          this.socket.destroy();
          return false;
        })
        .then((keep) => {
          this.queue.shift();
          this.busy = false;
          if (!keep) {
            this.closing = true;
            this.queue.length = 0;
            this.socket.end();
            setTimeout(() => this.socket.destroy(), 2000).unref();
            return;
          }
          if (!this.socket.destroyed) this.pump();
        });
    }

    /** Answers one queued request; resolves with whether the client connection stays open. */
    async handle(pending: Pending): Promise<boolean> {
      const started = performance.now();
      if (pending.error || !pending.head) {
        const { status, message } = pending.error ?? { status: 400, message: 'bad request' };
        await this.page(undefined, status, message, false);
        accessLog(`${this.ip} "-" -> - ${status} ${elapsed(started)} ms (${message})`);
        return false;
      }
      const head = pending.head;
      const line = `${this.ip} "${head.method} ${head.target} ${head.version}"`;
      const hosts = head.headers.getAll('host').length;
      if (hosts > 1 || (head.version === 'HTTP/1.1' && hosts !== 1)) {
        const message = hosts > 1 ? `a request may have one Host header, not ${hosts}` : 'an HTTP/1.1 request needs exactly one Host header';
        await this.page(head, 400, message, false);
        accessLog(`${line} -> - 400 ${elapsed(started)} ms (${message})`);
        return false;
      }
      const keep = keepAlive(head) && !stopping;
      if (head.version === 'HTTP/1.1' && !pending.ended && head.headers.hasToken('expect', '100-continue')) {
        // The balancer takes the body itself; the backend never sees Expect.
        this.socket.write(serializeResponseHead({ status: 100 }));
      }
      const tried = new Set<Backend>();
      const failures: string[] = [];
      let unreachable = true;
      for (;;) {
        const backend = ring.pick(tried);
        if (!backend) {
          // 503 when no backend could be reached at all; 502 when one was reached but failed.
          const status = unreachable ? 503 : 502;
          const detail =
            tried.size === 0
              ? `No backend is available: all ${backends.length} are marked down by the health checks.`
              : `No backend could answer: ${failures.join('; ')}.`;
          await this.page(head, status, detail, keep && pending.ended, this.backendTable());
          accessLog(`${line} -> - ${status} ${elapsed(started)} ms${failures.length ? ` (${failures.join('; ')})` : ''}`);
          return keep && pending.ended;
        }
        tried.add(backend);
        const result = await this.attempt(pending, backend, keep);
        if (result.ok) {
          backend.served += 1;
          const retried = failures.length ? ` after ${failures.join('; ')}` : '';
          accessLog(`${line} -> ${backend.label} ${result.status} ${elapsed(started)} ms${retried}`);
          return result.keep;
        }
        const { error } = result;
        failures.push(`${backend.name}: ${error.message}`);
        if (error.connect) note(backend, false, error.message, 'request');
        else if (!error.local) unreachable = false;
        if (result.answered) {
          // Part of the response reached the client: nothing else can be said on this connection.
          accessLog(`${line} -> ${backend.label} aborted ${elapsed(started)} ms (${error.message})`);
          this.socket.destroy();
          return false;
        }
        const bodyless = head.framing.kind === 'none' || (head.framing.kind === 'length' && head.framing.length === 0);
        const retryable = IDEMPOTENT.has(head.method) && bodyless && !this.socket.destroyed;
        if (!retryable) {
          const status = error.timeout && !error.connect ? 504 : 502;
          await this.page(head, status, `The backend ${backend.label} failed: ${error.message}. A ${head.method} request with a body is not retried.`, false);
          accessLog(`${line} -> ${backend.label} ${status} ${elapsed(started)} ms (${error.message}; not retried)`);
          return false;
        }
        log(`${line}: ${backend.label} failed (${error.message}); retrying on the next backend`);
      }
    }

    /** An HTML table of the backends and their state, for the 502/503 pages. */
    backendTable(): string {
      const rows = backends
        .map((b) => `<tr><td>${escapeHtml(b.name)}</td><td>${escapeHtml(formatAddress(b.host, b.port))}</td><td>${b.health.up ? 'up' : 'down'}</td><td>${escapeHtml(b.health.lastError)}</td></tr>`)
        .join('\n');
      return `<table><tr><th>backend</th><th>address</th><th>state</th><th>last error</th></tr>\n${rows}\n</table>`;
    }

    /**
     * Forwards one request to `backend` and streams the response back.
     * Resolves ok once the response has been sent whole; otherwise with the
     * error and whether any of the response had reached the client.
     */
    attempt(
      pending: Pending,
      backend: Backend,
      clientKeep: boolean,
    ): Promise<{ ok: true; status: number; keep: boolean } | { ok: false; error: AttemptError; answered: boolean }> {
      const head = pending.head as RequestHead;
      const reuse = IDEMPOTENT.has(head.method);
      return new Promise((resolve) => {
        let socket: net.Socket | undefined;
        let answered = false;
        let settled = false;
        let headTimer: ReturnType<typeof setTimeout> | undefined;
        const finish = (result: { ok: true; status: number; keep: boolean } | { ok: false; error: AttemptError; answered: boolean }) => {
          if (settled) return;
          settled = true;
          clearTimeout(headTimer);
          pending.sink = undefined;
          pending.onEnd = undefined;
          this.upstream = undefined;
          this.socket.off('drain', onClientDrain);
          this.socket.resume();
          resolve(result);
        };
        const onClientDrain = () => socket?.resume();
        const start = (conn: net.Socket, reused: boolean) => {
          socket = conn;
          this.upstream = conn;
          const parser = new ResponseParser({ maxHeaderBytes: 64 * 1024 });
          parser.expect(head.method);
          let response: ResponseHead | undefined;
          let chunked = false;
          let keepClient = clientKeep;
          const fail = (message: string, timeout = false) => {
            conn.destroy();
            // A reused connection the backend had just closed is not the backend's fault.
            finish({ ok: false, error: new AttemptError(reused && !answered ? `${message} (on a reused connection)` : message, { timeout }), answered });
          };
          conn.on('error', (error: NodeJS.ErrnoException) => fail(describeSocketError(error)));
          conn.on('close', () => fail('connection closed before the response was complete'));
          conn.on('data', (chunk: Buffer) => {
            clearTimeout(headTimer);
            const events = parser.push(chunk);
            // Anything after the response's end (a second answer nobody asked for) means the
            // backend reads the connection differently: it is not reused.
            for (const [i, event] of events.entries()) handleEvent(event, i === events.length - 1);
          });
          conn.on('end', () => {
            for (const event of parser.finish()) handleEvent(event);
            if (!settled) fail(response ? 'connection closed in the middle of the body' : 'connection closed before any response');
          });
          const handleEvent = (event: ReturnType<ResponseParser['push']>[number], last = true) => {
            if (settled) return;
            if (event.type === 'head') {
              if (event.head.status < 200) return; // interim: the final answer follows
              if (event.head.status === 101) return fail('the backend switched protocols (not supported)');
              response = event.head;
              const { headers, chunked: c, keep } = this.responseHeaders(head, response, clientKeep && pending.ended);
              chunked = c;
              keepClient = keep;
              answered = true;
              if (!this.socket.write(serializeResponseHead({ status: response.status, reason: response.reason, headers }))) conn.pause();
            } else if (event.type === 'data') {
              if (event.data.length === 0) return;
              const ok = this.socket.write(chunked ? encodeChunk(event.data) : event.data);
              if (!ok) conn.pause();
            } else if (event.type === 'end') {
              if (!response) return;
              if (chunked) this.socket.write(lastChunk());
              const reusable = reuse && last && keepAlive(response) && response.framing.kind !== 'close' && parser.idle && pending.ended;
              if (reusable) release(backend, conn);
              else conn.destroy();
              finish({ ok: true, status: response.status, keep: keepClient });
            } else if (event.type === 'error') {
              fail(event.error.code === 'HPE_INCOMPLETE' ? `the backend closed too early: ${event.error.message}` : `malformed response: ${event.error.message}`);
            }
          };
          this.socket.on('drain', onClientDrain);
          headTimer = setTimeout(() => fail(`no response within ${responseTimeoutMs} ms`, true), responseTimeoutMs);

          const requestHead = serializeRequestHead({ method: head.method, target: head.target, headers: backendRequestHeaders(head, this.ip, backend, reuse) });
          const body = head.framing.kind;
          const wrap = (data: Uint8Array) => (body === 'chunked' ? encodeChunk(data) : data);
          conn.write(requestHead);
          for (const data of pending.chunks) {
            conn.write(wrap(data));
            pending.sent = true;
          }
          pending.chunks = [];
          const endBody = () => {
            if (body === 'chunked') conn.write(lastChunk());
          };
          if (pending.ended) endBody();
          else {
            pending.sink = (data) => {
              pending.sent = true;
              if (!conn.write(wrap(data))) {
                this.socket.pause();
                conn.once('drain', () => this.socket.resume());
              }
            };
            pending.onEnd = endBody;
          }
        };
        const pooled = reuse ? takeIdle(backend) : undefined;
        if (pooled) start(pooled, true);
        else {
          connect(backend, connectTimeoutMs).then(
            (conn) => {
              if (this.socket.destroyed) {
                conn.destroy();
                finish({ ok: false, error: new AttemptError('the client went away'), answered: true });
              } else start(conn, false);
            },
            (error: AttemptError) => finish({ ok: false, error, answered: false }),
          );
        }
      });
    }

    /**
     * The head sent to the client for a backend's response, and how its body
     * is framed: the framing is restated from what the parser read (its
     * Content-Length, or chunked, or to the close), whatever the backend's
     * Connection header named.
     */
    responseHeaders(request: RequestHead, response: ResponseHead, clientKeep: boolean): { headers: HeaderList; chunked: boolean; keep: boolean } {
      const headers = withoutHopByHop(response.headers);
      headers.delete('transfer-encoding');
      const declared = headers.getAll('content-length');
      if (response.framing.kind === 'length') {
        // Kept in its place when it already says the length the parser framed by.
        if (declared.length !== 1 || declared[0] !== String(response.framing.length)) headers.set('Content-Length', response.framing.length);
      } else if (response.framing.kind !== 'none' || response.status === 204 || !(declared.length === 1 && /^\d{1,15}$/.test(declared[0] ?? ''))) {
        // A HEAD or 304 answer keeps a plain Content-Length (the size of the body it stands for); nothing else does.
        headers.delete('content-length');
      }
      const via = headers.get('via');
      headers.set('Via', via ? `${via}, ${VIA}` : VIA);
      let keep = clientKeep;
      let chunked = false;
      const kind = response.framing.kind;
      if (kind === 'chunked' || kind === 'close') {
        // Re-framed: chunked for an HTTP/1.1 client, to the close for HTTP/1.0.
        if (request.version === 'HTTP/1.1') {
          chunked = true;
          headers.set('Transfer-Encoding', 'chunked');
        } else keep = false;
      }
      headers.set('Connection', keep ? 'keep-alive' : 'close');
      return { headers, chunked, keep };
    }

    async page(head: RequestHead | undefined, status: number, detail: string, keep: boolean, extra = ''): Promise<void> {
      const body = errorPage(status, detail, extra);
      const headers = new HeaderList({ 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length, Via: VIA, Connection: keep ? 'keep-alive' : 'close' });
      if (status === 503) headers.set('Retry-After', Math.max(1, Math.ceil(checkIntervalMs / 1000)));
      const bytes = serializeResponseHead({ status, headers });
      const all = head?.method === 'HEAD' ? Buffer.from(bytes) : Buffer.concat([bytes, body]);
      if (!this.socket.write(all)) await drained(this.socket);
    }
  }

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    clients.add(new ClientConnection(socket));
  });

  return {
    server,
    backends,
    startChecks() {
      if (checkIntervalMs > 0) for (const backend of backends) schedule(backend, 0);
    },
    async checkAll() {
      await Promise.all(backends.map((backend) => checkOne(backend)));
    },
    close(graceMs = 2500) {
      stopping = true;
      for (const timer of checkTimers) clearTimeout(timer);
      checkTimers.clear();
      for (const backend of backends) for (const socket of backend.idle.splice(0)) socket.destroy();
      return closeKeepAlive(server, clients, graceMs).then(() => {
        for (const backend of backends) for (const socket of backend.idle.splice(0)) socket.destroy();
      });
    },
  };
}

function elapsed(started: number): string {
  return (performance.now() - started).toFixed(1);
}

/** The balancer's own page for 4xx and 5xx answers (lib/http's, signed by the balancer), `extraHtml` as given. */
export function errorPage(status: number, detail: string, extraHtml = ''): Buffer {
  return httpErrorPage(status, detail, { signature: 'ej08 load balancer', extraHtml });
}

// ---------------------------------------------------------------------------
// Command line

const command = defineCommand({
  name: 'balancer.ts',
  summary: 'HTTP load balancer on raw sockets: round robin over the healthy ej06 servers named in config.ini.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '8080', help: 'port to listen on; 0 picks a free one' },
    config: { type: 'string', metavar: 'FILE', help: 'backends, one [section] with host = and port = each (default: ./config.ini, else ej08/config.ini)' },
    'check-interval': { type: 'string', default: '2', metavar: 'SECONDS', help: 'seconds between health checks of each backend' },
    'check-path': { type: 'string', default: '/', metavar: 'PATH', help: 'path of the health check GET; 2xx or 3xx is healthy' },
    'check-timeout': { type: 'string', default: '1', metavar: 'SECONDS', help: 'a check not answered in this time failed' },
    fall: { type: 'string', default: '2', metavar: 'N', help: 'failures in a row that mark a backend down' },
    rise: { type: 'string', default: '2', metavar: 'M', help: 'good checks in a row that mark it up again' },
    'connect-timeout': { type: 'string', default: '2', metavar: 'SECONDS', help: 'give up connecting to a backend after this long (then retry on the next)' },
    'response-timeout': { type: 'string', default: '30', metavar: 'SECONDS', help: 'a backend must begin its response within this time' },
    quiet: { type: 'boolean', short: 'q', help: 'no request log and diagnostics on stderr' },
  },
  epilog: 'Prints "listening on HOST:PORT (tcp)" on stdout when ready; one line per request and per health change on stderr. Ctrl-C stops it.\nExit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen, 2 bad usage or a bad config.ini, 130 a second Ctrl-C or connections still open after the grace period.',
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const checkIntervalMs = parsePositive(opts['check-interval'], 'check-interval') * 1000;
  const checkTimeoutMs = parsePositive(opts['check-timeout'], 'check-timeout') * 1000;
  const fall = parsePositive(opts.fall, 'fall', { integer: true });
  const rise = parsePositive(opts.rise, 'rise', { integer: true });
  const connectTimeoutMs = parsePositive(opts['connect-timeout'], 'connect-timeout') * 1000;
  const responseTimeoutMs = parsePositive(opts['response-timeout'], 'response-timeout') * 1000;
  const checkPath = opts['check-path'];
  if (!/^\/[\x21-\x7e]*$/.test(checkPath)) throw new CliError(`argument --check-path: expected a path starting with /, got '${checkPath}'`, 2);
  const log = createLogger('balancer', { quiet: opts.quiet });

  const file = configPath(opts.config);
  const specs = await loadConfig(file);
  const balancer = createBalancer({ backends: specs, checkIntervalMs, checkPath, checkTimeoutMs, fall, rise, connectTimeoutMs, responseTimeoutMs, accessLog: log, log });
  log(`${file}: ${balancer.backends.map((b) => b.label).join(', ')}; checks GET ${checkPath} every ${checkIntervalMs / 1000} s (down after ${fall}, up after ${rise})`);
  console.log(readyLine(await listenTcp(balancer.server, host, port), 'tcp'));
  balancer.startChecks();
  onShutdown(() => balancer.close(2500), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
