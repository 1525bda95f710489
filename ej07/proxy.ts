/**
 * A caching forward HTTP proxy on raw TCP sockets (`node:net`), with the
 * HTTP parsing and serializing of `lib/http.ts` and the cache of
 * `ej07/cache.ts`.
 *
 * ```sh
 * npx tsx ej07/proxy.ts --port 8888                        # cache in ./.ej07-cache
 * curl -x http://127.0.0.1:8888 http://example.org/ -i     # X-Cache: MISS, then HIT
 * chromium --proxy-server=http://127.0.0.1:8888 --proxy-bypass-list='<-loopback>'
 * ```
 *
 * Prints `listening on 127.0.0.1:8888 (tcp)` on stdout when ready, then one
 * line per request on stderr: `GET http://h/p 200 HIT 1234 B 2 ms`.
 *
 * What it does: requests in absolute form (`GET http://host:port/path
 * HTTP/1.1`) are sent to the origin and the response streamed back, with
 * the hop-by-hop fields removed and a Via field added; the client's
 * connection is kept alive (pipelined requests answered in order). GET 200
 * responses are cached as RFC 9111 allows (Cache-Control, Expires, Age),
 * served while fresh (`X-Cache: HIT`), revalidated with If-None-Match /
 * If-Modified-Since once stale (`X-Cache: REVALIDATED` when the origin
 * answers 304), evicted least recently used first within `--cache-size`, and
 * kept in `--cache-dir` across restarts. CONNECT opens a tunnel (HTTPS from
 * a browser) to the ports `--connect-ports` allows (443 unless told). A
 * malformed request gets 400, an unreachable origin 502, a silent one 504,
 * a request for the proxy itself 508 (a loop).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import {
  encodeChunk,
  HeaderList,
  keepAlive,
  lastChunk,
  listTokens,
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
import { CliError, isMain, runMain } from '../lib/main.ts';
import { closeKeepAlive, listenTcp, onShutdown, readyLine } from '../lib/server.ts';
import { CacheStore, COOKIE_FIELDS, cacheKey, currentAge, decide, DEFAULT_CACHE_BYTES, DEFAULT_MAX_OBJECT_BYTES, type Entry, mergeNotModified, parseHttpDate, storable, varyValues } from './cache.ts';
import { fsReason } from '../lib/fs-errors.ts';

/** Largest request body the proxy accepts (it is read whole before being forwarded). */
export const MAX_REQUEST_BODY = 16 * 1024 * 1024;

/** Options of {@link createProxy}. */
export interface ProxyOptions {
  store: CacheStore;
  /** Ports CONNECT may reach. */
  connectPorts?: ReadonlySet<number>;
  /** Time allowed to connect to an origin and for each of its silences (ms). */
  timeoutMs?: number;
  /** Close a client connection idle this long between requests (ms). */
  idleTimeoutMs?: number;
  /** One line per request. */
  accessLog?: Logger;
  /** Diagnostics. */
  log?: Logger;
}

/** A proxy made by {@link createProxy}. */
export interface Proxy {
  server: net.Server;
  /** Stops accepting, closes idle connections, lets busy ones finish (destroyed after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

/** Where an absolute-form target leads, or why it cannot be proxied. */
export type ProxyTarget = { ok: true; url: URL; host: string; port: number } | { ok: false; reason: string };

/** Reads an absolute-form request target (`http://host[:port]/path?query`); https and other schemes are refused. */
export function parseProxyTarget(target: string): ProxyTarget {
  if (target.startsWith('/')) return { ok: false, reason: `the target ${JSON.stringify(target)} is in origin form; a proxy needs the absolute form (GET http://host/path HTTP/1.1)` };
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { ok: false, reason: `the target ${JSON.stringify(target)} is not an absolute URL` };
  }
  if (url.protocol !== 'http:') return { ok: false, reason: `the scheme ${url.protocol} is not proxied (only http:, and https through CONNECT)` };
  if (url.hostname === '' || url.username !== '' || url.password !== '') return { ok: false, reason: 'the URL needs a host and no user:password' };
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { ok: true, url, host, port: url.port === '' ? 80 : Number(url.port) };
}

