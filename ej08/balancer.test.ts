import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { TSX } from '../lib/fixtures/spawn.ts';
import { type RequestHead, RequestParser } from '../lib/http.ts';
import {
  type BackendSpec,
  BUNDLED_CONFIG,
  backendRequestHeaders,
  ConfigError,
  configPath,
  createBalancer,
  Health,
  parseConfig,
  RoundRobin,
} from './balancer.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

t.test('parseConfig() reads the assignment\'s config.ini', async (t) => {
  const text = '[nodo1]\nhost = 127.0.0.1\nport = 8001\n\n; a comment\n[nodo2]\r\nhost=localhost\r\nport=8002\r\n';
  t.same(parseConfig(text), [
    { name: 'nodo1', host: '127.0.0.1', port: 8001, line: 1 },
    { name: 'nodo2', host: 'localhost', port: 8002, line: 6 },
  ]);
});

t.test('parseConfig() names the line and section of each mistake', async (t) => {
  const cases: [string, number | undefined, RegExp][] = [
    ['', undefined, /no backends/],
    ['[nodo1]\nhost = 127.0.0.1\n', 1, /line 1 \[nodo1\]: section \[nodo1\] has no port/],
    ['[nodo1]\nhost = 127.0.0.1\nport = 80a\n', 3, /line 3 \[nodo1\]: port "80a" is not a port number/],
    ['[nodo1]\nhost = 127.0.0.1\nport = 70000\n', 3, /port "70000"/],
    ['[nodo1]\nhost = 127.0.0.1\nport = 0\n', 3, /port "0"/],
    ['[nodo1]\nhost = 127.0.0.1\nport = 8001\n[nodo2]\nhost = 127.0.0.1\nprot = 8002\n', 6, /line 6 \[nodo2\]: unknown key "prot"/],
    ['host = 127.0.0.1\n[nodo1]\n', 1, /line 1: "host" is outside any section/],
    ['[nodo1]\nhost 127.0.0.1\n', 2, /line 2 \[nodo1\]: expected "\[section\]" or "key = value"/],
    ['[nodo1]\nhost=a\nport=1\n[nodo1]\n', 4, /section \[nodo1\] already appears on line 1/],
    ['[nodo1]\nhost=a\nhost=b\nport=1\n', 3, /"host" is already set on line 2/],
    ['[nodo 1]\n', 1, /section name "nodo 1"/],
    ['[a.b]\nhost=x\nport=1\n', 1, /section name "a.b"/],
    ['[nodo1]\nhost = bad host!\nport = 1\n', 2, /host "bad host!" is not an IP address or host name/],
  ];
  for (const [text, line, message] of cases) {
    t.throws(() => parseConfig(text, 'config.ini'), ConfigError, `refused: ${JSON.stringify(text)}`);
    try {
      parseConfig(text, 'config.ini');
    } catch (error) {
      t.match((error as Error).message, message, `message for ${JSON.stringify(text)}`);
      t.match((error as Error).message, /^Cannot use config\.ini/, 'names the file');
      t.equal((error as ConfigError).line, line, `line ${line}`);
    }
  }
});

t.test('configPath(): --config, else ./config.ini, else the bundled example', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej08-cfg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.equal(configPath('x.ini', dir), 'x.ini');
  t.equal(configPath(undefined, dir), BUNDLED_CONFIG);
  await writeFile(path.join(dir, 'config.ini'), '[n]\nhost=a\nport=1\n');
  t.equal(configPath(undefined, dir), path.join(dir, 'config.ini'));
  t.equal(parseConfig(await import('node:fs/promises').then((fs) => fs.readFile(BUNDLED_CONFIG, 'utf8'))).length, 3, 'the bundled example names three backends');
});

