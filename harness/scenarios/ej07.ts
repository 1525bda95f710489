/**
 * Exercise 7: a caching forward HTTP proxy. Role: `proxy` (the assignment's
 * `[--host HOST] [--port PORT]`; the optional `--cache-dir DIR`,
 * `--cache-size SIZE` and `--connect-ports PORTS` are used when the
 * target's `-h` lists them, and the requirements that need them skip
 * otherwise).
 *
 * The origin is nginx, configured with its access log in a temporary file:
 * the log is what proves a request was, or was not, sent to the origin.
 * Clients are curl (`-x`, `-p` for CONNECT), raw sockets for what curl
 * would not send, and headless Chromium configured with the proxy.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rawExchange, splitResponses } from '../http-wire.ts';
import { type Nginx, startNginx } from '../peers/nginx.ts';
import { selfSignedCertificate } from '../peers/tls.ts';
import { checkLogged, type ClientRun, type Context, cliRequirement, defineScenario, PEERS, type Server, TRACEBACK } from '../scenario.ts';
import { readExactly, tcpConnect } from '../wire.ts';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const KiB = 1024;
const OPENSSL = { name: 'openssl', apt: 'openssl' };
/** A 4×4 red PNG: small, and a real image a browser decodes. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEElEQVR4nGM4w8AARwzEcQBYgwzBem1TxwAAAABJRU5ErkJggg==',
  'base64',
);

async function tempDir(ctx: Context, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Origin {
  nginx: Nginx;
  dir: string;
  files: Record<string, Buffer>;
  /** Lines of nginx's access log for `GET <path>`, with their status. */
  requests(pathname: string): Promise<number[]>;
}

/** nginx serving known files, each folder with its own caching policy, and an access log. */
async function startOrigin(ctx: Context, tls?: { cert: string; key: string }): Promise<Origin> {
  const dir = await tempDir(ctx, 'ej07-origin-');
  const root = path.join(dir, 'root');
  const files: Record<string, Buffer> = {
    'cached/one-mib.bin': randomBytes(1024 * KiB),
    'cached/a.txt': Buffer.from(`cached text ${randomBytes(8).toString('hex')}\n`),
    'revalidate/r.txt': Buffer.from(`no-cache text ${randomBytes(8).toString('hex')}\n`),
    'maxage0/m.txt': Buffer.from(`max-age=0 text ${randomBytes(8).toString('hex')}\n`),
    'nostore/n.txt': Buffer.from(`no-store text ${randomBytes(8).toString('hex')}\n`),
    'cookie/c.txt': Buffer.from(`cookie text ${randomBytes(8).toString('hex')}\n`),
    'page/index.html': Buffer.from('<!doctype html>\n<html><head><title>ej07</title><link rel="stylesheet" href="style.css"></head>\n<body><h1>Through the proxy</h1><img src="img.png" width="20" height="20" alt="red"></body></html>\n'),
    'page/style.css': Buffer.from('body { background: #ffe; }\nh1 { color: #a00; }\n'),
    'page/img.png': PNG,
  };
  for (const n of [1, 2, 3, 4]) files[`lru/${n}.bin`] = randomBytes(100 * KiB);
  for (const [name, data] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), data);
  }
  const log = path.join(dir, 'access.log');
  const extra = `
        access_log ${log};
        location /cached/ { expires 1h; }
        location /lru/ { expires 1h; }
        location /page/ { expires 1h; }
        location /revalidate/ { add_header Cache-Control "no-cache"; }
        location /maxage0/ { add_header Cache-Control "max-age=0"; }
        location /nostore/ { add_header Cache-Control "no-store"; }
        location /cookie/ { expires 1h; add_header Set-Cookie "session=$request_id; Path=/; HttpOnly"; }
`;
  const nginx = await startNginx(ctx, { root, extra, ...(tls ? { tls } : {}) });
  return {
    nginx,
    dir,
    files,
    async requests(pathname) {
      // nginx writes the line once the response is sent: give it a moment.
      await new Promise((resolve) => setTimeout(resolve, 250));
      const text = await readFile(log, 'utf8').catch(() => '');
      const out: number[] = [];
      for (const line of text.split('\n')) {
        const match = /"GET (\S+) HTTP\/1\.[01]" (\d{3})/.exec(line);
        if (match && match[1] === pathname) out.push(Number(match[2]));
      }
      return out;
    },
  };
}

