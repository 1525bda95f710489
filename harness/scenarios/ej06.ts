/**
 * Exercise 6: a static HTTP server. Roles: `server` (the assignment's
 * `[--host HOST] [--port PORT]`, serving its own demo site) and, optional,
 * `server-root` (the same server accepting `--root DIR`, so that the harness
 * can serve files it made: random bytes, a symlink that points out).
 *
 * Clients: curl, wget and headless Chromium as real peers, ej03's wget of
 * the same target when it has one, and the harness's raw sockets for what
 * those clients would clean before sending (`..`, `%2e%2e`, malformed
 * requests).
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { type RawResponse, noteDeviations, rawExchange, splitResponses } from '../http-wire.ts';
import { waitReady } from '../proc.ts';
import { type Context, cliRequirement, defineScenario, PEERS, type Server, TRACEBACK } from '../scenario.ts';
import { tcpConnect } from '../wire.ts';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A folder of known files for `server-root`, and a secret outside it. */
interface Site {
  dir: string;
  root: string;
  secret: string;
  files: Record<string, Buffer>;
}

async function makeSite(ctx: Context): Promise<Site> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej06-site-'));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await mkdir(path.join(root, 'empty'));
  const secret = `SECRET-${randomBytes(8).toString('hex')}`;
  await writeFile(path.join(dir, 'secret.txt'), secret);
  const files: Record<string, Buffer> = {
    'random.bin': randomBytes(1024 * 1024 + 7),
    'page.html': Buffer.from('<!doctype html><title>t</title><p>hello</p>\n'),
    'style.css': Buffer.from('body { color: red }\n'),
    'hola mundo.txt': Buffer.from('con espacio\n'),
    'sub/index.html': Buffer.from('<!doctype html><title>sub</title>index of sub\n'),
    'empty.txt': Buffer.alloc(0),
  };
  for (const [name, data] of Object.entries(files)) await writeFile(path.join(root, name), data);
  await symlink(path.join(dir, 'secret.txt'), path.join(root, 'link-out.txt'));
  await symlink(dir, path.join(root, 'dir-out'));
  await symlink(path.join(root, 'page.html'), path.join(root, 'link-in.html'));
  return { dir, root, secret, files };
}

/** A GET request; `Connection: close` unless `keepOpen`, so that the answer ends with the connection. */
function get(target: string, extra = '', keepOpen = false): string {
  return `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${keepOpen ? '' : 'Connection: close\r\n'}${extra}\r\n`;
}

/** One request on its own connection, read with the harness's parser. */
async function request(server: Server, text: string, method = 'GET'): Promise<RawResponse | undefined> {
  const { bytes } = await rawExchange(server.host, server.port, text, { idleMs: 3000, timeoutMs: 15_000 });
  return splitResponses(bytes, [method]).responses[0];
}

/** Content-Length, where the response has one, must be the body's (RFC 9112 §6.3); a close-delimited body is a note. */
function checkLength(ctx: Context, response: RawResponse | undefined, what: string): void {
  noteDeviations(ctx.t, response, what);
  if (response?.headers['content-length'] === undefined) return;
  ctx.t.equal(response.headers['content-length'], String(response.body.length), `${what}: Content-Length equals the ${response.body.length}-byte body received`);
}

async function curl(ctx: Context, args: string[]) {
  return ctx.exec('curl', ['curl', '--silent', '--show-error', '--max-time', '15', ...args]);
}

/**
 * A folder the harness prepares as the server's working folder, holding
 * what an assignment server may serve: the folder itself and `./www` (the
 * assignment names no folder; submissions serve one of the two), each with
 * `index.html` and `page` (a file of the harness's). A secret lies in
 * another folder, outside both.
 */
interface Workdir {
  cwd: string;
  page: { name: string; body: Buffer };
  secretPath: string;
  secret: string;
}

async function makeWorkdir(ctx: Context): Promise<Workdir> {
  const cwd = await mkdtemp(path.join(tmpdir(), 'ej06-cwd-'));
  const outside = await mkdtemp(path.join(tmpdir(), 'ej06-outside-'));
  ctx.t.teardown(() => Promise.all([rm(cwd, { recursive: true, force: true }), rm(outside, { recursive: true, force: true })]));
  const page = { name: `harness-${randomBytes(4).toString('hex')}.html`, body: Buffer.from('<!doctype html><html><title>harness</title><p>page of the harness</p></html>\n') };
  for (const dir of [cwd, path.join(cwd, 'www')]) {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'index.html'), '<!doctype html><html><title>index</title><p>index of the harness</p></html>\n');
    await writeFile(path.join(dir, page.name), page.body);
  }
  const secret = `SECRET-${randomBytes(8).toString('hex')}`;
  const secretPath = path.join(outside, 'secret.txt');
  await writeFile(secretPath, secret);
  return { cwd, page, secretPath, secret };
}

