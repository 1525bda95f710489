/**
 * -c against the server as it was before resuming existed (this project's
 * commit f48e007, from git): the resume is refused clearly and the part kept;
 * a plain GET is still served (issue 13).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Child, ROOT } from '../lib/fixtures/spawn.ts';
import { client, outFolder, partSize } from './test-peers.ts';


t.test('-c against a server without resume support is refused clearly, and the part is left as it was', { skip: !existsSync(path.join(ROOT, '.git')) && 'not a git checkout (the old server comes from its history)' }, async (t) => {
  // The server as it was before -c existed (this project's commit f48e007), with today's node_modules.
  const old = mkdtempSync(path.join(tmpdir(), 'ej11-old-'));
  t.teardown(() => rmSync(old, { recursive: true, force: true }));
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive f48e007 ej11 lib | tar -x -C "${old}"`]);
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(old, 'node_modules'));
  const served = path.join(old, 'served');
  mkdirSync(served);
  const data = randomBytes(200_000);
  writeFileSync(path.join(served, 'f.bin'), data);
  const server = new Child([process.execPath, '--import', 'tsx', path.join(old, 'ej11', 'server.ts'), '--port', '0', '--dir', served]);
  t.teardown(() => server.kill());
  const port = await server.ready();
  const out = path.join(outFolder(t), 'f.bin');
  writeFileSync(`${out}.part`, data.subarray(0, 5000));
  for (const transport of [[], ['--tcp']]) {
    const ran = await client('--get', 'f.bin', '-o', out, '-c', '--port', String(port), ...transport).exited;
    t.equal(ran.code, 1, `${transport.join('') || 'udp'}: exit 1`);
    t.match(ran.stderr, /^client\.ts: the server 127\.0\.0\.1:\d+ cannot resume \(it is older than -c\): run it again without -c to fetch the whole file$/m, ran.stderr.trim());
    t.equal(partSize(`${out}.part`), 5000, 'the part is left as it was');
  }
  const whole = await client('--get', 'f.bin', '-o', out, '--port', String(port)).exited;
  t.equal(whole.code, 0, 'without -c the old server serves it');
  t.ok(readFileSync(out).equals(data));
});
