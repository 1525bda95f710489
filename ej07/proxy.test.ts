import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { HeaderList, RequestParser, ResponseParser } from '../lib/http.ts';
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
    await store.settledAll(); // a response stored in the background must not race the folder's removal
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

/** Splits what a client received into responses, as a client would frame them (lib/http's parser). */
function responses(text: string): { status: number; headers: HeaderList; body: string }[] {
  const parser = new ResponseParser();
  const out: { status: number; headers: HeaderList; body: string }[] = [];
  for (const event of [...parser.push(Buffer.from(text, 'latin1')), ...parser.finish()]) {
    if (event.type === 'head') out.push({ status: event.head.status, headers: event.head.headers, body: '' });
    else if (event.type === 'data') (out.at(-1) as { body: string }).body += Buffer.from(event.data).toString('latin1');
  }
  return out;
}

t.test('Vary is keyed on the forwarded request: Connection: Accept-Language cannot choose the variant another client gets', async (t) => {
  const origin = await rawOrigin(t, (request, socket) => {
    const lang = /\r\nAccept-Language: ([^\r]*)\r\n/i.exec(request)?.[1] ?? 'default';
    const body = `variant ${lang}`;
    socket.end(`HTTP/1.1 200 OK\r\nVary: Accept-Language\r\nCache-Control: max-age=600\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  });
  const { port } = await startProxy(t);
  const url = `http://127.0.0.1:${origin.port}/page`;
  const attacker = await exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nAccept-Language: xx\r\nConnection: close, Accept-Language\r\n\r\n`);
  t.match(attacker, /\r\n\r\nvariant default$/, 'the attacker gets what the origin answered a request without Accept-Language');
  const victim = await exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nAccept-Language: xx\r\nConnection: close\r\n\r\n`);
  t.match(victim, /\r\n\r\nvariant xx$/, 'a client that sends Accept-Language: xx gets the xx variant, not the one the attacker stored');
  t.match(victim, /X-Cache: MISS/, 'from the origin');
  const plain = await exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.match(plain, /X-Cache: MISS[\s\S]*\r\n\r\nvariant default$/, 'a client without Accept-Language gets the default variant');
  t.equal(origin.requests.length, 3, 'each variant was asked of the origin');
});

t.test('a response with Set-Cookie is not cached: a second client reaches the origin and never sees the first one\'s cookie', async (t) => {
  let n = 0;
  const origin = await rawOrigin(t, (_request, socket) => {
    n++;
    socket.end(`HTTP/1.1 200 OK\r\nCache-Control: public, max-age=600\r\nSet-Cookie: session=user${n}; HttpOnly\r\nContent-Length: 5\r\n\r\nhello`);
  });
  const { port, lines } = await startProxy(t);
  const url = `http://127.0.0.1:${origin.port}/login`;
  const first = await exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.match(first, /\r\nSet-Cookie: session=user1; HttpOnly\r\n/, 'the first client gets its cookie');
  const second = await exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.notMatch(second, /user1/, "the second client never sees the first one's cookie");
  t.match(second, /\r\nSet-Cookie: session=user2; HttpOnly\r\n[\s\S]*X-Cache: MISS/, 'it gets its own, from the origin');
  t.equal(origin.requests.length, 2, 'the origin was asked twice');
  t.match(lines.join('\n'), /200 MISS[\s\S]*200 MISS/, 'both are logged as MISS');
});

t.test('a Set-Cookie on a 304 reaches the client that revalidated, and is not stored for the next one', async (t) => {
  let n = 0;
  const origin = await rawOrigin(t, (request, socket) => {
    n++;
    // The 304 makes the copy fresh for 10 minutes: the third client is served from the cache.
    if (/\r\nIf-None-Match: "v1"\r\n/i.test(request)) socket.end(`HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nCache-Control: max-age=600\r\nSet-Cookie: session=user${n}\r\n\r\n`);
    else socket.end('HTTP/1.1 200 OK\r\nETag: "v1"\r\nCache-Control: no-cache\r\nContent-Length: 4\r\n\r\nbody');
  });
  const { port, store } = await startProxy(t);
  const url = `http://127.0.0.1:${origin.port}/r`;
  const ask = () => exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.match(await ask(), /X-Cache: MISS/, 'first: MISS');
  const second = await ask();
  t.match(second, /\r\nSet-Cookie: session=user2\r\n[\s\S]*X-Cache: REVALIDATED[\s\S]*\r\n\r\nbody$/, 'second: REVALIDATED, with the cookie the 304 set for it');
  // The refreshed copy is written in the background: wait (bounded) until the store holds it.
  for (let i = 0; i < 60 && store.lookup(`http://127.0.0.1:${origin.port}/r`, new HeaderList())?.headers.get('cache-control') !== 'max-age=600'; i++) await new Promise((r) => setTimeout(r, 50));
  const third = await ask();
  t.match(third, /X-Cache: HIT[\s\S]*\r\n\r\nbody$/, 'third: a HIT (the 304 made the copy fresh)');
  t.notMatch(third, /Set-Cookie/i, "the third client gets no cookie, and not the second one's");
  t.equal(origin.requests.length, 2, 'the origin was asked twice');
});

t.test('a response whose Connection names Content-Length or Transfer-Encoding is framed by the proxy: a keep-alive client\'s next response is intact', async (t) => {
  const origin = await rawOrigin(t, (request, socket) => {
    const path = /^GET (\S+)/.exec(request)?.[1];
    if (path === '/cl') socket.end('HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nCache-Control: max-age=600\r\nContent-Length: 5\r\n\r\nhello');
    else if (path === '/te') socket.end('HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nchunked\r\n5\r\n body\r\n0\r\n\r\n');
    else if (path === '/both') socket.end('HTTP/1.1 200 OK\r\nConnection: close, Content-Length, Transfer-Encoding\r\nCache-Control: no-store\r\nContent-Length: 4\r\n\r\nlast');
    else socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
  });
  const { port } = await startProxy(t);
  const get = (p: string, close = false) => `GET http://127.0.0.1:${origin.port}${p} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
  // One keep-alive connection, pipelined: two MISSes, the same two from the cache, then an uncached one.
  const reply = await exchange(port, get('/cl') + get('/te') + get('/cl') + get('/te') + get('/both', true), 1500);
  const got = responses(reply);
  t.same(got.map((r) => r.body), ['hello', 'chunked body', 'hello', 'chunked body', 'last'], 'five responses, each with its own body and nothing of the next');
  t.same(got.map((r) => r.headers.get('x-cache')), ['MISS', 'MISS', 'HIT', 'HIT', 'MISS'], 'relayed, relayed, from the cache, from the cache, relayed');
  for (const [i, r] of got.entries()) {
    const framed = r.headers.has('content-length') !== r.headers.has('transfer-encoding');
    t.ok(framed, `response ${i + 1} carries exactly one of Content-Length and Transfer-Encoding (${r.headers.get('content-length') ?? r.headers.get('transfer-encoding')})`);
  }
  t.equal(origin.requests.length, 3, 'the origin was asked three times');
});

t.test('a request whose Connection names Content-Length or Transfer-Encoding is framed by the proxy for the origin', async (t) => {
  const received: { head: string; body: string }[] = [];
  const server = net.createServer((socket) => {
    const parser = new RequestParser();
    let body = '';
    let head = '';
    socket.on('data', (chunk) => {
      for (const event of parser.push(chunk)) {
        if (event.type === 'head') head = event.head.raw;
        else if (event.type === 'data') body += Buffer.from(event.data).toString('latin1');
        else if (event.type === 'end') {
          received.push({ head, body });
          socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nCache-Control: no-store\r\n\r\n${body}`);
        } else if (event.type === 'error') socket.destroy();
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => void server.close());
  const originPort = (server.address() as net.AddressInfo).port;
  const { port } = await startProxy(t);
  const url = `http://127.0.0.1:${originPort}/upload`;
  const reply = await exchange(
    port,
    `POST ${url} HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello` +
      `POST ${url} HTTP/1.1\r\nHost: x\r\nConnection: Transfer-Encoding, close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n`,
    1500,
  );
  t.same(responses(reply).map((r) => r.body), ['hello', 'abcdef'], 'both bodies went through and came back');
  t.equal(received.length, 2, 'the origin parsed two complete requests');
  t.match(received[0]?.head ?? '', /\r\nContent-Length: 5\r\n/, 'the first carries the Content-Length the proxy set');
  t.match(received[1]?.head ?? '', /\r\nContent-Length: 6\r\n/, 'the chunked one is sent with its length');
  for (const r of received) {
    t.notMatch(r.head, /Transfer-Encoding|\r\nConnection: (?!close\r\n)/i, 'no Transfer-Encoding, and Connection is the proxy\'s own close');
    t.equal(r.head.match(/Content-Length/gi)?.length, 1, 'exactly one Content-Length');
  }
});