t.test('Health: down after `fall` failures in a row, up after `rise` successes in a row', async (t) => {
  const h = new Health(3, 2);
  t.equal(h.up, true, 'starts up');
  t.equal(h.record(false, 'refused'), undefined);
  t.equal(h.record(false, 'refused'), undefined);
  t.equal(h.record(true), undefined, 'a success resets the failure count');
  t.equal(h.record(false), undefined);
  t.equal(h.record(false), undefined);
  t.equal(h.record(false, 'timed out'), 'down', 'third failure in a row: down');
  t.equal(h.up, false);
  t.equal(h.lastError, 'timed out');
  t.equal(h.record(false), undefined, 'further failures change nothing');
  t.equal(h.record(true), undefined, 'one success is not enough');
  t.equal(h.record(false), undefined, 'a failure resets the success count');
  t.equal(h.record(true), undefined);
  t.equal(h.record(true), 'up', 'two successes in a row: up');
  t.equal(h.up, true);
  t.equal(h.failures, 0);
  t.throws(() => new Health(0, 1), RangeError);
});

t.test('RoundRobin: in turn, skipping backends down and those already tried', async (t) => {
  const items = ['a', 'b', 'c'].map((name) => ({ name, health: { up: true } }));
  const [a, b, c] = items as [(typeof items)[0], (typeof items)[0], (typeof items)[0]];
  const ring = new RoundRobin(items);
  const names = (n: number) => Array.from({ length: n }, () => ring.pick()?.name ?? '-').join('');
  t.equal(names(7), 'abcabca');
  b.health.up = false;
  t.equal(names(4), 'caca', 'b is skipped while down');
  b.health.up = true;
  t.equal(names(3), 'bca', 'b is back in turn');
  t.equal(ring.pick(new Set([b]))?.name, 'c', 'the one tried is excluded');
  t.equal(ring.pick(new Set([a, b, c])), undefined, 'all tried: none');
  for (const item of items) item.health.up = false;
  t.equal(ring.pick(), undefined, 'all down: none');
});

t.test('backendRequestHeaders(): X-Forwarded-*, Via, hop-by-hop dropped', async (t) => {
  const parser = new RequestParser();
  const text = 'GET /x HTTP/1.1\r\nHost: site\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nExpect: 100-continue\r\nVia: 1.0 other\r\n\r\n';
  const head = parser.push(Buffer.from(text)).find((e) => e.type === 'head');
  if (head?.type !== 'head') throw new Error('no head');
  const headers = backendRequestHeaders(head.head, '127.0.0.1', { host: '10.0.0.1', port: 80 }, true);
  t.equal(headers.get('x-forwarded-for'), '203.0.113.7, 127.0.0.1');
  t.equal(headers.get('x-forwarded-proto'), 'http');
  t.equal(headers.get('x-forwarded-host'), 'site');
  t.equal(headers.get('host'), 'site');
  t.equal(headers.get('via'), '1.0 other, 1.1 ej08');
  t.equal(headers.get('connection'), 'keep-alive');
  t.notOk(headers.has('x-secret') || headers.has('keep-alive') || headers.has('expect'), 'hop-by-hop and Connection-named fields dropped');
  const old = new RequestParser().push(Buffer.from('GET / HTTP/1.0\r\n\r\n')).find((e) => e.type === 'head');
  if (old?.type !== 'head') throw new Error('no head');
  t.equal(backendRequestHeaders(old.head, '::1', { host: '10.0.0.1', port: 8001 }, false).get('host'), '10.0.0.1:8001', 'an HTTP/1.0 request without Host gets the backend\'s');
});

// --- In-process: the balancer in front of raw backends. -------------------

type Raw = { server: net.Server; port: number; heads: string[] };

