/**
 * Exercise 3: a wget-like HTTP client on raw sockets. Role: `wget`
 * (`--url URL [--proxy PROXY] [--port PORT]`, plus wget's `-O FILE` and a
 * `--log FILE` of the header blocks received).
 *
 * The servers are real ones: nginx (static files, chunked responses through
 * its sub_filter, the five redirect codes, HTTPS with a self-signed
 * certificate) and tinyproxy (a forward proxy, and CONNECT); and raw socket
 * peers of the harness for what no well-behaved server sends: a body cut
 * short, a megabyte of headers, bytes dribbled one at a time.
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startNginx } from '../peers/nginx.ts';
import { startTinyproxy } from '../peers/tinyproxy.ts';
import { selfSignedCertificate } from '../peers/tls.ts';
import { checkLogged, type ClientRun, type Context, cliRequirement, defineScenario, PEERS, TRACEBACK } from '../scenario.ts';

const OPENSSL = { name: 'openssl', apt: 'openssl' };
/** util-linux's script(1): runs a command on a pseudo-terminal. */
const SCRIPT = { name: 'script', apt: 'bsdutils' };

/** Quotes a word for sh -c. */
const shellQuote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const MiB = 1024 * 1024;

async function tempDir(ctx: Context, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A site for nginx: a page, a text with markers for sub_filter, 1 MiB and 50 MiB of random bytes. */
async function makeSite(ctx: Context, { big = false } = {}) {
  const dir = await tempDir(ctx, 'ej03-');
  const root = path.join(dir, 'root');
  await mkdir(path.join(root, 'files'), { recursive: true });
  await mkdir(path.join(root, 'chunked'), { recursive: true });
  const files: Record<string, Buffer> = {
    'files/index.html': Buffer.from(`<!doctype html><title>ej03</title><p>${randomBytes(16).toString('hex')}</p>\n`),
    'files/one-mib.bin': randomBytes(MiB),
  };
  if (big) files['files/fifty-mib.bin'] = randomBytes(50 * MiB);
  const text = Array.from({ length: 4000 }, (_, i) => `line ${i} MARK ${randomBytes(8).toString('hex')}\n`).join('');
  files['chunked/text.html'] = Buffer.from(text);
  for (const [name, data] of Object.entries(files)) await writeFile(path.join(root, name), data);
  const out = path.join(dir, 'out');
  await mkdir(out);
  return { dir, root, out, files, log: path.join(dir, 'headers.log'), substituted: Buffer.from(text.replaceAll('MARK', 'SUBSTITUTED')) };
}

/** nginx directives: chunked output through sub_filter, each redirect code, a loop. */
const NGINX_EXTRA = `
        absolute_redirect off;
        location /chunked/ { sub_filter 'MARK' 'SUBSTITUTED'; sub_filter_once off; sub_filter_types *; }
        location = /r301 { return 301 /r302; }
        location = /r302 { return 302 r303; }
        location = /r303 { return 303 /r307; }
        location = /r307 { return 307 /r308; }
        location = /r308 { return 308 /files/index.html; }
        location = /loop-a { return 302 /loop-b; }
        location = /loop-b { return 302 /loop-a; }
`;

/**
 * The role's command with its relative script paths made absolute, so that
 * it can run in another folder (where wget's default file names land).
 */
function commandIn(ctx: Context, role: string): string[] {
  // Every word naming a file of the target's folder, `ejer3.py` as well as `ej03/wget.ts`
  // (only words with a slash were made absolute, so `python3 ejer3.py` found no script).
  return ctx.command(role).map((word, i) =>
    !word.startsWith('-') && !path.isAbsolute(word) && (i > 0 || word.includes('/')) && existsSync(path.join(ctx.target.cwd, word)) ? path.join(ctx.target.cwd, word) : word,
  );
}

/**
 * Where a run of the assignment's command line put the page: on stdout, or
 * in a file it wrote in its folder (the assignment names neither).
 */
async function foundBody(run: ClientRun, cwd: string, marker: string): Promise<string | undefined> {
  if (run.stdout.includes(marker)) return 'stdout';
  for (const name of await readdir(cwd).catch(() => [] as string[])) {
    const text = await readFile(path.join(cwd, name), 'latin1').catch(() => '');
    if (text.includes(marker)) return `the file ${name}`;
  }
  return undefined;
}

async function wget(ctx: Context, args: string[], { cwd, timeoutMs = 60_000 }: { cwd?: string; timeoutMs?: number } = {}): Promise<ClientRun> {
  if (cwd) return ctx.exec('wget', [...commandIn(ctx, 'wget'), ...args], { cwd, timeoutMs });
  return ctx.client('wget', args, { timeoutMs });
}

function checkOk(ctx: Context, run: ClientRun, what: string): void {
  ctx.t.notOk(run.timedOut, `${what}: finished`);
  ctx.t.equal(run.exit.code, 0, `${what}: exit 0 (stderr: ${run.stderr.trim().split('\n').slice(-2).join(' | ').slice(0, 300)})`);
}

function checkFailure(ctx: Context, run: ClientRun, what: string, code?: number): void {
  ctx.t.notOk(run.timedOut, `${what}: gave up by itself (${(run.durationMs / 1000).toFixed(1)} s)`);
  if (code === undefined) ctx.t.ok(run.exit.code !== 0 && run.exit.code !== null, `${what}: non-zero exit (${run.exit.code})`);
  else ctx.t.equal(run.exit.code, code, `${what}: exit ${code} (got ${run.exit.code}; stderr: ${run.stderr.trim().split('\n').at(-1)})`);
  const said = run.stderr.trim().split('\n').slice(-2).join(' | ') || 'nothing';
  // A usage message is a refusal of the command line, not the failure being checked.
  ctx.t.notMatch(run.stderr, /^usage:/im, `${what}: it failed, not refused its command line (stderr: ${said})`);
  ctx.t.match(run.stderr, /\S/, `${what}: says why on stderr (observed: ${said})`);
  ctx.t.notMatch(run.stderr, TRACEBACK, `${what}: no stack trace`);
}

async function fileHash(file: string): Promise<string> {
  return sha256(await readFile(file).catch(() => Buffer.alloc(0)));
}

/**
 * A raw server of the harness that answers every connection with `respond`,
 * after reading the request head. It records the requests it saw.
 */
async function rawPeer(ctx: Context, respond: (socket: net.Socket, request: string) => void | Promise<void>) {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      requests.push(head);
      void Promise.resolve(respond(socket, head)).catch(() => socket.destroy());
    };
    socket.on('data', onData);
  });
  const port = await ctx.port();
  await new Promise<void>((resolve) => server.listen(port, ctx.host, resolve));
  ctx.t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port, url: `http://${ctx.host}:${port}`, requests };
}