t.test('a response in a transfer coding other than chunked is refused with 502, never relayed or stored without it', async (t) => {
  const origin = await rawOrigin(t, (request, socket) => {
    if (/^GET \/gz /.test(request)) socket.end(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nCache-Control: max-age=600\r\n\r\n4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n', 'latin1'));
    else socket.end(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nCache-Control: max-age=600\r\n\r\n\x1f\x8b\x08\x00', 'latin1'));
  });
  const { port, store } = await startProxy(t);
  for (const p of ['/gz', '/gz-close']) {
    const reply = await exchange(port, `GET http://127.0.0.1:${origin.port}${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    t.match(reply, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*transfer coding &#34;gzip&#34;/, `${p}: 502, and the page names the coding`);
    t.notMatch(reply, /\x1f\x8b/, `${p}: none of the coded bytes reach the client`);
  }
  for (const p of ['/gz', '/gz-close']) await store.settled(`http://127.0.0.1:${origin.port}${p}`);
  t.equal(store.size, 0, 'nothing was stored');
});

t.test('a 304 that says no-store deletes the stored copy', async (t) => {
  const origin = await rawOrigin(t, (request, socket) => {
    if (/\r\nIf-None-Match: "v1"\r\n/i.test(request)) socket.end('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nCache-Control: no-store\r\n\r\n');
    else socket.end('HTTP/1.1 200 OK\r\nETag: "v1"\r\nCache-Control: no-cache\r\nContent-Length: 4\r\n\r\nbody');
  });
  const { port, store } = await startProxy(t);
  const ask = () => exchange(port, `GET http://127.0.0.1:${origin.port}/n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  t.match(await ask(), /X-Cache: MISS/, 'first: MISS, stored');
  await store.settled(`http://127.0.0.1:${origin.port}/n`);
  t.equal(store.size, 1, 'one entry');
  t.match(await ask(), /X-Cache: REVALIDATED[\s\S]*\r\n\r\nbody$/, 'second: the 304 lets this client have the copy');
  for (let i = 0; i < 60 && store.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(store.size, 0, 'and the copy is gone');
  t.match(await ask(), /X-Cache: MISS/, 'third: MISS');
});

t.test('bytes an origin sends after its response are not relayed: the next request on the connection gets its own response', async (t) => {
  const origin = await rawOrigin(t, (request, socket) => {
    if (/^GET \/first /.test(request)) socket.end('HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled');
    else socket.end('HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 6\r\n\r\nsecond');
  });
  const { port } = await startProxy(t);
  const get = (p: string, close = false) => `GET http://127.0.0.1:${origin.port}${p} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
  const got = responses(await exchange(port, get('/first') + get('/second', true)));
  t.same(got.map((r) => r.body), ['first', 'second'], 'two responses, and nothing of what followed the first');
});

t.test("a request that carries this proxy's Via token is refused with 508 (a loop through another name)", async (t) => {
  const origin = await rawOrigin(t, (_request, socket) => socket.end('HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\nok'));
  const { port } = await startProxy(t);
  const url = `http://127.0.0.1:${origin.port}/`;
  const via = /\r\nVia: ([^\r]*)\r\n/.exec(await exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))?.[1] ?? '';
  t.match(via, /^1\.1 ej07-[0-9a-f]{8}$/, `the proxy's token (${via})`);
  const looped = await exchange(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nVia: 1.1 other, ${via}\r\nConnection: close\r\n\r\n`);
  t.match(looped, /^HTTP\/1\.1 508 Loop Detected\r\n/, 'a request that already went through it: 508');
  t.equal(origin.requests.length, 1, 'and it was not forwarded');
});

t.test('an HTTP/1.1 request with two Host fields is refused with 400 and not forwarded', async (t) => {
  const origin = await rawOrigin(t, (_request, socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const { port } = await startProxy(t);
  const reply = await exchange(port, `GET http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`);
  t.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*more than one Host/, '400, and the page says why');
  t.equal(origin.requests.length, 0, 'nothing reached the origin');
});