/** A raw backend: answers each request with `name`, or resets it when `reset` is set. */
async function rawBackend(t: Test, name: string, { reset = false } = {}): Promise<Raw> {
  const heads: string[] = [];
  const server = net.createServer((socket) => {
    let buffer = '';
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      let end;
      while ((end = buffer.indexOf('\r\n\r\n')) >= 0) {
        const head = buffer.slice(0, end);
        buffer = buffer.slice(end + 4);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        buffer = buffer.slice(length); // tests send small bodies in one piece
        heads.push(head);
        if (reset) return void socket.resetAndDestroy();
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${name.length}\r\n\r\n${name}`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, port: (server.address() as net.AddressInfo).port, heads };
}

async function startBalancer(t: Test, backends: BackendSpec[], lines: string[] = []) {
  const balancer = createBalancer({ backends, checkIntervalMs: 0, fall: 1, rise: 1, accessLog: (l) => lines.push(l), log: (l) => lines.push(l) });
  await new Promise<void>((resolve) => balancer.server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => balancer.close(100));
  return { balancer, port: (balancer.server.address() as net.AddressInfo).port };
}

/** Sends raw requests on one connection and returns everything read until the balancer is silent or closes. */
function exchange(port: number, request: string, idleMs = 400): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let timer = setTimeout(() => socket.destroy(), idleMs * 5);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(() => socket.destroy(), idleMs);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.write(request);
  });
}

const spec = (name: string, port: number): BackendSpec => ({ name, host: '127.0.0.1', port, line: 1 });
const GET = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: lb\r\n${extra}\r\n`;

t.test('keep-alive client: requests alternate between backends, in order', async (t) => {
  const [a, b] = [await rawBackend(t, 'AAA'), await rawBackend(t, 'BBB')];
  const { port } = await startBalancer(t, [spec('a', a.port), spec('b', b.port)]);
  const text = await exchange(port, GET('/1') + GET('/2') + GET('/3') + GET('/4', 'Connection: close\r\n'));
  t.same(text.match(/AAA|BBB/g), ['AAA', 'BBB', 'AAA', 'BBB']);
  t.equal(text.match(/HTTP\/1\.1 200/g)?.length, 4, 'four answers');
  t.match(a.heads[0] ?? '', /^GET \/1 HTTP\/1\.1\r\n/);
  t.match(a.heads[0] ?? '', /\r\nX-Forwarded-For: 127\.0\.0\.1(\r|$)/);
  t.match(text, /Via: 1\.1 ej08/);
});

t.test('a GET whose backend resets before answering is retried on the next; a POST with a body is not', async (t) => {
  const bad = await rawBackend(t, 'BAD', { reset: true });
  const good = await rawBackend(t, 'GOOD');
  const lines: string[] = [];
  const { balancer, port } = await startBalancer(t, [spec('bad', bad.port), spec('good', good.port)], lines);
  const text = await exchange(port, GET('/', 'Connection: close\r\n'));
  t.match(text, /^HTTP\/1\.1 200 OK/, 'the GET succeeded');
  t.match(text, /GOOD$/);
  t.equal(bad.heads.length, 1, 'it was tried on the bad backend first');
  t.match(lines.join('\n'), /-> good .* 200 .* after bad: connection reset/);
  t.equal(balancer.backends[0]?.health.up, true, 'a reset (not a refused connection) does not count against health');

  const post = await exchange(port, 'POST /form HTTP/1.1\r\nHost: lb\r\nContent-Length: 3\r\n\r\nabc');
  // Round robin: the POST goes to bad (the GET's retry moved the turn to after good).
  t.match(post, /^HTTP\/1\.1 502 Bad Gateway/, 'the POST is answered 502, not retried');
  t.equal(good.heads.length, 1, 'the good backend never saw the POST');
});

t.test('a refused backend is marked down (fall 1) and skipped; none left: 503 with a page', async (t) => {
  const good = await rawBackend(t, 'GOOD');
  const closed = await rawBackend(t, 'X');
  await new Promise<void>((resolve) => closed.server.close(() => resolve()));
  const lines: string[] = [];
  const { balancer, port } = await startBalancer(t, [spec('gone', closed.port), spec('good', good.port)], lines);
  t.match(await exchange(port, GET('/', 'Connection: close\r\n')), /GOOD$/, 'retried on the good backend');
  t.equal(balancer.backends[0]?.health.up, false, 'the refused one is down');
  t.match(lines.join('\n'), /gone 127\.0\.0\.1:\d+ is DOWN .*connection refused/);
  await new Promise<void>((resolve) => good.server.close(() => resolve()));
  good.server.closeAllConnections?.();
  for (const b of balancer.backends) for (const s of b.idle.splice(0)) s.destroy();
  await balancer.checkAll();
  t.equal(balancer.backends[1]?.health.up, false, 'a failed check marks the other down');
  const page = await exchange(port, GET('/', 'Connection: close\r\n'));
  t.match(page, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  t.match(page, /Retry-After: \d+/);
  t.match(page, /No backend is available/);
  t.match(page, /<td>gone<\/td>.*<td>down<\/td>/);
});

t.test('a malformed request gets 400 without reaching a backend', async (t) => {
  const a = await rawBackend(t, 'A');
  const { port } = await startBalancer(t, [spec('a', a.port)]);
  t.match(await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request/);
  t.match(await exchange(port, 'GET / HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400 .*exactly one Host/s);
  t.equal(a.heads.length, 0);
});

t.test('balancer.ts: a bad config.ini exits 2 naming the line; -h exits 0', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej08-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'config.ini'), '[nodo1]\nhost = 127.0.0.1\nport = nope\n');
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(TSX, [path.join(HERE, 'balancer.ts'), ...args], { cwd: dir });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const bad = await run(['--port', '0']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /config\.ini line 3 \[nodo1\]: port "nope" is not a port number/);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  const help = await run(['-h']);
  t.equal(help.code, 0);
  t.match(help.stdout, /usage: balancer\.ts \[-h\] \[--host HOST\] \[--port PORT\] \[--config FILE\]/);
});

// --- Request smuggling: what reaches a backend is what the balancer framed. ---

/** What a logging backend saw on one connection: every byte, and the requests they parse into. */
type Conn = { bytes: Buffer[]; requests: { head: RequestHead; body: string }[] };

/**
 * A keep-alive backend that logs every byte it receives, per connection, and
 * answers each request it parses (lib/http's parser, as any HTTP/1.1 server)
 * with `page for TARGET`; `answer` can replace the response bytes.
 */
async function loggingBackend(t: Test, answer?: (head: RequestHead) => string): Promise<{ port: number; conns: Conn[] }> {
  const conns: Conn[] = [];
  const server = net.createServer((socket) => {
    const conn: Conn = { bytes: [], requests: [] };
    conns.push(conn);
    const parser = new RequestParser();
    let current: { head: RequestHead; body: string } | undefined;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      conn.bytes.push(chunk);
      for (const event of parser.push(chunk)) {
        if (event.type === 'head') current = { head: event.head, body: '' };
        else if (event.type === 'data' && current) current.body += Buffer.from(event.data).toString('latin1');
        else if (event.type === 'end' && current) {
          conn.requests.push(current);
          const page = `page for ${current.head.target}`;
          socket.write(answer ? answer(current.head) : `HTTP/1.1 200 OK\r\nContent-Length: ${page.length}\r\n\r\n${page}`);
          current = undefined;
        } else if (event.type === 'error') socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections?.();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, conns };
}

/** Every byte a connection carried, parsed afresh: the requests, and whether anything was left unframed. */
function reparse(conn: Conn): { targets: string[]; bodies: string[]; leftover: boolean; error?: string } {
  const parser = new RequestParser();
  const targets: string[] = [];
  const bodies: string[] = [];
  let body = '';
  for (const event of parser.push(Buffer.concat(conn.bytes))) {
    if (event.type === 'head') {
      targets.push(event.head.target);
      body = '';
    } else if (event.type === 'data') body += Buffer.from(event.data).toString('latin1');
    else if (event.type === 'end') bodies.push(body);
    else if (event.type === 'error') return { targets, bodies, leftover: true, error: event.error.message };
  }
  return { targets, bodies, leftover: !parser.idle };
}

/** Sends `request` on a new connection; resolves with what came back once `done(text)` holds or the balancer closes. */
function exchangeUntil(port: number, request: string, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => socket.destroy(), 10_000);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (done(text)) socket.destroy();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.write(Buffer.from(request, 'latin1')); // one byte a character: a test's \xa0 is the byte 0xA0, not UTF-8's C2 A0
  });
}

/** Whether `text` holds `count` whole responses framed by Content-Length. */
function hasResponses(text: string, count: number): boolean {
  let rest = text;
  for (let i = 0; i < count; i++) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return false;
    const length = /\r\ncontent-length: *(\d+)/i.exec(rest.slice(0, end + 2));
    if (!length) return false;
    const next = end + 4 + Number(length[1]);
    if (rest.length < next) return false;
    rest = rest.slice(next);
  }
  return true;
}

t.test('request smuggling: a body behind `Connection: Content-Length` stays a body, and the next client gets its own page', async (t) => {
  const backend = await loggingBackend(t);
  const { port } = await startBalancer(t, [spec('a', backend.port)]);
  // The body is the start of a second request, left unfinished: on a pooled connection the
  // victim's request line would become its X-Ignore value, and the victim would get /evil.
  const smuggled = 'GET /evil HTTP/1.1\r\nHost: lb\r\nX-Ignore: ';
  const attack = `GET / HTTP/1.1\r\nHost: lb\r\nConnection: Content-Length\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`;
  const attacker = await exchangeUntil(port, attack, (text) => hasResponses(text, 1));
  t.match(attacker, /^HTTP\/1\.1 200 OK\r\n/, 'the attacker\'s GET is answered');
  const victim = await exchangeUntil(port, GET('/index.html', 'Connection: close\r\n'), (text) => hasResponses(text, 1));
  t.match(victim, /\r\n\r\npage for \/index\.html$/, `the victim gets its own page (got ${JSON.stringify(victim.split('\r\n\r\n')[1] ?? victim)})`);
  t.equal(backend.conns.length, 1, 'both requests went over one pooled backend connection');
  const seen = backend.conns.map(reparse);
  for (const [i, conn] of seen.entries()) {
    t.notOk(conn.leftover, `backend connection ${i + 1}: every byte belongs to a framed request${conn.error ? ` (${conn.error})` : ''}`);
    t.notOk(conn.targets.includes('/evil'), `backend connection ${i + 1}: the smuggled request never reached the backend as a request`);
  }
  t.same(seen.flatMap((c) => c.targets), ['/', '/index.html'], 'the backend saw exactly the two requests the clients sent');
  t.equal(seen[0]?.bodies[0], smuggled, 'the attacker\'s body reached the backend as a body, framed by the balancer\'s Content-Length');
});

t.test('the balancer restates the framing it forwards: its own Content-Length, or chunked', async (t) => {
  const backend = await loggingBackend(t);
  const { port } = await startBalancer(t, [spec('a', backend.port)]);
  const requests =
    'PUT /a HTTP/1.1\r\nHost: lb\r\nConnection: content-length, host\r\nContent-Length: 3\r\n\r\nabc' +
    'PUT /b HTTP/1.1\r\nHost: lb\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n' +
    GET('/c', 'Connection: close\r\n');
  const text = await exchangeUntil(port, requests, (text) => hasResponses(text, 3));
  t.equal(text.match(/HTTP\/1\.1 200 OK/g)?.length, 3, 'three answers');
  const heads = backend.conns.flatMap((c) => c.requests);
  t.same(heads.map((r) => [r.head.target, r.body]), [['/a', 'abc'], ['/b', 'de'], ['/c', '']], 'each body reached the backend whole, and nothing else');
  t.equal(heads[0]?.head.headers.get('content-length'), '3', 'a Content-Length named in Connection is restated');
  t.equal(heads[0]?.head.headers.get('host'), 'lb', 'a Host named in Connection is kept');
  t.equal(heads[1]?.head.headers.get('transfer-encoding'), 'chunked', 'a chunked body goes on chunked');
  t.notOk(heads[1]?.head.headers.has('content-length'), 'with no Content-Length beside it');
  for (const conn of backend.conns) t.notOk(reparse(conn).leftover, 'no unframed byte on a backend connection');
});

t.test('a response whose Content-Length is named in Connection keeps its framing to the client', async (t) => {
  const backend = await loggingBackend(t, () => 'HTTP/1.1 200 OK\r\nConnection: Content-Length, X-Private\r\nX-Private: p\r\nContent-Length: 5\r\n\r\nhello');
  const { port } = await startBalancer(t, [spec('a', backend.port)]);
  const text = await exchangeUntil(port, GET('/1') + GET('/2', 'Connection: close\r\n'), (text) => hasResponses(text, 2));
  const responses = text.split(/(?=HTTP\/1\.1 )/);
  t.equal(responses.length, 2, `two responses (got ${JSON.stringify(text)})`);
  for (const response of responses) {
    t.match(response, /\r\nContent-Length: 5\r\n/, 'Content-Length: 5 is restated');
    t.notMatch(response, /X-Private/, 'the field Connection names is dropped');
    t.match(response, /\r\n\r\nhello$/, 'the body is whole');
  }
});

t.test('a backend connection that sends more than the response asked for is not reused', async (t) => {
  let first = true;
  const backend = await loggingBackend(t, (head) => {
    const page = `page for ${head.target}`;
    const own = `HTTP/1.1 200 OK\r\nContent-Length: ${page.length}\r\n\r\n${page}`;
    if (!first) return own;
    first = false;
    return `${own}HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil`; // an answer nobody asked for
  });
  const { port } = await startBalancer(t, [spec('a', backend.port)]);
  const one = await exchangeUntil(port, GET('/1'), (text) => hasResponses(text, 1));
  t.match(one, /page for \/1$/);
  const two = await exchangeUntil(port, GET('/2', 'Connection: close\r\n'), (text) => hasResponses(text, 1));
  t.match(two, /page for \/2$/, 'the next client gets its own page');
  t.equal(backend.conns.length, 2, 'the second request went over a new backend connection');
});

t.test('framing the balancer cannot trust is refused with 400 and the connection closed; nothing reaches a backend', async (t) => {
  const backend = await loggingBackend(t);
  const { port } = await startBalancer(t, [spec('a', backend.port)]);
  const cases: [string, string][] = [
    ['Content-Length: 5, 5', 'PUT /x HTTP/1.1\r\nHost: lb\r\nContent-Length: 5, 5\r\n\r\nhello'],
    ['Content-Length twice', 'PUT /x HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello'],
    ['Content-Length: 5 and a no-break space', 'PUT /x HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\xa0\r\n\r\nhello'],
    ['Transfer-Encoding on HTTP/1.0', 'PUT /x HTTP/1.0\r\nHost: lb\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
    ['Content-Length and Transfer-Encoding', 'PUT /x HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ];
  for (const [what, request] of cases) {
    // A second request follows on the same connection: it must not be read once framing is in doubt.
    const text = await exchangeUntil(port, request + GET('/after'), () => false);
    t.match(text, /^HTTP\/1\.[01] 400 Bad Request\r\n/, `${what}: 400`);
    t.match(text, /\r\nConnection: close\r\n/, `${what}: Connection: close, and the connection closed`);
    t.equal(text.match(/HTTP\/1\.1 /g)?.length ?? 0, text.startsWith('HTTP/1.1 ') ? 1 : 0, `${what}: the request after it is not answered`);
  }
  t.equal(backend.conns.length, 0, 'no backend connection was opened for any of them');
});

t.test('a backend response with framing in doubt is a 502, and its connection is not reused', async (t) => {
  const bad = ['HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'];
  const backend = await loggingBackend(t, (head) => bad[Number(head.target.slice(1))] ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const { port } = await startBalancer(t, [spec('a', backend.port)]);
  for (const [i, response] of bad.entries()) {
    const text = await exchangeUntil(port, GET(`/${i}`, 'Connection: close\r\n'), () => false);
    t.match(text, /^HTTP\/1\.1 502 Bad Gateway\r\n/, `${JSON.stringify(response.split('\r\n').slice(0, 2).join(' | '))}: 502`);
    t.match(text, /malformed response/, 'the page says why');
  }
  t.match(await exchangeUntil(port, GET('/ok', 'Connection: close\r\n'), () => false), /\r\n\r\nok$/, 'a good response afterwards');
  t.equal(backend.conns.length, 3, 'each request had a connection of its own');
});

t.test('a request with two Host fields is a 400, whatever its version', async (t) => {
  const backend = await loggingBackend(t);
  const { port } = await startBalancer(t, [spec('a', backend.port)]);
  for (const version of ['HTTP/1.1', 'HTTP/1.0']) {
    const text = await exchangeUntil(port, `GET / ${version}\r\nHost: a\r\nHost: b\r\n\r\n`, () => false);
    t.match(text, /^HTTP\/1\.1 400 Bad Request\r\n.*one Host header, not 2/s, `${version}: 400`);
  }
  t.equal(backend.conns.length, 0, 'neither reached the backend');
});