/** The options the target's proxy lists in its -h (asked once per requirement). */
async function options(ctx: Context): Promise<string> {
  const help = await ctx.client('proxy', ['-h']);
  return help.stdout;
}

/** Starts the proxy with a cache folder of its own when it takes --cache-dir. */
async function startProxy(ctx: Context, extra: string[] = [], cacheDir?: string): Promise<{ proxy: Server; cacheDir: string | undefined }> {
  const help = await options(ctx);
  let dir = cacheDir;
  if (help.includes('--cache-dir')) dir ??= await tempDir(ctx, 'ej07-cache-');
  else dir = undefined;
  const proxy = await ctx.server('proxy', 'tcp', [...(dir ? ['--cache-dir', dir] : []), ...extra]);
  return { proxy, cacheDir: dir };
}

/** curl through the proxy; `--include` so that the head comes too. */
async function viaProxy(ctx: Context, proxy: Server, url: string, extra: string[] = []): Promise<ClientRun> {
  return ctx.exec('curl', ['curl', '--silent', '--show-error', '--max-time', '20', '--include', '-x', `http://${proxy.host}:${proxy.port}`, ...extra, url]);
}

function response(run: ClientRun) {
  return splitResponses(run.stdoutBytes).responses[0];
}

function checkAlive(ctx: Context, proxy: Server): void {
  ctx.t.notMatch(proxy.proc.stderr, TRACEBACK, 'the proxy printed no stack trace');
  ctx.t.equal(proxy.proc.exit, undefined, 'the proxy is still running');
}

/** Fetches `name` through the proxy; checks the bytes; returns the X-Cache label. */
async function fetchChecked(ctx: Context, proxy: Server, origin: Origin, name: string): Promise<string | undefined> {
  const run = await viaProxy(ctx, proxy, `${origin.nginx.url}/${name}`);
  const r = response(run);
  ctx.t.equal(r?.status, 200, `${name}: 200 through the proxy`);
  ctx.t.equal(sha256(r?.body ?? Buffer.alloc(0)), sha256(origin.files[name] as Buffer), `${name}: ${r?.body.length ?? 0} bytes, identical to the origin's (sha256)`);
  return r?.headers['x-cache'];
}

