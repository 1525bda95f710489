import t, { type Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EXIT, wget } from './wget.ts';
import { UsageError } from '../lib/cli.ts';
import { DEFAULT_PROXY_PORT, formatSize, localFileName, parseProxy, parseUrl, progressLine, unusedName } from './wget.ts';

t.test('parseUrl() assumes http:// and refuses other schemes with a usage error', async (t) => {
  t.equal(parseUrl('www.unlu.edu.ar/').href, 'http://www.unlu.edu.ar/');
  t.equal(parseUrl('https://localhost:8443/a?b').port, '8443');
  t.throws(() => parseUrl('ftp://example.com/x'), UsageError);
  t.throws(() => parseUrl('http://'), UsageError);
});

t.test('parseUrl() and parseProxy() refuse port 0 in one sentence (nothing can be connected to on it)', async (t) => {
  t.throws(() => parseUrl('http://127.0.0.1:0/'), { name: 'UsageError', message: /port 0/ });
  t.throws(() => parseProxy('127.0.0.1', '0'), { name: 'UsageError', message: /port 0/ });
});

t.test('parseProxy() reads HOST with --port, HOST:PORT and http://HOST:PORT', async (t) => {
  t.same(parseProxy('127.0.0.1', '8888'), { host: '127.0.0.1', port: 8888 });
  t.same(parseProxy('proxy.lan', undefined), { host: 'proxy.lan', port: DEFAULT_PROXY_PORT });
  t.same(parseProxy('proxy.lan:3128', undefined), { host: 'proxy.lan', port: 3128 });
  t.same(parseProxy('http://127.0.0.1:8888', '1'), { host: '127.0.0.1', port: 8888 }, "the URL's port wins");
  t.same(parseProxy('http://[::1]:8888', undefined), { host: '::1', port: 8888 });
  t.throws(() => parseProxy('socks5://h:1080', undefined), UsageError);
  t.throws(() => parseProxy('h', '99999'), UsageError);
  t.throws(() => parseProxy('bad host', undefined), UsageError);
});

t.test("localFileName() is the URL's last segment, index.html for a folder, never a path", async (t) => {
  t.equal(localFileName(new URL('http://h/a/b/file.tar.gz?x=1')), 'file.tar.gz');
  t.equal(localFileName(new URL('http://h/')), 'index.html');
  t.equal(localFileName(new URL('http://h/dir/')), 'index.html');
  t.equal(localFileName(new URL('http://h/hola%20mundo.txt')), 'hola mundo.txt');
  t.equal(localFileName(new URL('http://h/a%2f..%2fetc')), 'a_.._etc', 'an encoded slash cannot make a path');
  t.equal(localFileName(new URL('http://h/%2e%2e')), 'index.html');
  t.equal(localFileName(new URL('http://h/bad%zz')), 'bad%zz');
});

t.test('unusedName() never clobbers: name, name.1, name.2', async (t) => {
  const taken = new Set(['a.txt', 'a.txt.1']);
  t.equal(unusedName('b.txt', (n) => taken.has(n)), 'b.txt');
  t.equal(unusedName('a.txt', (n) => taken.has(n)), 'a.txt.2');
});

t.test('formatSize() and progressLine() read like wget', async (t) => {
  t.equal(formatSize(512), '512');
  t.equal(formatSize(1536), '1.5K');
  t.equal(formatSize(50 * 1024 * 1024), '50M');
  const half = progressLine(512 * 1024, 1024 * 1024, 1000, 80);
  t.match(half, /^ 50%\[=+> +\] +512K +512KB\/s +eta 1\.0s$/);
  t.match(progressLine(1024 * 1024, 1024 * 1024, 2000, 80), /^100%\[=+\] +1\.0M .* in 2\.0s$/);
  const spinner = progressLine(2048, undefined, 300, 80);
  t.match(spinner, /\[ *<=> *\] +2\.0K/, 'an unknown length shows a bouncing marker');
  t.ok(progressLine(1, 10, 10, 200).length <= 200, 'fits the terminal');
});