/**
 * `role`'s command made to run from another folder: a word that names a file
 * of the target's folder (`ejer6.py`, `ej06/server.ts`) becomes its absolute path.
 */
function commandFrom(ctx: Context, role: string): string[] {
  return ctx.command(role).map((word, i) => {
    if (path.isAbsolute(word) || word.startsWith('-') || (i === 0 && !word.includes('/'))) return word;
    const absolute = path.resolve(ctx.target.cwd, word);
    return existsSync(absolute) ? absolute : word;
  });
}

/** Starts `role` with the assignment's command line only (`--host`, `--port`), in `cwd`. */
async function serverIn(ctx: Context, role: string, cwd: string): Promise<Server> {
  const port = await ctx.port();
  const proc = ctx.supervisor.start(role, [...commandFrom(ctx, role), '--host', ctx.host, '--port', String(port)], { cwd });
  await waitReady(proc, port, 'tcp', 20_000);
  return { proc, host: ctx.host, port };
}

function checkNoTrace(ctx: Context, server: Server): void {
  ctx.t.notMatch(server.proc.stderr, TRACEBACK, 'the server printed no stack trace');
  ctx.t.equal(server.proc.exit, undefined, 'the server is still running');
}

export default defineScenario('ej06', 'Static HTTP server', [
  { ...cliRequirement({ server: [/--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    // The stylesheet and image are this project's demo site: checked only where declared.
    id: 'demo-page',
    tier: 'assignment',
    title: 'curl gets / (200, text/html, a right Content-Length if any); with demo-site declared, the stylesheet and image it uses too',
    roles: ['server'],
    peers: [PEERS.curl],
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const base = `http://${server.host}:${server.port}/`;
      const run = await curl(ctx, ['--include', base]);
      ctx.t.equal(run.exit.code, 0, `curl exits 0 (${run.stderr.trim()})`);
      const [response] = splitResponses(run.stdoutBytes).responses;
      ctx.t.equal(response?.status, 200, 'GET / is 200');
      if (!response) return;
      ctx.t.match(response.headers['content-type'] ?? '', /^text\/html/, 'Content-Type is text/html');
      checkLength(ctx, response, 'GET /');
      if (!ctx.feature('demo-site')) return;
      const html = response.body.toString('utf8');
      const css = /<link[^>]+href="([^"]+\.css)"/.exec(html)?.[1];
      const img = /<img[^>]+src="([^"]+)"/.exec(html)?.[1];
      ctx.t.ok(css && img, `the page uses a stylesheet (${css}) and an image (${img})`);
      for (const [asset, type] of [
        [css, /^text\/css/],
        [img, /^image\//],
      ] as const) {
        if (!asset) continue;
        const got = await curl(ctx, ['--include', new URL(asset, base).href]);
        const [r] = splitResponses(got.stdoutBytes).responses;
        ctx.t.equal(r?.status, 200, `GET ${asset} is 200`);
        ctx.t.match(r?.headers['content-type'] ?? '', type, `${asset} has Content-Type ${type.source}`);
        checkLength(ctx, r, asset);
      }
      checkNoTrace(ctx, server);
    },
  },
  {
    id: 'not-found',
    tier: 'assignment',
    title: 'a missing page is 404 with a prepared HTML page, for curl and wget',
    roles: ['server'],
    peers: [PEERS.curl, PEERS.wget],
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const url = `http://${server.host}:${server.port}/no/such/page-${randomBytes(4).toString('hex')}.html`;
      const run = await curl(ctx, ['--include', url]);
      const [response] = splitResponses(run.stdoutBytes).responses;
      ctx.t.equal(response?.status, 404, 'curl: 404');
      ctx.t.match(response?.headers['content-type'] ?? '', /^text\/html/, 'the 404 page is text/html');
      ctx.t.match(response?.body.toString('utf8') ?? '', /<html[\s\S]*(404|not found|no (se )?encontr|no existe)[\s\S]*<\/html>/i, 'the body is an HTML page that explains the 404');
      checkLength(ctx, response, 'the 404 page');
      const w = await ctx.exec('wget', ['wget', '-O', '/dev/null', '--tries=1', url]);
      ctx.t.match(w.stderr, /404/, 'wget reports the 404');
      // wget's exit code is the peer's convention, not the assignment's: a note.
      if (w.exit.code !== 8) ctx.t.comment(`note: wget exited ${w.exit.code ?? w.exit.signal}, not 8 (its code for an error response)`);
    },
  },
  {
    id: 'bytes-exact',
    tier: 'beyond',
    features: ['--root'],
    title: 'curl and wget download files byte-identical (1 MiB of random bytes, an empty file, a name with a space)',
    roles: ['server-root'],
    peers: [PEERS.curl, PEERS.wget],
    async run(ctx) {
      const site = await makeSite(ctx);
      const server = await ctx.server('server-root', 'tcp', ['--root', site.root]);
      const base = `http://${server.host}:${server.port}/`;
      for (const name of ['random.bin', 'empty.txt', 'hola mundo.txt']) {
        const expected = site.files[name] as Buffer;
        const url = base + encodeURIComponent(name);
        const c = await curl(ctx, ['--fail', url]);
        ctx.t.equal(c.exit.code, 0, `curl ${name}: exit 0`);
        ctx.t.equal(sha256(c.stdoutBytes), sha256(expected), `curl ${name}: ${c.stdoutBytes.length} bytes, identical to the file (sha256)`);
        const out = path.join(site.dir, `wget-${name}`);
        const w = await ctx.exec('wget', ['wget', '-q', '--tries=1', '-O', out, url]);
        ctx.t.equal(w.exit.code, 0, `wget ${name}: exit 0`);
        const got = await readFile(out).catch(() => Buffer.alloc(0));
        ctx.t.equal(sha256(got), sha256(expected), `wget ${name}: identical to the file (sha256)`);
      }
      const types: [string, RegExp][] = [
        ['page.html', /^text\/html/],
        ['style.css', /^text\/css/],
        ['random.bin', /^application\/octet-stream/],
      ];
      for (const [name, type] of types) {
        const r = await request(server, get(`/${name}`));
        ctx.t.match(r?.headers['content-type'] ?? '', type, `${name}: Content-Type ${type.source}`);
        ctx.t.equal(r?.headers['content-length'], String(site.files[name]?.length), `${name}: Content-Length ${site.files[name]?.length}`);
      }
      checkNoTrace(ctx, server);
    },
  },
  {
    // ej03's -O and --log are this project's options too.
    id: 'ej03-wget',
    tier: 'beyond',
    features: ['--root', 'ej03 -O', 'ej03 --log'],
    title: "the target's own ej03 wget downloads a file from ej06 byte-identical",
    roles: ['server-root'],
    async run(ctx) {
      const wget = ctx.target.roles.get('ej03')?.get('wget');
      if (!wget) return ctx.skip(`target '${ctx.target.name}' has no role wget in [ej03]`);
      const site = await makeSite(ctx);
      const server = await ctx.server('server-root', 'tcp', ['--root', site.root]);
      const out = path.join(site.dir, 'via-ej03.bin');
      const run = await ctx.exec('ej03 wget', [...wget, '--url', `http://${server.host}:${server.port}/random.bin`, '-O', out, '--log', path.join(site.dir, 'h.log')], {
        cwd: ctx.target.cwd,
        timeoutMs: 60_000,
      });
      ctx.t.equal(run.exit.code, 0, `ej03 wget exits 0 (${run.stderr.trim().split('\n').at(-1)})`);
      const got = await readFile(out).catch(() => Buffer.alloc(0));
      ctx.t.equal(sha256(got), sha256(site.files['random.bin'] as Buffer), `the ${got.length}-byte file is identical (sha256)`);
    },
  },
  {
    // RFC 9110 §9.1 asks HEAD of a general-purpose server, but the assignment (200 and 404, for browsers) cites no RFC.
    id: 'head',
    tier: 'beyond',
    features: ['http:head'],
    title: 'HEAD gives the same head as GET and no body (with http:keep-alive declared, a pipelined GET after it is read intact)',
    roles: ['server'],
    peers: [PEERS.curl],
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const url = `http://${server.host}:${server.port}/`;
      const head = await curl(ctx, ['--head', url]);
      ctx.t.match(head.stdout, /^HTTP\/1\.[01] 200/, `curl --head: 200 (observed ${JSON.stringify(head.stdout.split('\n')[0]?.trim() ?? '')})`);
      // Each on its own connection: pipelining them is keep-alive, graded where http:keep-alive is declared.
      const h = await request(server, 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'HEAD');
      const g = await request(server, get('/'));
      ctx.t.equal(h?.status, 200, 'HEAD: 200');
      ctx.t.equal(h?.body.length, 0, 'HEAD: no body');
      ctx.t.equal(h?.headers['content-length'], g?.headers['content-length'], 'HEAD: the Content-Length the GET has');
      ctx.t.equal(h?.headers['content-type'], g?.headers['content-type'], 'HEAD: the Content-Type the GET has');
      if (!ctx.feature('http:keep-alive')) return;
      const { bytes } = await rawExchange(server.host, server.port, `HEAD / HTTP/1.1\r\nHost: x\r\n\r\n${get('/')}`, { idleMs: 3000 });
      const { responses } = splitResponses(bytes, ['HEAD', 'GET']);
      ctx.t.equal(responses.length, 2, 'two responses on one connection');
      const [ph, pg] = responses;
      ctx.t.equal(ph?.body.length, 0, 'pipelined HEAD: no body');
      ctx.t.equal(pg?.status, 200, 'the GET after it: 200, its head read where HEAD ended');
      ctx.t.equal(String(pg?.body.length), pg?.headers['content-length'], 'the GET after it: its whole body');
    },
  },
  {
    // Persistence and pipelining are a SHOULD/MAY of RFC 9112 §9.3, not asked by the assignment.
    id: 'keep-alive',
    tier: 'beyond',
    features: ['http:keep-alive'],
    title: 'keep-alive: curl fetches two URLs on one connection; three pipelined requests are answered in order',
    roles: ['server'],
    peers: [PEERS.curl],
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const base = `http://${server.host}:${server.port}`;
      const run = await curl(ctx, ['--verbose', '-o', '/dev/null', '-o', '/dev/null', `${base}/`, `${base}/no-such-page`]);
      ctx.t.match(run.stderr, /Re-using existing connection/i, 'curl reused the connection for the second URL');
      ctx.t.notMatch(run.stderr, /Closing connection|Connection died/i, 'curl did not have to reconnect');

      const pipeline = get('/no-such-1', '', true) + get('/', '', true) + get('/no-such-2');
      const { bytes, closed } = await rawExchange(server.host, server.port, pipeline, { idleMs: 3000 });
      const { responses } = splitResponses(bytes);
      ctx.t.same(
        responses.map((r) => r.status),
        [404, 200, 404],
        'three pipelined requests (sent in one write) are answered in order: 404, 200, 404',
      );
      ctx.t.ok(closed, 'the server closed after the request that said Connection: close');
      checkNoTrace(ctx, server);
    },
  },
  {
    id: 'pipeline-backpressure',
    tier: 'beyond',
    features: ['--root'],
    title: '100 pipelined requests for 1 MiB, unread for 2 s: others are served meanwhile, then all 100 arrive intact and in order',
    roles: ['server-root'],
    timeoutMs: 90_000,
    async run(ctx) {
      const site = await makeSite(ctx);
      const server = await ctx.server('server-root', 'tcp', ['--root', site.root]);
      const flood = await tcpConnect(server.host, server.port);
      try {
        flood.pause();
        flood.write(get('/random.bin', '', true).repeat(99) + get('/random.bin'));
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const started = performance.now();
        const other = await request(server, get('/page.html'));
        ctx.t.equal(other?.status, 200, `another client is served while the flood is unread (in ${((performance.now() - started) / 1000).toFixed(2)} s)`);
        const chunks: Buffer[] = [];
        const bytes = await new Promise<Buffer>((resolve) => {
          flood.on('data', (chunk: Buffer) => chunks.push(chunk));
          const done = () => resolve(Buffer.concat(chunks));
          flood.once('end', done);
          flood.once('close', done);
          flood.setTimeout(20_000, () => flood.destroy());
          flood.resume();
        });
        const { responses } = splitResponses(bytes);
        const expected = sha256(site.files['random.bin'] as Buffer);
        const intact = responses.filter((r) => r.status === 200 && sha256(r.body) === expected).length;
        ctx.t.equal(intact, 100, `${intact} of 100 pipelined 1 MiB answers arrived intact (${(bytes.length / 1048576).toFixed(1)} MiB in all)`);
      } finally {
        flood.destroy();
      }
      checkNoTrace(ctx, server);
    },
  },
  {
    id: 'conditional',
    tier: 'beyond',
    features: ['--root'],
    title: 'Last-Modified, then If-Modified-Since: 304 without a body when not modified, 200 when older',
    roles: ['server-root'],
    async run(ctx) {
      const site = await makeSite(ctx);
      const when = new Date('2024-03-01T12:00:00Z');
      await utimes(path.join(site.root, 'page.html'), when, when);
      const server = await ctx.server('server-root', 'tcp', ['--root', site.root]);
      const first = await request(server, get('/page.html'));
      ctx.t.equal(first?.headers['last-modified'], when.toUTCString(), `Last-Modified is the file's time (${when.toUTCString()})`);
      const same = await request(server, get('/page.html', `If-Modified-Since: ${when.toUTCString()}\r\n`));
      ctx.t.equal(same?.status, 304, 'If-Modified-Since equal to Last-Modified: 304');
      ctx.t.equal(same?.body.length, 0, '304 has no body');
      const later = await request(server, get('/page.html', `If-Modified-Since: ${new Date('2025-01-01T00:00:00Z').toUTCString()}\r\n`));
      ctx.t.equal(later?.status, 304, 'If-Modified-Since after Last-Modified: 304');
      const older = await request(server, get('/page.html', `If-Modified-Since: ${new Date('2020-01-01T00:00:00Z').toUTCString()}\r\n`));
      ctx.t.equal(older?.status, 200, 'If-Modified-Since before Last-Modified: 200 with the page');
      ctx.t.equal(older?.body.toString(), site.files['page.html']?.toString(), 'the 200 carries the page');
      const junk = await request(server, get('/page.html', 'If-Modified-Since: yesterday-ish\r\n'));
      ctx.t.equal(junk?.status, 200, 'an unreadable date is ignored: 200');
    },
  },
  {
    id: 'folders',
    tier: 'beyond',
    features: ['--root'],
    title: 'a folder serves its index.html; a folder named without its slash is a 301 that adds it (`//sub` too, to /sub/, never //sub/)',
    roles: ['server-root'],
    peers: [PEERS.curl],
    async run(ctx) {
      const site = await makeSite(ctx);
      const server = await ctx.server('server-root', 'tcp', ['--root', site.root]);
      const redirect = await request(server, get('/sub?x=1'));
      ctx.t.equal(redirect?.status, 301, '/sub: 301');
      ctx.t.match(redirect?.headers.location ?? '', /^(http:\/\/[^/]+)?\/sub\/(\?x=1)?$/, `Location adds the slash (${redirect?.headers.location})`);
      for (const target of ['//sub', '///sub?x=1', `http://${server.host}//sub`]) {
        const doubled = await request(server, get(target));
        const location = doubled?.headers.location ?? '';
        ctx.t.ok(
          doubled?.status === 301 && /^(http:\/\/[^/]+)?\/sub\/(\?x=1)?$/.test(location),
          `${target}: a 301 to this server's /sub/, slashes merged, not to the scheme-relative //sub/ (another host): got ${doubled?.status} ${location}`,
        );
      }
      const index = await request(server, get('/sub/'));
      ctx.t.equal(index?.status, 200, '/sub/: 200');
      ctx.t.equal(index?.body.toString(), site.files['sub/index.html']?.toString(), '/sub/ is sub/index.html');
      const followed = await curl(ctx, ['--location', `http://${server.host}:${server.port}/sub`]);
      ctx.t.equal(followed.stdout, site.files['sub/index.html']?.toString(), 'curl --location /sub ends at the index');
      const empty = await request(server, get('/empty/'));
      ctx.t.ok(empty && empty.status >= 400 && empty.status < 500, `a folder without index.html is refused (${empty?.status}), never listed`);
    },
  },
  {
    // The assignment's command line, in a folder the harness made: any submission is graded on it.
    id: 'traversal-default',
    tier: 'assignment',
    title: 'started as the assignment starts it, in a folder the harness made, no request reaches a file outside it: .., %2e%2e, %2f, absolute paths (raw socket)',
    roles: ['server'],
    async run(ctx) {
      const work = await makeWorkdir(ctx);
      const server = await serverIn(ctx, 'server', work.cwd);
      const hostname = readFileSync('/etc/hostname', 'latin1');
      // Deep enough to reach / from wherever the server serves (its folder, ./www, its own).
      const up = '../'.repeat(16);
      const attempts: [string, string][] = [];
      for (const [file, secret] of [
        ['etc/hostname', hostname],
        [work.secretPath.slice(1), work.secret],
      ] as const) {
        attempts.push(
          [`/../../../../${file}`, secret],
          [`/${up}${file}`, secret],
          [`/${'%2e%2e/'.repeat(16)}${file}`, secret],
          [`/${'%2E%2E%2F'.repeat(16)}${file}`, secret],
          [`/${'..%2f'.repeat(16)}${file}`, secret],
          [`/${'.%2e/'.repeat(16)}${file}`, secret],
          [`/${'%252e%252e/'.repeat(16)}${file}`, secret],
          [`/${file}`, secret],
          [`//${file}`, secret],
          [`${up}${file}`, secret],
        );
      }
      const leaks: string[] = [];
      const statuses = new Map<string, number>();
      for (const [target, secret] of attempts) {
        const response = await request(server, get(target));
        const body = response?.body.toString('latin1') ?? '';
        // /etc/hostname is short (a word): only the whole file counts as it.
        const leaked = secret === hostname ? body.trim() === hostname.trim() && body.length > 0 : body.includes(secret);
        if (leaked) leaks.push(`GET ${target} answered ${response?.status} with the file`);
        const key = String(response?.status ?? 'closed');
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
      const answers = [...statuses].map(([s, n]) => `${n}× ${s}`).join(', ');
      ctx.t.equal(
        leaks.length,
        0,
        leaks.length === 0
          ? `no file outside the served folder came back (${attempts.length} attempts; answers: ${answers})`
          : `expected no file outside the served folder, observed ${leaks.length} of ${attempts.length} leaking: ${leaks.slice(0, 4).join('; ')}`,
      );
      const after = await request(server, get('/'));
      ctx.t.match(after?.statusLine ?? 'no response', /^HTTP\/1\.[01] \d{3}/, 'the server still answers after every attempt');
    },
  },
  {
    id: 'traversal',
    tier: 'beyond',
    features: ['--root'],
    title: 'no request leaves the root: .., %2e%2e, %2f, backslashes, NUL, absolute paths, symlinks out (raw socket)',
    roles: ['server-root'],
    async run(ctx) {
      const site = await makeSite(ctx);
      const server = await ctx.server('server-root', 'tcp', ['--root', site.root]);
      const attempts = [
        '/../secret.txt',
        '/sub/../../secret.txt',
        '/%2e%2e/secret.txt',
        '/%2E%2E/secret.txt',
        '/sub/%2e%2e/%2e%2e/secret.txt',
        '/..%2fsecret.txt',
        '/%2e%2e%2fsecret.txt',
        '/sub%2f..%2f..%2fsecret.txt',
        '/..%5csecret.txt',
        '/..\\secret.txt',
        '/%2e%2e%5csecret.txt',
        '/secret.txt%00.html',
        '/..%00/secret.txt',
        '/.%2e/secret.txt',
        '/%252e%252e/secret.txt',
        '..',
        '../secret.txt',
        `${site.dir}/secret.txt`,
        `//${site.dir}/secret.txt`,
        `http://127.0.0.1/../secret.txt`,
        '/link-out.txt',
        '/dir-out/secret.txt',
      ];
      for (const target of attempts) {
        const response = await request(server, get(target));
        const leaked = response?.body.includes(site.secret) ?? false;
        ctx.t.notOk(leaked, `GET ${target}: the secret outside the root is not in the answer`);
        ctx.t.ok(response === undefined || (response.status >= 400 && response.status < 500), `GET ${target}: refused with a 4xx (got ${response?.status ?? 'connection closed'})`);
      }
      const inside = await request(server, get('/link-in.html'));
      ctx.t.equal(inside?.status, 200, 'a symlink that stays inside the root is served');
      const ok = await request(server, get('/page.html'));
      ctx.t.equal(ok?.status, 200, 'the server still serves after every attempt');
      checkNoTrace(ctx, server);
    },
  },
  {
    // Needs files the harness made under the served root (--root); robustness beyond the assignment.
    id: 'symlink-swap',
    tier: 'beyond',
    features: ['--root'],
    title: 'a symlink swapped in after the check (for the file, or for a folder on the path) never leaks a file outside the root',
    roles: ['server-root'],
    timeoutMs: 120_000,
    async run(ctx) {
      const site = await makeSite(ctx);
      const server = await ctx.server('server-root', 'tcp', ['--root', site.root]);
      // swap.html flips between a link to page.html and a link to the secret; flip/ between a
      // real folder (flip/page.html inside) and a link to the folder that holds the secret.
      await mkdir(path.join(site.root, 'flip'));
      await writeFile(path.join(site.root, 'flip', 'secret.txt'), 'inside\n');
      await symlink(path.join(site.root, 'page.html'), path.join(site.root, 'swap.html'));
      const swapper = ctx.spawn('swapper', [
        process.execPath,
        '-e',
        `const fs = require('node:fs');
         const [root, dir] = process.argv.slice(1);
         const link = root + '/swap.html', tmp = root + '/.swap.tmp', d = root + '/flip', stash = dir + '/flip.real';
         for (let i = 0, until = Date.now() + 100000; Date.now() < until; i++) {
           try { fs.unlinkSync(tmp); } catch {}
           fs.symlinkSync(i % 2 ? dir + '/secret.txt' : root + '/page.html', tmp);
           fs.renameSync(tmp, link);
           if (i % 2 === 0) { fs.renameSync(d, stash); fs.symlinkSync(dir, d); }
           else { fs.unlinkSync(d); fs.renameSync(stash, d); }
         }`,
        site.root,
        site.dir,
      ]);
      const stop = Date.now() + 60_000;
      const seen = { inside: 0, refused: 0, other: 0 };
      let leaked = '';
      for (let i = 0; i < 1000 && !leaked && Date.now() < stop && swapper.exit === undefined; i++) {
        const target = i % 2 ? '/flip/secret.txt' : '/swap.html';
        const response = await request(server, get(target));
        if (response?.body.includes(site.secret)) leaked = `; GET ${target} leaked it at request ${i + 1}`;
        else if (response?.status === 200) seen.inside++;
        else if (response && response.status >= 400 && response.status < 500) seen.refused++;
        else seen.other++;
      }
      ctx.t.equal(swapper.exit, undefined, 'the swapper flipped the links all along');
      ctx.t.equal(leaked, '', `the secret outside the root never came back (${seen.inside} served inside, ${seen.refused} refused, ${seen.other} other${leaked})`);
      ctx.t.ok(leaked || seen.inside + seen.refused >= 300, `enough requests met the swaps to mean something (${seen.inside + seen.refused}, at least 300)`);
      checkNoTrace(ctx, server);
    },
  },
  {
    // Specific codes (405 Allow, 414, 431, 505) are this contract's; RFC 9110/9112 let a server answer 400 or close.
    id: 'bad-requests',
    tier: 'beyond',
    features: ['http:errors'],
    title: 'clear answers to bad requests: 400 malformed, 405 with Allow, 414 long target, 431 huge headers, 505 unknown version',
    roles: ['server'],
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const cases: [string, string, number][] = [
        ['garbage', 'HELLO\r\n\r\n', 400],
        ['space in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400],
        ['obs-fold header', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n', 400],
        ['Content-Length and Transfer-Encoding', 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
        ['Content-Length not digits', 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n', 400],
        ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\n\r\n', 400],
        ['POST', 'POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi', 405],
        ['DELETE', 'DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 405],
        ['a 20 000-byte target', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
        ['64 KiB of headers', `GET / HTTP/1.1\r\nHost: x\r\n${`X-Pad: ${'p'.repeat(1000)}\r\n`.repeat(64)}\r\n`, 431],
        ['HTTP/2.0 in an HTTP/1 request line', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505],
        ['HTTP/3.0', 'GET / HTTP/3.0\r\nHost: x\r\n\r\n', 505],
      ];
      for (const [what, text, status] of cases) {
        const response = await request(server, text);
        ctx.t.equal(response?.status, status, `${what}: ${status} (got ${response?.statusLine ?? 'no response'})`);
        if (status === 405) ctx.t.match(response?.headers.allow ?? '', /GET/, `${what}: Allow lists GET (${response?.headers.allow})`);
      }
      const ok = await request(server, get('/'));
      ctx.t.equal(ok?.status, 200, 'the server still serves a good request after all of them');
      checkNoTrace(ctx, server);
    },
  },
  {
    // Robustness the assignment does not ask for.
    id: 'timeouts',
    tier: 'beyond',
    features: ['http:timeouts'],
    title: 'an idle keep-alive connection and a slowloris client (one header byte a second) are both closed',
    roles: ['server'],
    // Generous bounds (nginx keeps idle connections 75 s): a server passes by closing at all.
    timeoutMs: 200_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const closedWithin = (socket: net.Socket, ms: number) =>
        new Promise<number | undefined>((resolve) => {
          const started = performance.now();
          const timer = setTimeout(() => resolve(undefined), ms);
          // The harness's sockets allow half-open: the server's FIN is 'end'.
          const closed = () => {
            clearTimeout(timer);
            resolve(performance.now() - started);
          };
          socket.once('end', closed);
          socket.once('close', closed);
          socket.on('error', () => {});
          socket.resume();
        });
      const idle = await tcpConnect(server.host, server.port);
      idle.write(get('/', '', true));
      const idleClosed = await closedWithin(idle, 80_000);
      idle.destroy();
      ctx.t.ok(idleClosed !== undefined, `an idle keep-alive connection was closed (after ${((idleClosed ?? NaN) / 1000).toFixed(1)} s; limit 80 s)`);

      const slow = await tcpConnect(server.host, server.port);
      const drip = `GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ${'s'.repeat(200)}`;
      let i = 0;
      const timer = setInterval(() => {
        if (!slow.destroyed && i < drip.length) slow.write(drip[i++] as string);
      }, 1000);
      const slowClosed = await closedWithin(slow, 80_000);
      clearInterval(timer);
      slow.destroy();
      ctx.t.ok(slowClosed !== undefined, `a slowloris client was cut off after ${((slowClosed ?? NaN) / 1000).toFixed(1)} s (${i} bytes dripped; limit 80 s)`);
      const ok = await request(server, get('/'));
      ctx.t.equal(ok?.status, 200, 'the server still serves others');
    },
  },
  {
    // The assignment does not ask an HTTP server to serve many clients at once.
    id: 'many-clients',
    tier: 'beyond',
    features: ['load:2000'],
    title: '2000 clients connecting at once (100 at a time, none waiting for another) each get their page',
    roles: ['server'],
    timeoutMs: 120_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const count = 2000;
      // Each client sends its request as soon as it is connected, as a browser does: a
      // connection that stays silent is one the server may close (its idle timeout), and
      // on a loaded machine opening all 2000 first can take longer than that.
      let open = 0;
      let peak = 0;
      const sockets: net.Socket[] = [];
      const client = () =>
        new Promise<number>((resolve) => {
          const socket = net.connect({ host: server.host, port: server.port, allowHalfOpen: true });
          sockets.push(socket);
          const chunks: Buffer[] = [];
          let connected = false;
          socket.once('connect', () => {
            connected = true;
            peak = Math.max(peak, ++open);
            socket.write(get('/'));
          });
          socket.on('data', (c: Buffer) => chunks.push(c));
          socket.on('error', () => {});
          const done = () => {
            if (connected) open--;
            connected = false;
            resolve(splitResponses(Buffer.concat(chunks)).responses[0]?.status ?? 0);
          };
          socket.once('end', done);
          socket.once('close', done);
          socket.setTimeout(60_000, () => socket.destroy());
        });
      const results: Promise<number>[] = [];
      try {
        for (let i = 0; i < count; i += 100) {
          const batch = Array.from({ length: Math.min(100, count - i) }, client);
          results.push(...batch);
          // The next hundred connect once this hundred is connected (or failed), not once it is served.
          await Promise.all(sockets.slice(-batch.length).map((s) => new Promise((resolve) => (s.connecting ? (s.once('connect', resolve), s.once('close', resolve)) : resolve(undefined)))));
        }
        const statuses = await Promise.all(results);
        const served = statuses.filter((s) => s === 200).length;
        ctx.t.equal(served, count, `${served} of ${count} clients got 200 (at most ${peak} connections were open at once)`);
      } finally {
        for (const socket of sockets) socket.destroy();
      }
      checkNoTrace(ctx, server);
    },
  },
  {
    // A Common Log Format access log is this project's convention.
    id: 'access-log',
    tier: 'beyond',
    features: ['log:clf'],
    title: 'one Common Log Format line per request on stdout',
    roles: ['server'],
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      await request(server, get('/'));
      await request(server, get('/missing-page'));
      await server.proc
        .until(() => (/"GET \/missing-page HTTP\/1\.1" 404 \d+/.test(server.proc.stdout) ? true : undefined), 5000, 'the access log line')
        .catch(() => undefined);
      ctx.t.match(server.proc.stdout, /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET \/ HTTP\/1\.1" 200 \d+$/m, 'a CLF line for GET / 200');
      ctx.t.match(server.proc.stdout, /"GET \/missing-page HTTP\/1\.1" 404 \d+$/m, 'a CLF line for the 404');
    },
  },
  {
    // The assignment asks for tests with browsers (its screenshots); the image and stylesheet only where 'demo-site' is declared.
    id: 'browser',
    tier: 'assignment',
    title: 'headless Chromium shows / (200; with demo-site declared, its image and stylesheet too), then the 404 page; screenshots saved',
    roles: ['server'],
    peers: [PEERS.chromium],
    timeoutMs: 90_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const { chromium } = await import('playwright-core');
      const profile = await mkdtemp(path.join(tmpdir(), 'ej06-chromium-'));
      ctx.t.teardown(() => rm(profile, { recursive: true, force: true }));
      const shots = process.env.HARNESS_SCREENSHOTS ?? path.join(tmpdir(), 'harness-artefacts', 'ej06');
      await mkdir(shots, { recursive: true });
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        viewport: { width: 1000, height: 640 },
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      try {
        const page = await browser.newPage();
        const statuses = new Map<string, number>();
        page.on('response', (r) => statuses.set(new URL(r.url()).pathname, r.status()));
        const base = `http://${server.host}:${server.port}/`;
        const main = await page.goto(base, { waitUntil: 'load', timeout: 20_000 });
        ctx.t.equal(main?.status(), 200, 'the browser got 200 for the page');
        if (ctx.feature('demo-site')) {
          const image = await page.evaluate(() => {
            const img = (globalThis as unknown as { document: { querySelector(s: string): { complete: boolean; naturalWidth: number } | null } }).document.querySelector('img');
            return img ? { complete: img.complete, width: img.naturalWidth } : undefined;
          });
          ctx.t.ok(image?.complete && image.width > 0, `the image is decoded (${image?.width ?? 0} px wide)`);
          const sheets = await page.evaluate(() => (globalThis as unknown as { document: { styleSheets: { cssRules: unknown[] }[] } }).document.styleSheets.length);
          ctx.t.ok(sheets > 0, `the stylesheet is applied (${sheets} style sheet loaded)`);
          const assets = [...statuses].filter(([p]) => p !== '/');
          ctx.t.ok(assets.length >= 2 && assets.every(([, s]) => s === 200), `every asset the page uses is 200 (${assets.map(([p, s]) => `${p} ${s}`).join(', ')})`);
        }
        await page.screenshot({ path: path.join(shots, 'ej06-200.png') });

        const missing = await page.goto(`${base}esta-pagina-no-existe.html`, { waitUntil: 'load', timeout: 20_000 });
        ctx.t.equal(missing?.status(), 404, 'the browser got 404 for a missing page');
        const text = await page.evaluate(() => (globalThis as unknown as { document: { body: { innerText: string } } }).document.body.innerText);
        ctx.t.match(text, /404/, 'the 404 page is rendered (it says 404)');
        await page.screenshot({ path: path.join(shots, 'ej06-404.png') });
        ctx.t.comment(`screenshots: ${path.join(shots, 'ej06-200.png')} and ${path.join(shots, 'ej06-404.png')}`);
      } finally {
        await browser.close();
      }
    },
  },
]);
