import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { HeaderList } from '../lib/http.ts';
import { CacheStore } from './cache.ts';
import { clientHasIt, createProxy, isSelf, parseAuthority, parsePortList, parseProxyTarget, parseSize } from './proxy.ts';

t.test('parseProxyTarget() takes the absolute form only', async (t) => {
  const ok = parseProxyTarget('http://Example.org:8080/a?b');
  t.ok(ok.ok && ok.host === 'example.org' && ok.port === 8080 && ok.url.pathname === '/a');
  const v6 = parseProxyTarget('http://[::1]/');
  t.ok(v6.ok && v6.host === '::1' && v6.port === 80, 'IPv6 literal, default port 80');
  for (const bad of ['/index.html', 'https://h/', 'ftp://h/x', 'http://user:pw@h/', 'nonsense']) t.equal(parseProxyTarget(bad).ok, false, `${bad} refused`);
});

t.test('parseAuthority(), parsePortList(), parseSize()', async (t) => {
  t.same(parseAuthority('example.org:443'), { host: 'example.org', port: 443 });
  t.same(parseAuthority('[::1]:8443'), { host: '::1', port: 8443 });
  for (const bad of ['example.org', 'h:0', 'h:70000', 'a b:443', '/x:443']) t.equal(parseAuthority(bad), undefined, `${bad} refused`);
  t.same([...parsePortList('443, 8443,9000-9002')], [443, 8443, 9000, 9001, 9002]);
  t.throws(() => parsePortList('443,x'), /--connect-ports/);
  t.throws(() => parsePortList('10-5'), /--connect-ports/);
  t.equal(parseSize('64M', 'cache-size'), 64 * 1024 * 1024);
  t.equal(parseSize('350K', 'cache-size'), 350 * 1024);
  t.equal(parseSize('1000', 'cache-size'), 1000);
  t.throws(() => parseSize('lots', 'cache-size'), /--cache-size: expected a size/);
  t.throws(() => parseSize('0', 'cache-size'), /at least one byte/);
});

t.test('isSelf() recognises the proxy under its loopback names', async (t) => {
  const self = { address: '127.0.0.1', port: 8888 };
  t.ok(isSelf('127.0.0.1', 8888, self));
  t.ok(isSelf('localhost', 8888, self));
  t.ok(isSelf('127.0.0.2', 8888, self), 'all of 127/8 is loopback');
  t.notOk(isSelf('127.0.0.1', 8889, self));
  t.notOk(isSelf('example.org', 8888, self));
  t.ok(isSelf('127.0.0.1', 8888, { address: '0.0.0.0', port: 8888 }), 'a wildcard listener is reachable on loopback');
});

t.test("clientHasIt() compares the client's validators with the stored response", async (t) => {
  const stored = new HeaderList({ ETag: '"v1"', 'Last-Modified': 'Tue, 24 Nov 2026 10:00:00 GMT' });
  t.ok(clientHasIt(new HeaderList({ 'If-None-Match': '"v0", W/"v1"' }), stored), 'weak comparison');
  t.notOk(clientHasIt(new HeaderList({ 'If-None-Match': '"v2"' }), stored));
  t.ok(clientHasIt(new HeaderList({ 'If-Modified-Since': 'Tue, 24 Nov 2026 10:00:00 GMT' }), stored));
  t.notOk(clientHasIt(new HeaderList({ 'If-Modified-Since': 'Tue, 24 Nov 2026 09:59:59 GMT' }), stored));
  t.notOk(clientHasIt(new HeaderList(), stored));
});

/** A hand-made origin: records each request's bytes and answers with `respond`. */
async function rawOrigin(t: Test, respond: (request: string, socket: net.Socket) => void): Promise<{ port: number; requests: string[] }> {
  const requests: string[] = [];
  const server = net.createServer((socket) => {
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        requests.push(text);
        respond(text, socket);
        text = '';
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, requests };
}

async function startProxy(t: Test, timeoutMs = 30_000, connectPorts = new Set([443])) {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej07-proxy-test-'));
  const store = await CacheStore.open({ dir });
  const lines: string[] = [];
  const proxy = createProxy({ store, timeoutMs, connectPorts, accessLog: (l) => lines.push(l) });
  await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    await proxy.close(100);
    await rm(dir, { recursive: true, force: true });
  });
  return { port: (proxy.server.address() as net.AddressInfo).port, lines, store };
}

/** Sends `text` and collects until the proxy closes or is silent for `idleMs`. */
function exchange(port: number, text: string, idleMs = 800): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    let idle = setTimeout(() => socket.destroy(), idleMs * 10);
    const bump = () => {
      clearTimeout(idle);
      idle = setTimeout(() => socket.destroy(), idleMs);
    };
    socket.on('data', (chunk) => {
      out += chunk.toString('latin1');
      bump();
    });
    socket.on('close', () => {
      clearTimeout(idle);
      resolve(out);
    });
    socket.on('error', () => {});
    socket.write(text);
  });
}