// wget() against raw node:net servers on loopback: what it saves, and when.

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej03-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A server that hands each connection's request head (as text) to `answer`. */
async function rawServer(t: Test, answer: (socket: net.Socket, head: string) => void): Promise<{ port: number; heads: string[] }> {
  const heads: string[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    let text = '';
    socket.on('data', function onData(chunk) {
      text += chunk.toString('latin1');
      if (!text.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      heads.push(text);
      answer(socket, text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return { port: (server.address() as AddressInfo).port, heads };
}

t.test('wget() downloads to NAME.part and renames it to NAME only at the end', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'file.bin');
  let seenDuring: { part: boolean; final: boolean } | undefined;
  const { port } = await rawServer(t, (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello');
    setTimeout(() => {
      seenDuring = { part: existsSync(`${out}.part`), final: existsSync(out) };
      socket.end('world');
    }, 300);
  });
  const result = await wget({ url: new URL(`http://127.0.0.1:${port}/file.bin`), output: out });
  t.same(seenDuring, { part: true, final: false }, 'half-way, only NAME.part exists');
  t.equal(readFileSync(out, 'utf8'), 'helloworld');
  t.notOk(existsSync(`${out}.part`), 'the .part is gone');
  t.equal(result.savedTo, out);
});

t.test('wget() leaves a cut transfer as NAME.part, never under the final name', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'file.bin');
  const { port } = await rawServer(t, (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello');
    setTimeout(() => socket.destroy(), 200);
  });
  await t.rejects(wget({ url: new URL(`http://127.0.0.1:${port}/file.bin`), output: out }), { exitCode: EXIT.network });
  t.notOk(existsSync(out), 'nothing under the final name');
  t.equal(readFileSync(`${out}.part`, 'utf8'), 'hello', 'what came is in NAME.part');
});

t.test('wget() with continue resumes NAME.part with a Range request (206: appended)', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'file.bin');
  writeFileSync(`${out}.part`, 'hello');
  const { port, heads } = await rawServer(t, (socket, head) => {
    if (/^range: bytes=5-\r$/im.test(head)) socket.end('HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\nworld');
    else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHELLOWORLD');
  });
  const result = await wget({ url: new URL(`http://127.0.0.1:${port}/file.bin`), output: out, continue: true });
  t.match(heads[0], /^Range: bytes=5-\r$/m, 'asked for the rest');
  t.equal(readFileSync(out, 'utf8'), 'helloworld', 'the part and the rest');
  t.equal(result.bytes, 5, 'only the rest was transferred');
});

t.test('wget() with continue starts again when the server ignores Range (200)', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'file.bin');
  writeFileSync(`${out}.part`, 'stale');
  const { port } = await rawServer(t, (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHELLOWORLD'));
  await wget({ url: new URL(`http://127.0.0.1:${port}/file.bin`), output: out, continue: true });
  t.equal(readFileSync(out, 'utf8'), 'HELLOWORLD', 'the whole body, not appended to the stale part');
});

t.test('wget() refuses an -O in a folder that does not exist before connecting, in words', async (t) => {
  const dir = await tempDir(t);
  const { port, heads } = await rawServer(t, (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const out = path.join(dir, 'no-such-folder', 'x.html');
  const error = await wget({ url: new URL(`http://127.0.0.1:${port}/`), output: out }).catch((e: unknown) => e as Error & { exitCode: number });
  t.equal(error.exitCode, EXIT.io);
  t.match(error.message, out, 'names the path');
  t.match(error.message, /folder .* does not exist/, 'says what is wrong');
  t.notMatch(error.message, /\bENOENT\b/, 'no raw code');
  t.equal(heads.length, 0, 'nothing was fetched');
});

t.test('wget() over https:// to a plain-HTTP port says the port does not speak TLS, with no certificate hint', async (t) => {
  // A plain-HTTP server answers the TLS ClientHello (no blank line in it) with HTTP text.
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as AddressInfo;
  const error = await wget({ url: new URL(`https://127.0.0.1:${port}/`), output: '-', stdout: { write: () => true } as never, timeoutMs: 20_000 }).catch((e: unknown) => e as Error & { exitCode: number });
  t.equal(error.exitCode, EXIT.tls);
  t.match(error.message, /does not speak TLS/);
  t.match(error.message, /http:\/\//, 'suggests http://');
  t.notMatch(error.message, /ca-certificate|SSL routines|ERR_SSL/, 'no OpenSSL internals, no wrong hint');
});
