import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';
import { clfDate, contentType, parseTargetPath } from './server.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

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

// ---------------------------------------------------------------------------
// The server as a user runs it (spawned under tsx), asked through raw sockets.

/** Starts `ej06/server.ts --root ROOT` on a free port; killed at teardown. */
async function serve(t: Test, root: string): Promise<number> {
  const child = new Child(tsx(path.join(HERE, 'server.ts'), '--port', '0', '--root', root, '-q'));
  t.teardown(() => child.kill());
  return child.ready();
}

/** One request on its own connection: the raw answer, as text (latin1), once the server closes. */
function rawGet(port: number, target: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no whole answer to GET ${target} within ${timeoutMs} ms`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

async function site(t: Test): Promise<{ dir: string; root: string; secret: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej06-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  await mkdir(path.join(root, 'images'), { recursive: true });
  await writeFile(path.join(root, 'images', 'index.html'), 'images index\n');
  await writeFile(path.join(root, 'inside.txt'), 'INSIDE\n');
  const secret = `SECRET-${process.pid}-${Date.now()}`;
  await writeFile(path.join(dir, 'secret.txt'), secret);
  return { dir, root, secret };
}

t.test('a folder named with doubled slashes redirects to a path, never to a scheme-relative URL (//host)', async (t) => {
  const { root } = await site(t);
  const port = await serve(t, root);
  for (const target of ['//images', '///images', '//images?x=1', 'http://127.0.0.1//images', '/images']) {
    const answer = await rawGet(port, target);
    t.match(answer, /^HTTP\/1\.1 301 /, `GET ${target}: 301`);
    const location = /\r\nLocation: ([^\r]*)\r\n/i.exec(answer)?.[1];
    t.match(location, /^\/images\/(\?x=1)?$/, `GET ${target}: Location ${location} is a path on this server`);
    t.notMatch(location, /^\/\//, `GET ${target}: Location ${location} does not name another host`);
  }
});

t.test('a symlink swapped in after the check never leaks a file outside the root (a file or a folder on the path)', async (t) => {
  const { dir, root, secret } = await site(t);
  const port = await serve(t, root);
  // swap.txt flips between a link to inside.txt and a link to the secret;
  // d/ flips between a real folder (d/f.txt inside) and a link to a folder outside (f.txt the secret).
  await mkdir(path.join(root, 'd'));
  await writeFile(path.join(root, 'd', 'f.txt'), 'INSIDE\n');
  await mkdir(path.join(dir, 'out'));
  await writeFile(path.join(dir, 'out', 'f.txt'), secret);
  await symlink(path.join(root, 'inside.txt'), path.join(root, 'swap.txt'));
  // Another process flips both as fast as it can (renames) until the test kills it (at most 90 s).
  const swapper = new Child([
    process.execPath,
    '-e',
    `const fs = require('node:fs');
     const [root, dir] = process.argv.slice(1);
     const link = root + '/swap.txt', tmp = root + '/.swap.tmp', d = root + '/d', stash = dir + '/d.real';
     const until = Date.now() + 90000;
     for (let i = 0; Date.now() < until; i++) {
       try { fs.unlinkSync(tmp); } catch {}
       fs.symlinkSync(i % 2 ? dir + '/secret.txt' : root + '/inside.txt', tmp);
       fs.renameSync(tmp, link);
       if (i % 2 === 0) { fs.renameSync(d, stash); fs.symlinkSync(dir + '/out', d); }
       else { fs.unlinkSync(d); fs.renameSync(stash, d); }
     }`,
    root,
    dir,
  ]);
  t.teardown(() => swapper.kill());
  // 1500 requests, or as many as 60 s allow on a loaded machine (the old code leaked within 200).
  const tries = 1500;
  const stop = Date.now() + 60_000;
  const seen = { inside: 0, refused: 0, other: 0 };
  let leaked = '';
  for (let i = 0; i < tries && !leaked && Date.now() < stop && swapper.process.exitCode === null; i++) {
    const target = i % 2 ? '/d/f.txt' : '/swap.txt';
    const answer = await rawGet(port, target);
    if (answer.includes(secret)) leaked = `; leaked by GET ${target}, request ${i + 1}`;
    else if (/^HTTP\/1\.1 200 [^]*INSIDE/.test(answer)) seen.inside++;
    else if (/^HTTP\/1\.1 (403|404) /.test(answer)) seen.refused++;
    else seen.other++;
  }
  t.equal(swapper.process.exitCode, null, `the swapper flipped the links all along${swapper.stderr ? `: ${swapper.stderr}` : ''}`);
  t.equal(leaked, '', `the secret never came back (${JSON.stringify(seen)}${leaked})`);
  t.equal(seen.other, 0, 'every answer was the inside file, 403 or 404');
  t.ok(leaked || seen.inside + seen.refused >= 300, `enough requests met the swaps to mean something (${seen.inside + seen.refused}, at least 300)`);
  t.ok(seen.inside > 0, `the links were served while they pointed inside (${seen.inside} times)`);
});

t.test('a named pipe in the root is refused at once, not opened and waited on', async (t) => {
  const { root } = await site(t);
  const made = await run(['mkfifo', path.join(root, 'pipe')]);
  if (made.code !== 0) return void t.skip('mkfifo is not available');
  const port = await serve(t, root);
  const answer = await rawGet(port, '/pipe', 10_000);
  t.match(answer, /^HTTP\/1\.1 403 /, 'GET /pipe: 403');
  t.match(await rawGet(port, '/inside.txt'), /^HTTP\/1\.1 200 [^]*INSIDE/, 'and the server serves on');
});
