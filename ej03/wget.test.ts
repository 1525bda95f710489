import t from 'tap';
import { UsageError } from '../lib/cli.ts';
import { DEFAULT_PROXY_PORT, formatSize, localFileName, parseProxy, parseUrl, progressLine, unusedName } from './wget.ts';

t.test('parseUrl() assumes http:// and refuses other schemes with a usage error', async (t) => {
  t.equal(parseUrl('www.unlu.edu.ar/').href, 'http://www.unlu.edu.ar/');
  t.equal(parseUrl('https://localhost:8443/a?b').port, '8443');
  t.throws(() => parseUrl('ftp://example.com/x'), UsageError);
  t.throws(() => parseUrl('http://'), UsageError);
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