t.test('hop-by-hop fields are dropped, Via is added, and the response is re-chunked for the client', async (t) => {
  const origin = await rawOrigin(t, (_req, socket) => {
    socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nConnection: X-Secret\r\nX-Secret: s\r\nCache-Control: no-store\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
  });
  const { port, lines } = await startProxy(t);
  const reply = await exchange(
    port,
    `GET http://127.0.0.1:${origin.port}/p?q=1 HTTP/1.1\r\nHost: wrong\r\nProxy-Connection: keep-alive\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\nX-Keep: yes\r\n\r\n`,
  );
  const request = origin.requests[0] ?? '';
  t.match(request, /^GET \/p\?q=1 HTTP\/1\.1\r\n/, 'the origin gets the origin form');
  t.match(request, new RegExp(`\\r\\nHost: 127\\.0\\.0\\.1:${origin.port}\\r\\n`), 'Host is the URL authority');
  t.match(request, /\r\nVia: 1\.1 ej07-/, 'Via added');
  t.match(request, /\r\nX-Keep: yes\r\n/, 'an end-to-end field is kept');
  t.notMatch(request, /Proxy-Connection|X-Drop|TE:/i, 'hop-by-hop fields, and those Connection names, are dropped');
  t.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
  t.notMatch(reply, /Keep-Alive|X-Secret/i, 'the response loses its hop-by-hop fields too');
  t.match(reply, /\r\nTransfer-Encoding: chunked\r\n/);
  t.match(reply, /\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n$/, 'the body arrives re-chunked');
  t.match(lines.join('\n'), /GET http:\/\/127\.0\.0\.1:\d+\/p\?q=1 200 MISS 11 B \d+ ms/, 'one log line with method, URL, status, label, bytes, ms');
});

t.test('a silent origin gives 504, a refused one 502, and the client connection stays usable', async (t) => {
  const silent = await rawOrigin(t, () => {});
  const { port, lines } = await startProxy(t, 300);
  const closed = await rawOrigin(t, (_r, s) => s.destroy());
  const reply = await exchange(port, `GET http://127.0.0.1:${silent.port}/ HTTP/1.1\r\nHost: x\r\n\r\nGET http://127.0.0.1:${closed.port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 1500);
  t.match(reply, /^HTTP\/1\.1 504 Gateway Timeout\r\n/, '504 first');
  t.match(reply, /did not answer within 0\.3 s/, 'the page says why');
  t.match(reply, /HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*closed the connection before a complete response|reset the connection/, 'then 502 on the same connection');
  t.equal(lines.length, 2);
});

t.test('a cached response answers a client conditional with 304, and HTTP/1.0 clients get a close-delimited body', async (t) => {
  const origin = await rawOrigin(t, (_req, socket) => {
    socket.end('HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nETag: "e1"\r\nConnection: close\r\n\r\nbody until close');
  });
  const { port } = await startProxy(t);
  const first = await exchange(port, `GET http://127.0.0.1:${origin.port}/x HTTP/1.0\r\n\r\n`);
  t.match(first, /^HTTP\/1\.1 200 OK\r\n[\s\S]*X-Cache: MISS[\s\S]*Connection: close\r\n\r\nbody until close$/, 'HTTP/1.0 client: the body ends with the connection');
  const second = await exchange(port, `GET http://127.0.0.1:${origin.port}/x HTTP/1.1\r\nHost: x\r\nIf-None-Match: "e1"\r\nConnection: close\r\n\r\n`);
  t.match(second, /^HTTP\/1\.1 304 Not Modified\r\n[\s\S]*X-Cache: HIT/, "the client's validator matches the stored copy: 304 from the cache");
  const third = await exchange(port, `GET http://127.0.0.1:${origin.port}/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.match(third, /\r\nContent-Length: 16\r\n/, 'a plain GET gets the stored body with its length');
  t.match(third, /\r\n\r\nbody until close$/, 'and the body');
  t.equal(origin.requests.length, 1, 'the origin was asked once');
});

t.test('a request for the proxy itself is refused with 508 Loop Detected, and nothing is forwarded', async (t) => {
  const connectPorts = new Set([443]);
  const { port, lines } = await startProxy(t, 30_000, connectPorts);
  const reply = await exchange(port, `GET http://127.0.0.1:${port}/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 508 Loop Detected\r\n/, 'status line with its reason phrase');
  t.match(reply, /is this proxy itself/, 'the page says why');
  t.equal(lines.length, 1, 'one log line, for the refused request only (no second request reached the proxy)');
  const forbidden = await exchange(port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  t.match(forbidden, /^HTTP\/1\.1 403 Forbidden\r\n/, 'a CONNECT to its own port is first a port not allowed (403)');
  connectPorts.add(port);
  const tunnel = await exchange(port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  t.match(tunnel, /^HTTP\/1\.1 508 Loop Detected\r\n/, 'and, with the port allowed, a loop (508)');
});
