import t from 'tap';
import { clfDate, contentType, parseTargetPath } from './server.ts';

t.test('parseTargetPath() keeps ordinary paths, decoded, with the query apart', async (t) => {
  t.same(parseTargetPath('/a/b%20c.txt?x=1'), { ok: true, segments: ['a', 'b c.txt'], trailingSlash: false, path: '/a/b%20c.txt', query: '?x=1' });
  t.same(parseTargetPath('/'), { ok: true, segments: [], trailingSlash: true, path: '/', query: '' });
  t.same(parseTargetPath('http://example.com:8080/docs/?q').ok && parseTargetPath('http://example.com:8080/docs/?q'), {
    ok: true,
    segments: ['docs'],
    trailingSlash: true,
    path: '/docs/',
    query: '?q',
  });
  t.same((parseTargetPath('//a//b') as { segments: string[] }).segments, ['a', 'b'], '// collapses');
});

t.test('parseTargetPath() refuses every way out of the root', async (t) => {
  for (const target of [
    '/../etc/passwd',
    '/a/../../b',
    '/%2e%2e/x',
    '/%2E%2e/x',
    '/.%2e/x',
    '/./x',
    '/..%2fx',
    '/a%2f..%2f..%2fx',
    '/..%5cx',
    '/..\\x',
    '/x%00.html',
    '/x%0d%0aSet-Cookie:%20a',
    '/bad%zz',
    '/bad%',
    '..',
    '../x',
    'C:\\windows',
    '*',
    '/a#frag',
  ]) {
    const result = parseTargetPath(target);
    t.equal(result.ok, false, `${target} refused${result.ok ? '' : `: ${result.reason}`}`);
  }
  t.equal(parseTargetPath('/%252e%252e/x').ok, true, 'a double-encoded dot is a literal "%2e%2e" name, not a parent');
});

t.test('contentType() by extension, octet-stream otherwise', async (t) => {
  t.equal(contentType('a/INDEX.HTML'), 'text/html; charset=utf-8');
  t.equal(contentType('x.png'), 'image/png');
  t.equal(contentType('x.css'), 'text/css; charset=utf-8');
  t.equal(contentType('Makefile'), 'application/octet-stream');
});

t.test('clfDate() is the Common Log Format time', async (t) => {
  t.equal(clfDate(new Date('2026-11-04T05:06:07Z')), '04/Nov/2026:05:06:07 +0000');
});