/** Reads a CONNECT target (`host:port`, `[v6]:port`). */
export function parseAuthority(target: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(target);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2]) as string, port };
}

/** Parses `443,8443,9000-9100` into a set of ports. */
export function parsePortList(text: string): Set<number> {
  const ports = new Set<number>();
  for (const item of text.split(',')) {
    const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(item.trim());
    const from = Number(match?.[1]);
    const to = match?.[2] === undefined ? from : Number(match[2]);
    if (!match || from < 1 || to > 65535 || to < from) throw new UsageError(`argument --connect-ports: expected ports like 443,8443 or 1000-2000, got '${item}'`);
    for (let p = from; p <= to; p++) ports.add(p);
  }
  return ports;
}

/** Reads a size in bytes with an optional K, M or G suffix (binary: 64M = 64 MiB). */
export function parseSize(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMG]i?B?|B)?$/i.exec(text);
  if (!match) throw new UsageError(`argument --${option}: expected a size such as 65536, 512K or 64M, got '${text}'`);
  const unit = (match[2] ?? '').charAt(0).toUpperCase();
  const factor = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  const value = Math.floor(Number(match[1]) * factor);
  if (value < 1) throw new UsageError(`argument --${option}: the size must be at least one byte, got '${text}'`);
  return value;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Whether `host:port` is this proxy listening at `self`. */
export function isSelf(host: string, port: number, self: { address: string; port: number }): boolean {
  if (port !== self.port) return false;
  const h = host.toLowerCase();
  if (h === self.address || (isLoopback(h) && isLoopback(self.address))) return true;
  if (self.address === '0.0.0.0' || self.address === '::') {
    if (isLoopback(h) || h === '0.0.0.0' || h === '::') return true;
    return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === h));
  }
  return false;
}

/**
 * Creates (but does not start) the proxy. Each client connection parses its
 * requests incrementally and answers them in order; one client's garbage or
 * one origin's failure ends that exchange with an answer, never the proxy.
 */