export default defineScenario('ej07', 'Caching proxy', [
  { ...cliRequirement({ proxy: [/--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    id: 'bytes-exact',
    tier: 'assignment',
    title: 'curl through the proxy gets byte-identical files from nginx (1 MiB random, a text), without hop-by-hop fields (with http:via declared, a Via header)',
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx],
    async run(ctx) {
      const origin = await startOrigin(ctx);
      const { proxy } = await startProxy(ctx);
      for (const name of ['cached/one-mib.bin', 'cached/a.txt']) {
        const run = await viaProxy(ctx, proxy, `${origin.nginx.url}/${name}`, ['-H', 'Proxy-Connection: keep-alive']);
        ctx.t.equal(run.exit.code, 0, `curl exits 0 (${run.stderr.trim()})`);
        const r = response(run);
        ctx.t.equal(r?.status, 200, `${name}: 200`);
        ctx.t.equal(sha256(r?.body ?? Buffer.alloc(0)), sha256(origin.files[name] as Buffer), `${name}: ${r?.body.length} bytes, identical (sha256)`);
        // Via and a request log are this project's conventions: graded where declared, else noted.
        if (ctx.feature('http:via')) ctx.t.ok(r?.headers.via, `${name}: a Via header (${r?.headers.via})`);
        else if (!r?.headers.via) ctx.t.comment(`note: ${name}: no Via header (RFC 9110 §7.6.3 asks a proxy for one)`);
        ctx.t.notOk(r?.headers['keep-alive'] ?? r?.headers['proxy-connection'], `${name}: no Keep-Alive or Proxy-Connection forwarded`);
      }
      if (ctx.feature('log:requests')) await checkLogged(ctx.t, proxy.proc, /GET http:\/\/127\.0\.0\.1:\d+\/cached\/a\.txt.*200/, 'the proxy logs the request (method, URL, status) on stderr');
      checkAlive(ctx, proxy);
    },
  },
  {
    // The assignment's cache: proved by the origin's own log, whatever the proxy labels.
    id: 'cache-hit',
    tier: 'assignment',
    title: 'a second fetch of a cacheable object is served from the cache: nginx logs no second request (with x-cache declared, X-Cache MISS then HIT)',
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx],
    async run(ctx) {
      const origin = await startOrigin(ctx);
      const { proxy } = await startProxy(ctx);
      for (const name of ['cached/a.txt', 'cached/one-mib.bin']) {
        const first = await fetchChecked(ctx, proxy, origin, name);
        const second = await fetchChecked(ctx, proxy, origin, name);
        // X-Cache labels and the HIT log line are this project's; the origin's log is what proves the cache.
        if (ctx.feature('x-cache')) {
          ctx.t.equal(first, 'MISS', `${name}: first fetch X-Cache MISS`);
          ctx.t.equal(second, 'HIT', `${name}: second fetch X-Cache HIT`);
        }
        const seen = await origin.requests(`/${name}`);
        ctx.t.same(seen, [200], `${name}: nginx saw exactly one request (observed ${seen.length}: ${seen.join(', ') || 'none'})`);
      }
      if (ctx.feature('log:requests')) await checkLogged(ctx.t, proxy.proc, /cached\/a\.txt.*HIT/, 'the log line of the second fetch says HIT');
      checkAlive(ctx, proxy);
    },
  },
  {
    // Revalidation (RFC 9111, which the assignment does not cite) and the REVALIDATED label are this project's.
    id: 'revalidate',
    tier: 'beyond',
    features: ['x-cache', 'http:revalidate'],
    title: 'no-cache and max-age=0 objects are revalidated: nginx answers 304 and the proxy serves its copy (X-Cache REVALIDATED)',
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx],
    async run(ctx) {
      const origin = await startOrigin(ctx);
      const { proxy } = await startProxy(ctx);
      for (const name of ['revalidate/r.txt', 'maxage0/m.txt']) {
        const first = await fetchChecked(ctx, proxy, origin, name);
        const second = await fetchChecked(ctx, proxy, origin, name);
        ctx.t.equal(first, 'MISS', `${name}: first fetch MISS`);
        ctx.t.equal(second, 'REVALIDATED', `${name}: second fetch REVALIDATED`);
        const seen = await origin.requests(`/${name}`);
        ctx.t.same(seen, [200, 304], `${name}: nginx answered 200, then 304 to the conditional request`);
      }
      checkAlive(ctx, proxy);
    },
  },
  {
    // Cache-Control (RFC 9111) is not cited by the assignment, which asks to cache page objects.
    id: 'no-store',
    tier: 'beyond',
    features: ['x-cache', 'http:cache-control'],
    title: 'a no-store object is never cached: every fetch reaches nginx',
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx],
    async run(ctx) {
      const origin = await startOrigin(ctx);
      const { proxy } = await startProxy(ctx);
      const labels = [];
      for (let i = 0; i < 3; i++) labels.push(await fetchChecked(ctx, proxy, origin, 'nostore/n.txt'));
      ctx.t.same(labels, ['MISS', 'MISS', 'MISS'], 'three fetches, three MISSes');
      ctx.t.same(await origin.requests('/nostore/n.txt'), [200, 200, 200], 'nginx saw all three requests');
      checkAlive(ctx, proxy);
    },
  },
  {
    // RFC 9111 §7.3 lets a cache store a response with Set-Cookie: not caching it is this project's policy.
    id: 'set-cookie',
    tier: 'beyond',
    features: ['cache:private-cookies'],
    title: "a cacheable object that sets a cookie is not served from the cache: each client reaches nginx and gets its own cookie, never another client's",
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx],
    async run(ctx) {
      const origin = await startOrigin(ctx);
      const { proxy } = await startProxy(ctx);
      const cookies: string[] = [];
      for (let i = 0; i < 2; i++) {
        const run = await viaProxy(ctx, proxy, `${origin.nginx.url}/cookie/c.txt`);
        const r = response(run);
        ctx.t.equal(r?.status, 200, `fetch ${i + 1}: 200`);
        cookies.push(r?.headers['set-cookie'] ?? '');
      }
      ctx.t.ok(cookies.every((c) => /^session=\w+/.test(c)), `each client got a cookie (${cookies.join(' | ')})`);
      ctx.t.not(cookies[1], cookies[0], "the second client did not get the first one's cookie");
      ctx.t.same(await origin.requests('/cookie/c.txt'), [200, 200], 'nginx saw both requests (expires 1h, yet not cached)');
      checkAlive(ctx, proxy);
    },
  },
  {
    // The Connection rule is RFC 9110 §7.6.1, but seeing it needs pipelining through the proxy, which the assignment does not ask.
    id: 'connection-named',
    tier: 'beyond',
    features: ['http:keep-alive'],
    title: "an origin's Connection naming Content-Length or Transfer-Encoding does not break the framing a keep-alive client reads; a client's Connection naming Accept-Language does not choose the variant (Vary) another client gets",
    roles: ['proxy'],
    peers: [],
    async run(ctx) {
      // A hand-made origin: nginx would never send these heads.
      const originPort = await ctx.port();
      const origin = net.createServer((socket) => {
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
          if (!text.includes('\r\n\r\n')) return;
          const path = /^GET (\S+)/.exec(text)?.[1];
          const lang = /\r\nAccept-Language: ([^\r]*)\r\n/i.exec(text)?.[1] ?? 'default';
          text = '';
          if (path === '/cl') socket.end('HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nCache-Control: max-age=600\r\nContent-Length: 5\r\n\r\nhello');
          else if (path === '/te') socket.end('HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nchunked\r\n5\r\n body\r\n0\r\n\r\n');
          else socket.end(`HTTP/1.1 200 OK\r\nVary: Accept-Language\r\nCache-Control: max-age=600\r\nContent-Length: ${8 + lang.length}\r\n\r\nvariant ${lang}`);
        });
        socket.on('error', () => {});
      });
      await new Promise<void>((resolve) => origin.listen(originPort, '127.0.0.1', resolve));
      ctx.t.teardown(() => void origin.close());
      const { proxy } = await startProxy(ctx);
      const get = (p: string, extra = '') => `GET http://127.0.0.1:${originPort}${p} HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n${extra}\r\n`;

      const piped = await rawExchange(proxy.host, proxy.port, get('/cl') + get('/cl') + get('/te', 'Connection: close\r\n'), { idleMs: 3000 });
      const [first, second, third] = splitResponses(piped.bytes).responses;
      ctx.t.equal(first?.headers['content-length'], '5', `Connection: Content-Length: the proxy states the length itself (${first?.headers['content-length']})`);
      ctx.t.equal(first?.body.toString('latin1'), 'hello', 'and the body is the 5 bytes, nothing of the next response');
      ctx.t.equal(second?.status, 200, 'the next response on the connection begins where the first ended');
      ctx.t.equal(second?.body.toString('latin1'), 'hello', 'it is the same object (from the cache or the origin), framed by its length');
      ctx.t.match(third?.headers['transfer-encoding'] ?? '', /chunked/, 'Connection: Transfer-Encoding: the proxy chunks the body itself');
      ctx.t.equal(third?.body.toString('latin1'), '7\r\nchunked\r\n5\r\n body\r\n0\r\n\r\n', 'with its chunks and the last chunk');

      const attacker = await rawExchange(proxy.host, proxy.port, get('/vary', 'Accept-Language: xx\r\nConnection: close, Accept-Language\r\n'));
      ctx.t.match(attacker.bytes.toString('latin1'), /variant default$/, "the attacker's request reached the origin without Accept-Language (Connection named it)");
      const victim = await rawExchange(proxy.host, proxy.port, get('/vary', 'Accept-Language: xx\r\nConnection: close\r\n'));
      ctx.t.equal(splitResponses(victim.bytes).responses[0]?.body.toString('latin1'), 'variant xx', 'a client sending Accept-Language: xx gets the xx variant, not the one the attacker had stored');
      checkAlive(ctx, proxy);
    },
  },
  {
    id: 'restart',
    tier: 'beyond',
    features: ['--cache-dir'],
    title: 'the cache survives a restart: stopped with SIGINT and started on the same folder, the proxy serves a HIT',
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx],
    async run(ctx) {
      const origin = await startOrigin(ctx);
      const first = await startProxy(ctx);
      if (!first.cacheDir) return ctx.skip("the target's proxy has no --cache-dir option: its cache folder cannot be isolated for this check");
      ctx.t.equal(await fetchChecked(ctx, first.proxy, origin, 'cached/a.txt'), 'MISS', 'first proxy: MISS');
      const exit = await first.proxy.proc.stop({ signal: 'SIGINT', graceMs: 5000 });
      // What Ctrl-C gives: 0, the shell's 130, or death by SIGINT.
      ctx.t.ok(exit.code === 0 || exit.code === 130 || exit.signal === 'SIGINT', `the proxy ends on SIGINT as Ctrl-C ends a program: 0, 130 or killed by it (observed code ${exit.code}, signal ${exit.signal})`);
      const second = await startProxy(ctx, [], first.cacheDir);
      ctx.t.equal(await fetchChecked(ctx, second.proxy, origin, 'cached/a.txt'), 'HIT', 'restarted proxy: HIT');
      ctx.t.same(await origin.requests('/cached/a.txt'), [200], 'nginx saw one request in all');
      checkAlive(ctx, second.proxy);
    },
  },
  {
    id: 'lru',
    tier: 'beyond',
    features: ['--cache-size'],
    title: 'with --cache-size 350K, four 100 KiB objects evict the least recently used one, not the one just used',
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx],
    async run(ctx) {
      if (!(await options(ctx)).includes('--cache-size')) return ctx.skip("the target's proxy has no --cache-size option");
      const origin = await startOrigin(ctx);
      const { proxy } = await startProxy(ctx, ['--cache-size', '350K']);
      const got: string[] = [];
      for (const n of [1, 2, 3, 1, 4, 2, 1]) got.push(`${n}:${await fetchChecked(ctx, proxy, origin, `lru/${n}.bin`)}`);
      // 1,2,3 fill the cache; 1 is used again; 4 needs room: 2 (least recently used) goes; 2 again: 3 goes; 1 stays.
      ctx.t.same(got, ['1:MISS', '2:MISS', '3:MISS', '1:HIT', '4:MISS', '2:MISS', '1:HIT'], `labels in order: ${got.join(' ')}`);
      ctx.t.same(await origin.requests('/lru/1.bin'), [200], 'nginx saw object 1 once (kept: recently used)');
      ctx.t.same(await origin.requests('/lru/2.bin'), [200, 200], 'nginx saw object 2 twice (evicted as least recently used)');
      checkAlive(ctx, proxy);
    },
  },
  {
    // 502 pages, 400s and loop refusal are this project's choices; the assignment defines no error.
    id: 'errors',
    tier: 'beyond',
    features: ['http:errors'],
    title: 'origin down → 502 with a page that says so; malformed and origin-form requests → 400; a request for the proxy itself is refused at once',
    roles: ['proxy'],
    peers: [PEERS.curl],
    async run(ctx) {
      const { proxy } = await startProxy(ctx);
      const closed = await ctx.port(); // free, so nothing listens on it
      const down = await viaProxy(ctx, proxy, `http://127.0.0.1:${closed}/x`);
      const r = response(down);
      ctx.t.equal(r?.status, 502, 'origin down: 502');
      ctx.t.match(r?.body.toString() ?? '', new RegExp(`502|${closed}|refused`, 'i'), 'the page says what failed');
      const garbage = await rawExchange(proxy.host, proxy.port, 'HELLO?\r\n\r\n', { idleMs: 2000 });
      ctx.t.equal(splitResponses(garbage.bytes).responses[0]?.status, 400, 'garbage: 400');
      const originForm = await rawExchange(proxy.host, proxy.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', { idleMs: 2000 });
      ctx.t.equal(splitResponses(originForm.bytes).responses[0]?.status, 400, 'origin-form request to the proxy: 400');
      const started = performance.now();
      const loop = await viaProxy(ctx, proxy, `http://127.0.0.1:${proxy.port}/`);
      const status = response(loop)?.status ?? 0;
      ctx.t.ok(status >= 400, `a request for the proxy itself is refused (${status}) in ${Math.round(performance.now() - started)} ms, not forwarded round and round`);
      checkAlive(ctx, proxy);
    },
  },
  {
    id: 'connect',
    tier: 'beyond',
    features: ['--connect-ports'],
    title: 'CONNECT: refused (403) to a port not allowed; curl -p fetches over HTTPS from nginx through the tunnel; a raw TCP echo round-trips',
    roles: ['proxy'],
    peers: [PEERS.curl, PEERS.nginx, OPENSSL],
    async run(ctx) {
      if (!(await options(ctx)).includes('--connect-ports')) return ctx.skip("the target's proxy has no --connect-ports option to allow loopback test ports");
      const cert = await selfSignedCertificate(ctx);
      const origin = await startOrigin(ctx, cert);
      const echoPort = await ctx.port();
      const echo = net.createServer((s) => s.pipe(s));
      await new Promise<void>((resolve) => echo.listen(echoPort, '127.0.0.1', resolve));
      ctx.t.teardown(() => void echo.close());
      const { proxy } = await startProxy(ctx, ['--connect-ports', `${origin.nginx.tlsPort},${echoPort}`]);

      const refused = await rawExchange(proxy.host, proxy.port, `CONNECT 127.0.0.1:${origin.nginx.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.nginx.port}\r\n\r\n`, { idleMs: 2000 });
      ctx.t.equal(splitResponses(refused.bytes).responses[0]?.status, 403, `CONNECT to port ${origin.nginx.port} (not allowed): 403`);

      const https = await ctx.exec('curl', ['curl', '--silent', '--show-error', '--max-time', '20', '-p', '--insecure', '-x', `http://${proxy.host}:${proxy.port}`, `https://127.0.0.1:${origin.nginx.tlsPort}/cached/one-mib.bin`]);
      ctx.t.equal(https.exit.code, 0, `curl -p over the tunnel exits 0 (${https.stderr.trim()})`);
      ctx.t.equal(sha256(https.stdoutBytes), sha256(origin.files['cached/one-mib.bin'] as Buffer), `1 MiB over HTTPS arrived identical through the tunnel (${https.stdoutBytes.length} bytes)`);

      const socket = await tcpConnect(proxy.host, proxy.port);
      try {
        const payload = randomBytes(64 * KiB);
        socket.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\n\r\n`);
        const head = await new Promise<string>((resolve) => {
          let text = '';
          const onData = (chunk: Buffer) => {
            text += chunk.toString('latin1');
            if (text.includes('\r\n\r\n')) {
              socket.off('data', onData);
              socket.pause();
              const after = Buffer.from(text.slice(text.indexOf('\r\n\r\n') + 4), 'latin1');
              if (after.length > 0) socket.unshift(after);
              resolve(text.slice(0, text.indexOf('\r\n\r\n')));
            }
          };
          socket.on('data', onData);
        });
        ctx.t.match(head, /^HTTP\/1\.[01] 200/, `CONNECT to the echo port: ${head.split('\r\n')[0]}`);
        socket.write(payload);
        const reading = readExactly(socket, payload.length, 10_000);
        socket.resume();
        const back = await reading;
        ctx.t.equal(sha256(back), sha256(payload), '64 KiB sent through the tunnel came back identical');
      } finally {
        socket.destroy();
      }
      await checkLogged(ctx.t, proxy.proc, /CONNECT/, 'the tunnel is logged');
      checkAlive(ctx, proxy);
    },
  },
  {
    // The assignment configures a browser with the proxy; the X-Cache labels only where x-cache is declared.
    id: 'browser',
    tier: 'assignment',
    title: 'headless Chromium through the proxy loads a page with an image and a stylesheet from nginx; a second load (fresh browser cache) is served by the proxy: nginx sees no new request',
    roles: ['proxy'],
    peers: [PEERS.chromium, PEERS.nginx],
    timeoutMs: 120_000,
    async run(ctx) {
      const origin = await startOrigin(ctx);
      const { proxy } = await startProxy(ctx);
      const { chromium } = await import('playwright-core');
      const shots = process.env.HARNESS_SCREENSHOTS ?? path.join(tmpdir(), 'harness-artefacts', 'ej07');
      await mkdir(shots, { recursive: true });
      const browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: [
          '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
          `--proxy-server=http://${proxy.host}:${proxy.port}`, '--proxy-bypass-list=<-loopback>',
        ],
      });
      try {
        const pageUrl = `${origin.nginx.url}/page/index.html`;
        const pageFiles = ['/page/index.html', '/page/style.css', '/page/img.png'];
        const counts = async () => Promise.all(pageFiles.map(async (p) => (await origin.requests(p)).length));
        for (const round of [1, 2]) {
          // A new context each time: an empty browser cache, so the second load must come from the proxy.
          const context = await browser.newContext({ viewport: { width: 800, height: 500 } });
          const page = await context.newPage();
          const labels = new Map<string, string>();
          page.on('response', (r) => labels.set(new URL(r.url()).pathname, `${r.status()} ${r.headers()['x-cache'] ?? '-'}`));
          const main = await page.goto(pageUrl, { waitUntil: 'load', timeout: 30_000 });
          ctx.t.equal(main?.status(), 200, `load ${round}: 200 for the page`);
          const state = await page.evaluate(() => {
            const doc = (globalThis as unknown as { document: { querySelector(s: string): { complete: boolean; naturalWidth: number } | null; styleSheets: { length: number } } }).document;
            const img = doc.querySelector('img');
            return { image: img ? img.complete && img.naturalWidth > 0 : false, sheets: doc.styleSheets.length };
          });
          ctx.t.ok(state.image, `load ${round}: the image is decoded`);
          ctx.t.ok(state.sheets > 0, `load ${round}: the stylesheet is applied`);
          const seen = await counts();
          ctx.t.same(seen, [1, 1, 1], `load ${round}: nginx has seen each of page, style, image once in all (${seen.join(', ')})`);
          const shown = pageFiles.map((p) => `${p} ${labels.get(p) ?? '?'}`).join(', ');
          if (round === 2 && ctx.feature('x-cache')) ctx.t.ok(pageFiles.every((p) => /HIT$/.test(labels.get(p) ?? '')), `load 2: every resource is a proxy HIT (${shown})`);
          else ctx.t.comment(`load 1: ${shown}`);
          await page.screenshot({ path: path.join(shots, `ej07-load${round}.png`) });
          await context.close();
        }
      } finally {
        await browser.close();
      }
      checkAlive(ctx, proxy);
    },
  },
]);