/** Writes `data` in pieces of random size (1 to `max` bytes), each after a pause. */
async function dribble(socket: net.Socket, data: Buffer, max: number, pauseMs = 1): Promise<void> {
  for (let i = 0; i < data.length && !socket.destroyed; ) {
    const n = 1 + Math.floor(Math.random() * max);
    socket.write(data.subarray(i, i + n));
    i += n;
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

function chunked(body: Buffer, trailers: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < body.length; ) {
    const n = Math.min(body.length - i, 1 + Math.floor(Math.random() * 5000));
    parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(i, i + n), Buffer.from('\r\n'));
    i += n;
  }
  parts.push(Buffer.from(`0\r\n${trailers}\r\n`));
  return Buffer.concat(parts);
}

export default defineScenario('ej03', 'wget over sockets', [
  {
    ...cliRequirement({ wget: [/--url URL/, /--proxy PROXY/, /--port PORT/] }, async (ctx) => {
      // --url is required in the assignment's usage line: argparse's own exit 2.
      const none = await ctx.client('wget', []);
      ctx.t.equal(none.exit.code, 2, 'no --url exits 2');
      ctx.t.notMatch(none.stderr, TRACEBACK, 'no stack trace');
    }),
    tier: 'assignment',
  },
  {
    id: 'fetch',
    tier: 'assignment',
    title: 'as the assignment runs it (--url URL alone, from a folder of its own): the page from nginx is printed or saved, exit 0',
    roles: ['wget'],
    peers: [PEERS.nginx],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root });
      const page = (site.files['files/index.html'] as Buffer).toString('latin1');
      const marker = /<p>([0-9a-f]{32})<\/p>/.exec(page)?.[1] as string;
      const run = await wget(ctx, ['--url', `${nginx.url}/files/index.html`], { cwd: site.out });
      checkOk(ctx, run, '--url URL');
      const where = await foundBody(run, site.out, marker);
      ctx.t.ok(where, `the page's content came out (${where ?? `neither on stdout nor in a file of ${site.out}`})`);
    },
  },
  {
    id: 'proxy-default',
    tier: 'assignment',
    title: 'as the assignment runs it: --url URL --proxy HOST --port PORT through tinyproxy: the page comes out, and tinyproxy carried the request',
    roles: ['wget'],
    peers: [PEERS.nginx, PEERS.tinyproxy],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root });
      const proxy = await startTinyproxy(ctx);
      const page = (site.files['files/index.html'] as Buffer).toString('latin1');
      const marker = /<p>([0-9a-f]{32})<\/p>/.exec(page)?.[1] as string;
      const run = await wget(ctx, ['--url', `${nginx.url}/files/index.html`, '--proxy', proxy.host, '--port', String(proxy.port)], { cwd: site.out });
      checkOk(ctx, run, '--url URL --proxy HOST --port PORT');
      const where = await foundBody(run, site.out, marker);
      ctx.t.ok(where, `the page's content came out (${where ?? `neither on stdout nor in a file of ${site.out}`})`);
      await checkLogged(ctx.t, proxy.proc, /files\/index\.html/, 'tinyproxy carried the request (its log names the page)', 'both');
    },
  },
  {
    // -O and --log are this project's options (the assignment names no output or log option).
    id: 'nginx-files',
    tier: 'beyond',
    features: ['-O', '--log'],
    title: 'from nginx: a page, 1 MiB and 50 MiB of random bytes, each saved byte-identical (sha256)',
    roles: ['wget'],
    peers: [PEERS.nginx],
    timeoutMs: 120_000,
    async run(ctx) {
      const site = await makeSite(ctx, { big: true });
      const nginx = await startNginx(ctx, { root: site.root, extra: NGINX_EXTRA });
      for (const name of ['files/index.html', 'files/one-mib.bin', 'files/fifty-mib.bin']) {
        const out = path.join(site.out, path.basename(name));
        const run = await wget(ctx, ['--url', `${nginx.url}/${name}`, '-O', out, '--log', site.log], { timeoutMs: 90_000 });
        checkOk(ctx, run, name);
        const expected = site.files[name] as Buffer;
        ctx.t.equal(await fileHash(out), sha256(expected), `${name}: the ${expected.length}-byte file is identical (sha256)`);
        ctx.t.match(run.stderr, /200/, `${name}: it printed the status`);
      }
      const log = await readFile(site.log, 'utf8').catch(() => '');
      ctx.t.equal((log.match(/^HTTP\/1\.1 200 OK/gm) ?? []).length, 3, 'the log has the three header blocks');
      ctx.t.match(log, /^Server: nginx/m, 'the log has the headers as nginx sent them');
    },
  },
  {
    id: 'file-names',
    tier: 'beyond',
    features: ['--log', 'format:wget-names'],
    title: "without -O it saves like wget: the URL's last segment, index.html for a folder, name.1 rather than overwrite",
    roles: ['wget'],
    peers: [PEERS.nginx],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root, extra: `${NGINX_EXTRA}        index index.html;` });
      const cwd = site.out;
      checkOk(ctx, await wget(ctx, ['--url', `${nginx.url}/files/one-mib.bin`, '--log', site.log], { cwd }), 'one-mib.bin');
      checkOk(ctx, await wget(ctx, ['--url', `${nginx.url}/files/one-mib.bin`, '--log', site.log], { cwd }), 'one-mib.bin again');
      checkOk(ctx, await wget(ctx, ['--url', `${nginx.url}/files/`, '--log', site.log], { cwd }), 'the folder /files/');
      const names = (await readdir(cwd)).sort();
      ctx.t.same(names, ['index.html', 'one-mib.bin', 'one-mib.bin.1'], `saved as ${names.join(', ')}`);
      const one = sha256(site.files['files/one-mib.bin'] as Buffer);
      ctx.t.equal(await fileHash(path.join(cwd, 'one-mib.bin')), one, 'one-mib.bin is identical');
      ctx.t.equal(await fileHash(path.join(cwd, 'one-mib.bin.1')), one, 'one-mib.bin.1 is identical');
      ctx.t.equal(await fileHash(path.join(cwd, 'index.html')), sha256(site.files['files/index.html'] as Buffer), 'index.html is the folder index');
      const stdout = await wget(ctx, ['--url', `${nginx.url}/files/index.html`, '-O', '-', '--log', site.log], { cwd });
      ctx.t.equal(sha256(stdout.stdoutBytes), sha256(site.files['files/index.html'] as Buffer), '-O - writes the body to stdout');
    },
  },
  {
    id: 'nginx-chunked',
    tier: 'beyond',
    features: ['-O', '--log'],
    title: 'a chunked response from nginx (its sub_filter drops the length) is saved whole and decoded',
    roles: ['wget'],
    peers: [PEERS.nginx],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root, extra: NGINX_EXTRA });
      const out = path.join(site.out, 'text.html');
      const run = await wget(ctx, ['--url', `${nginx.url}/chunked/text.html`, '-O', out, '--log', site.log]);
      checkOk(ctx, run, 'chunked');
      const log = await readFile(site.log, 'utf8').catch(() => '');
      ctx.t.match(log, /^Transfer-Encoding: chunked/im, 'nginx did send it chunked (the log shows it)');
      ctx.t.equal(await fileHash(out), sha256(site.substituted), `the ${site.substituted.length}-byte body is saved decoded, without chunk sizes`);
    },
  },
  {
    id: 'redirects',
    tier: 'beyond',
    features: ['-O', '--log'],
    title: 'redirects 301, 302, 303, 307, 308 with relative Locations are followed to the end, each hop told and logged',
    roles: ['wget'],
    peers: [PEERS.nginx],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root, extra: NGINX_EXTRA });
      const out = path.join(site.out, 'end.html');
      const run = await wget(ctx, ['--url', `${nginx.url}/r301`, '-O', out, '--log', site.log]);
      checkOk(ctx, run, 'a chain of five redirects');
      ctx.t.equal(await fileHash(out), sha256(site.files['files/index.html'] as Buffer), 'the page at the end of the chain is saved');
      for (const hop of ['/r302', '/r303', '/r307', '/r308', '/files/index.html']) {
        ctx.t.ok(run.stderr.includes(`${nginx.url}${hop}`), `the hop to ${hop} is told on stderr`);
      }
      const log = await readFile(site.log, 'utf8').catch(() => '');
      for (const code of [301, 302, 303, 307, 308, 200]) ctx.t.match(log, new RegExp(`^HTTP/1\\.1 ${code} `, 'm'), `the log has the ${code} header block`);
      ctx.t.match(log, /^Location: r303$/m, 'a relative Location without a slash (r303) was resolved against the URL');
    },
  },
  {
    id: 'redirect-limits',
    tier: 'beyond',
    features: ['-O', '--log', '--max-redirect', 'exit:wget'],
    title: 'a redirect loop and a chain longer than --max-redirect both end with exit 8, not a hang',
    roles: ['wget'],
    peers: [PEERS.nginx],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root, extra: NGINX_EXTRA });
      const loop = await wget(ctx, ['--url', `${nginx.url}/loop-a`, '-O', path.join(site.out, 'x'), '--log', site.log], { timeoutMs: 30_000 });
      checkFailure(ctx, loop, 'a redirect loop', 8);
      const limited = await wget(ctx, ['--url', `${nginx.url}/r301`, '--max-redirect', '2', '-O', path.join(site.out, 'y'), '--log', site.log], { timeoutMs: 30_000 });
      checkFailure(ctx, limited, '--max-redirect 2 on a chain of 5', 8);
    },
  },
  {
    id: 'progress',
    tier: 'beyond',
    features: ['-O', '--log', 'progress-bar'],
    title: 'a progress bar (percent, size) on a terminal, and none when stderr is not one',
    roles: ['wget'],
    peers: [PEERS.nginx, SCRIPT],
    timeoutMs: 90_000,
    async run(ctx) {
      const site = await makeSite(ctx, { big: true });
      const nginx = await startNginx(ctx, { root: site.root });
      const url = `${nginx.url}/files/fifty-mib.bin`;
      const args = ['--url', url, '-O', path.join(site.out, 'tty.bin'), '--log', site.log];
      const line = ['stty cols 100 2>/dev/null;', ...[...commandIn(ctx, 'wget'), ...args].map(shellQuote)].join(' ');
      const tty = await ctx.exec('script', ['script', '-qec', line, '/dev/null'], { cwd: ctx.target.cwd, timeoutMs: 60_000 });
      checkOk(ctx, tty, 'on a terminal');
      // The terminal turns each \n into \r\n: a redraw is a \r that no \n follows.
      ctx.t.match(tty.stdout, /\r(?!\n)/, 'the bar is redrawn in place (a carriage return alone)');
      ctx.t.match(tty.stdout, /\r(?!\n)[^\r\n]*100%/, 'a redrawn line reaches 100%');
      ctx.t.match(tty.stdout, /\r(?!\n)[^\r\n]*100%[^\r\n]*50(\.0)? ?M/i, 'and shows the size received (50M)');
      const plain = await wget(ctx, ['--url', url, '-O', path.join(site.out, 'plain.bin'), '--log', site.log]);
      checkOk(ctx, plain, 'stderr to a pipe');
      ctx.t.notMatch(plain.stderr, /\r|\d+%\[/, 'no bar and no carriage return when stderr is a pipe');
      ctx.t.equal(await fileHash(path.join(site.out, 'tty.bin')), sha256(site.files['files/fifty-mib.bin'] as Buffer), 'the file saved under the terminal is identical');
    },
  },
  {
    // wget's exit 8 is the peer's convention.
    id: 'not-found',
    tier: 'beyond',
    features: ['--log', 'exit:wget'],
    title: 'a 404 from nginx exits 8 and saves nothing',
    roles: ['wget'],
    peers: [PEERS.nginx],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root });
      const run = await wget(ctx, ['--url', `${nginx.url}/no/such/file.txt`, '--log', site.log], { cwd: site.out });
      checkFailure(ctx, run, '404', 8);
      ctx.t.match(run.stderr, /404/, 'it says 404');
      ctx.t.same(await readdir(site.out), [], 'no file was saved');
    },
  },
  {
    id: 'raw-chunked-trailers',
    tier: 'beyond',
    features: ['-O', '--log'],
    title: 'a raw peer dribbling a chunked body with trailers in random pieces: saved whole, trailers logged',
    roles: ['wget'],
    async run(ctx) {
      const dir = await tempDir(ctx, 'ej03-raw-');
      const body = randomBytes(200_000);
      const digest = sha256(body);
      const peer = await rawPeer(ctx, async (socket) => {
        const head = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n');
        await dribble(socket, Buffer.concat([head, chunked(body, `X-Checksum: ${digest}\r\n`)]), 3000, 0);
        socket.end();
      });
      const out = path.join(dir, 'body.bin');
      const log = path.join(dir, 'headers.log');
      const run = await wget(ctx, ['--url', `${peer.url}/data.bin`, '-O', out, '--log', log]);
      checkOk(ctx, run, 'chunked with trailers');
      ctx.t.equal(await fileHash(out), digest, 'the body is saved whole and decoded (sha256)');
      ctx.t.match(await readFile(log, 'utf8').catch(() => ''), new RegExp(`X-Checksum: ${digest}`), 'the trailer field is in the log');
      ctx.t.match(peer.requests[0] ?? '', /^GET \/data\.bin HTTP\/1\.1\r\n/, 'the request line was GET /data.bin HTTP/1.1');
      ctx.t.match(peer.requests[0] ?? '', /\r\nHost: 127\.0\.0\.1:\d+\r\n/i, 'with a Host header');
      ctx.t.match(peer.requests[0] ?? '', /\r\nUser-Agent: \S/i, 'with a User-Agent');
    },
  },
  {
    id: 'raw-byte-by-byte',
    tier: 'beyond',
    features: ['-O', '--log'],
    title: 'a raw peer sending its head and a Content-Length body one byte at a time, and a close-delimited body',
    roles: ['wget'],
    async run(ctx) {
      const dir = await tempDir(ctx, 'ej03-raw-');
      const small = Buffer.from('byte by byte\n');
      const slow = await rawPeer(ctx, async (socket) => {
        await dribble(socket, Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${small.length}\r\n\r\n`), small]), 1, 2);
        socket.end();
      });
      const a = path.join(dir, 'a');
      checkOk(ctx, await wget(ctx, ['--url', slow.url, '-O', a, '--log', path.join(dir, 'l')]), 'one byte at a time');
      ctx.t.equal((await readFile(a).catch(() => Buffer.alloc(0))).toString(), small.toString(), 'the body is right');
      const body = randomBytes(300_000);
      const untilClose = await rawPeer(ctx, async (socket) => {
        socket.end(Buffer.concat([Buffer.from('HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n'), body]));
      });
      const b = path.join(dir, 'b');
      checkOk(ctx, await wget(ctx, ['--url', untilClose.url, '-O', b, '--log', path.join(dir, 'l')]), 'a body delimited by the close');
      ctx.t.equal(await fileHash(b), sha256(body), 'the close-delimited body is saved whole');
    },
  },
  {
    id: 'raw-broken',
    tier: 'beyond',
    features: ['-O', '--log'],
    title: 'a body cut short, a megabyte of headers, and garbage for a status line each fail clearly (no hang, no stack trace)',
    roles: ['wget'],
    async run(ctx) {
      const dir = await tempDir(ctx, 'ej03-raw-');
      const cut = await rawPeer(ctx, (socket) => {
        socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'), randomBytes(40_000)]));
      });
      checkFailure(ctx, await wget(ctx, ['--url', cut.url, '-O', path.join(dir, 'cut'), '--log', path.join(dir, 'l')], { timeoutMs: 40_000 }), 'body cut at 40000 of 100000 bytes');
      const huge = await rawPeer(ctx, async (socket) => {
        socket.write('HTTP/1.1 200 OK\r\n');
        for (let i = 0; i < 1024 && !socket.destroyed; i++) {
          if (!socket.write(`X-Filler-${i}: ${'f'.repeat(1000)}\r\n`)) await new Promise((resolve) => socket.once('drain', resolve));
        }
        socket.end('Content-Length: 2\r\n\r\nok');
      });
      checkFailure(ctx, await wget(ctx, ['--url', huge.url, '-O', path.join(dir, 'huge'), '--log', path.join(dir, 'l')], { timeoutMs: 40_000 }), '1 MiB of header fields');
      const garbage = await rawPeer(ctx, (socket) => {
        socket.end('SSH-2.0-OpenSSH_9.2p1 Debian\r\n\r\n');
      });
      checkFailure(ctx, await wget(ctx, ['--url', garbage.url, '-O', path.join(dir, 'garbage'), '--log', path.join(dir, 'l')], { timeoutMs: 40_000 }), 'an SSH banner instead of HTTP');
    },
  },
  {
    // The assignment's --proxy/--port are graded by proxy-default; this adds -O, --log and the URL form.
    id: 'proxy',
    tier: 'beyond',
    features: ['-O', '--log'],
    title: 'through tinyproxy (--proxy HOST --port PORT, and --proxy http://HOST:PORT): the file is identical and the log shows the proxy',
    roles: ['wget'],
    peers: [PEERS.nginx, PEERS.tinyproxy],
    async run(ctx) {
      const site = await makeSite(ctx);
      const nginx = await startNginx(ctx, { root: site.root });
      const proxy = await startTinyproxy(ctx);
      const url = `${nginx.url}/files/one-mib.bin`;
      const expected = sha256(site.files['files/one-mib.bin'] as Buffer);
      const a = path.join(site.out, 'a.bin');
      checkOk(ctx, await wget(ctx, ['--url', url, '--proxy', proxy.host, '--port', String(proxy.port), '-O', a, '--log', site.log]), '--proxy HOST --port PORT');
      ctx.t.equal(await fileHash(a), expected, 'through the proxy: identical (sha256)');
      const b = path.join(site.out, 'b.bin');
      checkOk(ctx, await wget(ctx, ['--url', url, '--proxy', `http://${proxy.host}:${proxy.port}`, '-O', b, '--log', site.log]), '--proxy http://HOST:PORT');
      ctx.t.equal(await fileHash(b), expected, 'with the URL form: identical (sha256)');
      const log = await readFile(site.log, 'utf8').catch(() => '');
      ctx.t.match(log, /^Via: .*tinyproxy/im, 'the log shows the header tinyproxy added (Via)');
      await checkLogged(ctx.t, proxy.proc, /one-mib\.bin/, 'tinyproxy saw the requests (its log names the file)', 'both');
    },
  },
  {
    id: 'https',
    tier: 'beyond',
    features: ['-O', '--log', '--ca-certificate', '--no-check-certificate'],
    title: 'HTTPS against nginx with a self-signed certificate: refused without the CA (exit 5), accepted with --ca-certificate',
    roles: ['wget'],
    peers: [PEERS.nginx, OPENSSL],
    async run(ctx) {
      const site = await makeSite(ctx);
      const cert = await selfSignedCertificate(ctx);
      const nginx = await startNginx(ctx, { root: site.root, tls: cert });
      const url = `https://localhost:${nginx.tlsPort}/files/one-mib.bin`;
      const expected = sha256(site.files['files/one-mib.bin'] as Buffer);
      const refused = await wget(ctx, ['--url', url, '-O', path.join(site.out, 'refused.bin'), '--log', site.log]);
      checkFailure(ctx, refused, 'an untrusted certificate', 5);
      ctx.t.notOk(existsSync(path.join(site.out, 'refused.bin')) && (await readFile(path.join(site.out, 'refused.bin'))).length > 0, 'nothing was saved');
      const trusted = path.join(site.out, 'trusted.bin');
      checkOk(ctx, await wget(ctx, ['--url', url, '--ca-certificate', cert.cert, '-O', trusted, '--log', site.log]), '--ca-certificate');
      ctx.t.equal(await fileHash(trusted), expected, 'over TLS: identical (sha256)');
      const unchecked = path.join(site.out, 'unchecked.bin');
      checkOk(ctx, await wget(ctx, ['--url', url, '--no-check-certificate', '-O', unchecked, '--log', site.log]), '--no-check-certificate');
      ctx.t.equal(await fileHash(unchecked), expected, 'unchecked: identical (sha256)');
    },
  },
  {
    id: 'https-proxy',
    tier: 'beyond',
    features: ['-O', '--log', '--ca-certificate'],
    title: 'HTTPS through tinyproxy with CONNECT: the file is identical, the proxy saw only the tunnel',
    roles: ['wget'],
    peers: [PEERS.nginx, PEERS.tinyproxy, OPENSSL],
    async run(ctx) {
      const site = await makeSite(ctx);
      const cert = await selfSignedCertificate(ctx);
      const nginx = await startNginx(ctx, { root: site.root, tls: cert });
      const proxy = await startTinyproxy(ctx);
      const out = path.join(site.out, 'tunnel.bin');
      const url = `https://localhost:${nginx.tlsPort}/files/one-mib.bin`;
      const run = await wget(ctx, ['--url', url, '--proxy', proxy.host, '--port', String(proxy.port), '--ca-certificate', cert.cert, '-O', out, '--log', site.log]);
      checkOk(ctx, run, 'https through the proxy');
      ctx.t.equal(await fileHash(out), sha256(site.files['files/one-mib.bin'] as Buffer), 'identical (sha256)');
      await checkLogged(ctx.t, proxy.proc, /CONNECT/, 'tinyproxy logged a CONNECT', 'both');
      ctx.t.notMatch(proxy.proc.stdout + proxy.proc.stderr, /one-mib\.bin/, 'tinyproxy never saw the path: it travelled inside TLS');
    },
  },
]);