export function createProxy({
  store,
  connectPorts = new Set([443]),
  timeoutMs = 30_000,
  idleTimeoutMs = 60_000,
  accessLog = silent,
  log = silent,
}: ProxyOptions): Proxy {
  // A token that marks requests this proxy already handled (a loop through another name).
  const viaToken = `ej07-${randomBytes(4).toString('hex')}`;
  const connections = new Set<Connection>();
  let stopping = false;

  const self = () => {
    const address = server.address();
    return address && typeof address === 'object' ? address : { address: '', port: -1 };
  };

  class Connection {
    readonly socket: net.Socket;
    readonly parser = new RequestParser();
    head: RequestHead | undefined;
    body: Buffer[] = [];
    bodyBytes = 0;
    queue: Promise<void> = Promise.resolve();
    pending = 0;
    closing = false;
    tunnelling = false;

    constructor(socket: net.Socket) {
      this.socket = socket;
      socket.on('error', (error: NodeJS.ErrnoException) => log(`client ${formatAddress(socket.remoteAddress ?? '-', socket.remotePort ?? 0)}: ${error.code ?? error.message}`));
      socket.on('data', this.onData);
      socket.on('end', () => {
        if (this.tunnelling) return;
        this.closing = true;
        this.queue = this.queue.then(() => void socket.end());
      });
      socket.on('close', () => connections.delete(this));
      socket.setTimeout(idleTimeoutMs, () => {
        if (this.pending === 0 && !this.tunnelling) socket.destroy();
      });
    }

    get idle(): boolean {
      return this.pending === 0 && this.parser.idle && !this.tunnelling;
    }

    readonly onData = (chunk: Buffer): void => {
      if (this.closing) return;
      for (const event of this.parser.push(chunk)) {
        if (event.type === 'head') {
          this.head = event.head;
          this.body = [];
          this.bodyBytes = 0;
        } else if (event.type === 'data') {
          this.bodyBytes += event.data.length;
          if (this.bodyBytes > MAX_REQUEST_BODY) {
            this.closing = true;
            const head = this.head;
            this.enqueue(() => this.sendError(head, 413, `the request body is larger than ${MAX_REQUEST_BODY} bytes`));
            break;
          }
          this.body.push(Buffer.from(event.data));
        } else if (event.type === 'end') {
          const head = this.head as RequestHead;
          if (head.method === 'CONNECT') continue; // 'upgrade' follows with the bytes after the head
          const body = Buffer.concat(this.body);
          this.head = undefined;
          this.enqueue(() => this.handle(head, body));
        } else if (event.type === 'upgrade') {
          const head = this.head as RequestHead;
          this.closing = true;
          this.socket.off('data', this.onData);
          this.socket.pause();
          const rest = Buffer.from(event.rest);
          this.enqueue(() => this.connect(head, rest));
          break;
        } else if (event.type === 'error') {
          this.closing = true;
          const head = this.head;
          const { status, message } = event.error;
          this.enqueue(() => this.sendError(head, status, message));
          break;
        }
      }
      if (this.pending >= 16) this.socket.pause();
    };

    enqueue(task: () => Promise<boolean>): void {
      this.pending++;
      this.queue = this.queue
        .then(async () => {
          if (this.socket.destroyed || this.socket.writableEnded) return;
          const keep = await task();
          if (!keep && !this.socket.writableEnded && !this.tunnelling) {
            this.closing = true;
            this.socket.end();
            setTimeout(() => this.socket.destroy(), 2000).unref();
          }
        })
        .catch((error: unknown) => {
          log(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
          this.socket.destroy();
        })
        .finally(() => {
          this.pending--;
          if (!this.closing && this.pending < 8) this.socket.resume();
          if (stopping && this.idle) this.socket.destroy();
        });
    }

    /** Answers one request; resolves with whether the client connection stays open. */
    async handle(head: RequestHead, body: Buffer): Promise<boolean> {
      const started = performance.now();
      const keep = keepAlive(head) && !stopping;
      const target = parseProxyTarget(head.target);
      if (!target.ok) return this.sendError(head, 400, target.reason);
      if (head.version === 'HTTP/1.1' && head.headers.getAll('host').length > 1) return this.sendError(head, 400, 'more than one Host header');
      if (isSelf(target.host, target.port, self()) || head.headers.getAll('via').some((v) => v.includes(viaToken))) {
        return this.sendError(head, 508, `${target.url.host} is this proxy itself: refusing to forward the request to myself (a loop)`);
      }
      const key = cacheKey(target.url);
      // The request as the origin will get it: what Vary is matched and stored against.
      const forwarded = withoutHopByHop(head.headers).set('Host', target.url.host);
      let entry: Entry | undefined;
      let cachedBody: Buffer | undefined;
      if (head.method === 'GET') {
        await store.settled(key);
        entry = store.lookup(key, forwarded);
        if (entry) {
          cachedBody = await store.readBody(entry);
          if (!cachedBody) entry = undefined;
        }
        if (entry && cachedBody && decide(entry, head.headers, Date.now()) === 'fresh') {
          return this.sendCached(head, entry, cachedBody, 'HIT', keep, started);
        }
      }
      return this.forward(head, forwarded, body, target, key, entry, cachedBody, keep, started);
    }

    /**
     * Sends the origin the request (a conditional one when `entry` is stale)
     * and the response to the client. `forwarded` is the request's fields
     * without the hop-by-hop ones, with Host from the URL. The proxy frames
     * both messages itself, from what its parser read, never from the
     * framing fields a peer sent: those are hop-by-hop, or may have been
     * named in Connection and so removed.
     */
    forward(head: RequestHead, forwarded: HeaderList, body: Buffer, target: { url: URL; host: string; port: number }, key: string, entry: Entry | undefined, cachedBody: Buffer | undefined, keep: boolean, started: number): Promise<boolean> {
      const headers = new HeaderList(forwarded);
      headers.add('Via', `${head.version.slice(5)} ${viaToken}`);
      const etag = entry?.headers.get('etag');
      const modified = entry?.headers.get('last-modified');
      const revalidating = entry !== undefined && (etag !== undefined || modified !== undefined);
      if (revalidating) {
        headers.delete('if-none-match').delete('if-modified-since').delete('if-match').delete('if-unmodified-since').delete('if-range');
        if (etag !== undefined) headers.set('If-None-Match', etag);
        if (modified !== undefined) headers.set('If-Modified-Since', modified);
      }
      if (body.length > 0 || head.framing.kind !== 'none') headers.set('Content-Length', body.length);
      headers.set('Connection', 'close');
      const requestBytes = Buffer.concat([serializeRequestHead({ method: head.method, target: `${target.url.pathname}${target.url.search}`, headers }), body]);

      return new Promise<boolean>((resolve) => {
        const client = this.socket;
        const requestTime = Date.now();
        const upstream = net.connect({ host: target.host, port: target.port });
        const parser = new ResponseParser();
        parser.expect(head.method);
        let responseHead: ResponseHead | undefined;
        let responseTime = 0;
        let mode: 'length' | 'chunked' | 'close' | 'none' = 'none';
        let collect: Buffer[] | undefined;
        let collected = 0;
        let sent = 0;
        let done = false;
        let label = 'MISS';

        const finish = (keepOpen: boolean) => {
          if (done) return;
          done = true;
          upstream.destroy();
          client.off('close', onClientClose);
          resolve(keepOpen);
        };
        const onClientClose = () => {
          this.logLine(head, responseHead?.status ?? 0, label, sent, started, 'client closed');
          finish(false);
        };
        client.once('close', onClientClose);

        const fail = async (status: number, message: string) => {
          if (done) return;
          if (responseHead) {
            // Part of the response went out: the only honest signal left is to cut the connection.
            this.logLine(head, responseHead.status, label, sent, started, message);
            client.destroy();
            finish(false);
            return;
          }
          done = true;
          upstream.destroy();
          client.off('close', onClientClose);
          resolve(await this.sendError(head, status, message, keep));
        };

        upstream.setTimeout(timeoutMs, () => {
          void fail(504, `the origin ${target.url.host} did not answer within ${timeoutMs / 1000} s`);
        });
        upstream.on('error', (error: NodeJS.ErrnoException) => {
          const code = error.code ?? 'error';
          const why =
            code === 'ECONNREFUSED' ? 'refused the connection (nothing listens on that port)' :
            code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'has a name that does not resolve' :
            code === 'ECONNRESET' ? 'reset the connection' :
            code === 'EHOSTUNREACH' || code === 'ENETUNREACH' ? 'cannot be reached (no route)' : `failed (${error.message})`;
          void fail(502, `the origin ${target.url.host} ${why} [${code}]`);
        });
        upstream.on('connect', () => upstream.write(requestBytes));
        upstream.on('end', () => {
          for (const event of parser.finish()) onEvent(event);
          if (!done) void fail(502, `the origin ${target.url.host} closed the connection before a complete response`);
        });
        upstream.on('data', (chunk: Buffer) => {
          for (const event of parser.push(chunk)) {
            onEvent(event);
            if (done) return;
          }
        });
        const write = (bytes: Uint8Array) => {
          if (!client.write(bytes) && !upstream.isPaused()) {
            upstream.pause();
            client.once('drain', () => upstream.resume());
          }
        };

        const onEvent = (event: ReturnType<ResponseParser['push']>[number]) => {
          if (done) return;
          if (event.type === 'error') {
            void fail(502, `the origin ${target.url.host} sent a malformed response: ${event.error.message}`);
          } else if (event.type === 'head') {
            if (event.head.status < 200) return; // interim (100 Continue): the final response follows
            responseTime = Date.now();
            const res = event.head;
            if (revalidating && entry && cachedBody && res.status === 304) {
              responseHead = res;
              label = 'REVALIDATED';
              done = true;
              upstream.destroy();
              client.off('close', onClientClose);
              const merged = mergeNotModified(entry.headers, withoutHopByHop(res.headers));
              const refreshed = { ...entry, headers: merged, requestTime, responseTime };
              // The client that revalidated gets the 304's Set-Cookie; the stored copy does not (refresh drops it).
              const keptHeaders = new HeaderList([...merged].filter(([name]) => !COOKIE_FIELDS.includes(name.toLowerCase())));
              if (storable(head.method, head.headers, entry.status, keptHeaders).ok) {
                // Registered before the client has the answer: its next request finds the refreshed copy.
                void store
                  .refresh(entry, merged, requestTime, responseTime, { body: cachedBody, vary: varyValues(merged, forwarded) })
                  .catch((error: unknown) => log(`cannot refresh ${key}: ${error instanceof Error ? error.message : String(error)}`));
              } else {
                void store.delete(key); // the 304 made it unstorable (no-store, private, Vary: *)
              }
              resolve(this.sendCached(head, refreshed, cachedBody, 'REVALIDATED', keep, started));
              return;
            }
            // Transfer-Encoding is hop-by-hop and removed: a coding other than chunked would reach the
            // client (and the cache) still applied, with nothing left to say so. This proxy decodes none.
            const codings = listTokens(res.headers.get('transfer-encoding')).filter((c) => c !== 'chunked');
            if (codings.length > 0) return void fail(502, `the origin ${target.url.host} sent its body in the transfer coding ${JSON.stringify(codings.join(', '))}, which this proxy does not decode`);
            responseHead = res;
            const out = withoutHopByHop(res.headers);
            // Restated whatever the origin sent: its Connection may have named (and so removed) Content-Length.
            if (res.framing.kind === 'length') out.set('Content-Length', res.framing.length);
            out.add('Via', `${res.version.slice(5)} ${viaToken}`);
            out.set('X-Cache', 'MISS');
            let keepOpen = keep;
            const framing = res.framing.kind;
            if (framing === 'length') mode = 'length';
            else if (framing === 'chunked' || framing === 'close') {
              if (head.version === 'HTTP/1.1') {
                mode = 'chunked';
                out.set('Transfer-Encoding', 'chunked');
              } else {
                mode = 'close';
                keepOpen = false;
              }
            } else mode = 'none';
            if (res.framing.kind === 'tunnel') return void fail(502, `the origin ${target.url.host} switched protocols, which this proxy does not relay`);
            out.set('Connection', keepOpen ? 'keep-alive' : 'close');
            keep = keepOpen;
            if (head.method === 'GET' && storable(head.method, head.headers, res.status, res.headers).ok) collect = [];
            write(serializeResponseHead({ status: res.status, reason: res.reason, headers: out }));
          } else if (event.type === 'data') {
            sent += event.data.length;
            if (collect) {
              collected += event.data.length;
              if (collected > store.maxObjectBytes) collect = undefined;
              else collect.push(Buffer.from(event.data));
            }
            write(mode === 'chunked' ? encodeChunk(event.data) : event.data);
          } else if (event.type === 'end') {
            if (!responseHead) return;
            const res = responseHead;
            if (collect) {
              const bodyBytes = Buffer.concat(collect);
              const stored = withoutHopByHop(res.headers);
              stored.set('Content-Length', bodyBytes.length); // the stored copy is framed by what was received
              // Registered now, before the client has the last byte: its next request finds the entry.
              void store
                .put({ key, status: res.status, reason: res.reason, headers: [...stored], requestTime, responseTime, vary: varyValues(res.headers, forwarded) }, bodyBytes)
                .catch((error: unknown) => log(`cannot store ${key}: ${error instanceof Error ? error.message : String(error)}`));
            } else if (entry && head.method === 'GET' && res.status === 200) {
              void store.delete(key); // replaced by a response that may not be stored
            }
            if (mode === 'chunked') write(lastChunk());
            this.logLine(head, res.status, label, sent, started);
            finish(keep);
          }
        };
      });
    }

    /** Sends a stored response (or 304 when the client's own validators match it). */
    async sendCached(head: RequestHead, entry: Entry, body: Buffer, label: 'HIT' | 'REVALIDATED', keep: boolean, started: number): Promise<boolean> {
      const headers = new HeaderList(entry.headers);
      headers.set('Age', Math.floor(currentAge(entry, Date.now()) / 1000));
      headers.add('Via', `1.1 ${viaToken}`);
      headers.set('X-Cache', label);
      headers.set('Connection', keep ? 'keep-alive' : 'close');
      if (clientHasIt(head.headers, entry.headers)) {
        headers.delete('content-length');
        await this.send(serializeResponseHead({ status: 304, headers }));
        this.logLine(head, 304, label, 0, started);
        return keep;
      }
      headers.set('Content-Length', body.length);
      await this.send(Buffer.concat([serializeResponseHead({ status: entry.status, reason: entry.reason, headers }), body]));
      this.logLine(head, entry.status, label, body.length, started);
      return keep;
    }

    /** Opens a CONNECT tunnel; resolves (false) when it closes. */
    connect(head: RequestHead, rest: Buffer): Promise<boolean> {
      const started = performance.now();
      const target = parseAuthority(head.target);
      if (!target) return this.sendError(head, 400, `CONNECT needs host:port, got ${JSON.stringify(head.target)}`);
      if (!connectPorts.has(target.port)) {
        return this.sendError(head, 403, `CONNECT to port ${target.port} is not allowed; this proxy tunnels only to port${connectPorts.size === 1 ? '' : 's'} ${[...connectPorts].slice(0, 10).join(', ')}${connectPorts.size > 10 ? ', …' : ''}`);
      }
      if (isSelf(target.host, target.port, self())) return this.sendError(head, 508, `${head.target} is this proxy itself: refusing to tunnel to myself (a loop)`);
      const client = this.socket;
      return new Promise<boolean>((resolve) => {
        const upstream = net.connect({ host: target.host, port: target.port });
        let open = false;
        let up = rest.length;
        let down = 0;
        upstream.setTimeout(timeoutMs, () => {
          if (!open) upstream.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
        });
        upstream.on('error', async (error: NodeJS.ErrnoException) => {
          if (open) return client.destroy();
          const code = error.code ?? 'error';
          const status = code === 'ETIMEDOUT' ? 504 : 502;
          resolve(await this.sendError(head, status, `cannot open a tunnel to ${head.target}: ${code === 'ECONNREFUSED' ? 'connection refused' : code === 'ETIMEDOUT' ? `no answer within ${timeoutMs / 1000} s` : error.message} [${code}]`));
        });
        upstream.on('connect', () => {
          open = true;
          this.tunnelling = true;
          upstream.setTimeout(0);
          client.setTimeout(0);
          client.write(serializeResponseHead({ status: 200, reason: 'Connection Established', headers: { Via: `1.1 ${viaToken}` } }));
          if (rest.length > 0) upstream.write(rest);
          client.on('data', (chunk: Buffer) => (up += chunk.length));
          upstream.on('data', (chunk: Buffer) => (down += chunk.length));
          client.pipe(upstream);
          upstream.pipe(client);
          client.resume();
          client.on('error', () => upstream.destroy());
          let closed = 0;
          const onClose = () => {
            if (++closed > 1) return;
            upstream.destroy();
            client.destroy();
            accessLog(`CONNECT ${head.target} 200 TUNNEL ${down} B down ${up} B up ${Math.round(performance.now() - started)} ms`);
            resolve(false);
          };
          upstream.on('close', onClose);
          client.on('close', onClose);
        });
      });
    }

    async send(bytes: Uint8Array): Promise<void> {
      if (!this.socket.write(bytes)) await drained(this.socket);
    }

    /** A short HTML page for an error; resolves with `keep` (false unless told). */
    async sendError(head: RequestHead | undefined, status: number, message: string, keep = false): Promise<boolean> {
      log(`${status}: ${message}`);
      const page = errorPage(status, message);
      const headers = new HeaderList({ 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': page.length, 'X-Cache': 'MISS', Via: `1.1 ${viaToken}`, Connection: keep ? 'keep-alive' : 'close' });
      await this.send(Buffer.concat([serializeResponseHead({ status, reason: STATUS_TEXT[status] ?? '', headers }), head?.method === 'HEAD' ? Buffer.alloc(0) : page]));
      this.logLine(head, status, '-', page.length, performance.now());
      return keep;
    }

    logLine(head: RequestHead | undefined, status: number, label: string, bytes: number, started: number, note?: string): void {
      const ms = Math.round(performance.now() - started);
      accessLog(`${head ? `${head.method} ${head.target}` : '-'} ${status} ${label} ${bytes} B ${ms} ms${note ? ` (${note})` : ''}`);
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

/** Whether the client's If-None-Match or If-Modified-Since already matches the stored response. */
export function clientHasIt(request: HeaderList, stored: HeaderList): boolean {
  const inm = request.get('if-none-match');
  const etag = stored.get('etag');
  if (inm !== undefined) {
    if (etag === undefined) return false;
    const weak = (tag: string) => tag.trim().replace(/^W\//, '');
    return inm.trim() === '*' || inm.split(',').some((tag) => weak(tag) === weak(etag));
  }
  const since = parseHttpDate(request.get('if-modified-since'));
  const modified = parseHttpDate(stored.get('last-modified'));
  return since !== undefined && modified !== undefined && modified <= since;
}

/** ej07's page for an error status (lib/http's, signed by the proxy). */
export function errorPage(status: number, detail: string): Buffer {
  return httpErrorPage(status, detail, { signature: 'ej07 caching proxy' });
}

const command = defineCommand({
  name: 'proxy.ts',
  summary: 'Caching forward HTTP proxy on raw sockets: HTTP requests in absolute form, CONNECT tunnels, a persistent LRU cache.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '8888', help: 'port to listen on; 0 picks a free one' },
    'cache-dir': { type: 'string', default: '.ej07-cache', metavar: 'DIR', help: 'folder that keeps the cache across restarts' },
    'cache-size': { type: 'string', default: '64M', metavar: 'SIZE', help: 'byte budget of the cache (K, M, G suffixes); least recently used entries go first' },
    'max-object': { type: 'string', default: '8M', metavar: 'SIZE', help: 'largest body stored (at most the cache size)' },
    'connect-ports': { type: 'string', default: '443', metavar: 'PORTS', help: 'ports CONNECT may reach, e.g. 443,8443 or 1000-2000' },
    timeout: { type: 'string', default: '30', metavar: 'SECONDS', help: 'time to connect to an origin and longest silence of one (then 504)' },
    quiet: { type: 'boolean', short: 'q', help: 'no request log, no diagnostics on stderr' },
  },
  epilog: 'Prints "listening on HOST:PORT (tcp)" on stdout when ready, then one line per request on stderr (method, URL, status, HIT/MISS/REVALIDATED, bytes, ms). Ctrl-C stops it.\nExit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen or use the cache folder, 2 bad usage, 130 a second Ctrl-C or connections still open after the grace period.',
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const maxBytes = parseSize(opts['cache-size'], 'cache-size');
  const maxObjectBytes = Math.min(parseSize(opts['max-object'], 'max-object'), maxBytes);
  const connectPorts = parsePortList(opts['connect-ports']);
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const log = createLogger('proxy', { quiet: opts.quiet });
  const store = await CacheStore.open({ dir: opts['cache-dir'], maxBytes, maxObjectBytes, log }).catch((error: NodeJS.ErrnoException) => {
    throw new CliError(`cannot use the cache folder ${opts['cache-dir']}: ${fsReason(error, 'folder')}`);
  });
  log(`cache ${opts['cache-dir']}: ${store.size} entries, ${store.bytes} of ${maxBytes} bytes`);
  const proxy = createProxy({ store, connectPorts, timeoutMs, accessLog: log, log });
  console.log(readyLine(await listenTcp(proxy.server, host, port), 'tcp'));
  onShutdown(() => proxy.close(2500), { log });
}

export { DEFAULT_CACHE_BYTES, DEFAULT_MAX_OBJECT_BYTES };

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
