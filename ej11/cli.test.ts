/**
 * The command lines as a newcomer types them (issue 13): the README's
 * commands run as written, a bad -o or --dir is one sentence before any work,
 * a closed port is refused at once, and -h lists the exit statuses. Every
 * script is spawned as a user runs it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePorts } from '../lib/fixtures/ports.ts';
import { DENO, hasDeno, run, tsx } from '../lib/fixtures/spawn.ts';
import { startServer } from './test-peers.ts';

const TRACE = /\n\s+at /;

t.test('-o in a folder that does not exist is refused before the transfer, in one sentence, exit 2', async (t) => {
  const s = await startServer(t, { 'f.txt': 'x'.repeat(5000) });
  const ran = await run(tsx('ej11/client.ts', '--get', 'f.txt', '-o', '/nonexistent-ej11/dir/x', '--port', String(s.port)));
  t.equal(ran.code, 2, 'exit 2 (bad argument)');
  t.notMatch(ran.stderr, TRACE, 'no stack trace');
  t.match(ran.stderr, /^client\.ts: .*-o \/nonexistent-ej11\/dir\/x.*\/nonexistent-ej11\/dir does not exist/m, 'names the path and the missing folder');
  t.equal(ran.stderr.trim().split('\n').length, 1, `one line: ${ran.stderr.trim()}`);
  t.equal(s.child.stderr.match(/GET f\.txt/), null, 'nothing was asked of the server');
  const folder = mkdtempSync(path.join(tmpdir(), 'ej11-o-'));
  t.teardown(() => rmSync(folder, { recursive: true, force: true }));
  const dir = await run(tsx('ej11/client.ts', '--get', 'f.txt', '-o', folder, '--port', String(s.port)));
  t.equal(dir.code, 2, '-o naming a folder: exit 2');
  t.match(dir.stderr, /is a folder/, `says so: ${dir.stderr.trim()}`);
});

t.test('--dir that does not exist says it does not exist; a file says it is not a folder', async (t) => {
  const missing = await run(tsx('ej11/server.ts', '--dir', 'no-such-ej11-folder/', '--port', '0'));
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^server\.ts: --dir no-such-ej11-folder\/: (it )?does not exist/m, missing.stderr.trim());
  const tmp = mkdtempSync(path.join(tmpdir(), 'ej11-dir-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  writeFileSync(path.join(tmp, 'file'), 'x');
  const file = await run(tsx('ej11/server.ts', '--dir', path.join(tmp, 'file'), '--port', '0'));
  t.equal(file.code, 2);
  t.match(file.stderr, /is a file, not a folder/, file.stderr.trim());
});

t.test('a closed UDP port is refused at once (ICMP port unreachable on a connected socket), exit 1', async (t) => {
  const [port] = (await freePorts(1)) as [number];
  // A --timeout far beyond the test's wait: the answer must come from the ICMP error, not the timer.
  const ran = await run(tsx('ej11/client.ts', '--get', 'a', '--port', String(port), '--timeout', '600'), { timeoutMs: 60_000 });
  t.equal(ran.code, 1, 'exit 1');
  t.match(ran.stderr, new RegExp(`^client\\.ts: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused \\(is the server running\\?\\)$`, 'm'), ran.stderr.trim());
  t.notMatch(ran.stderr, TRACE);
});

t.test('under Deno a closed UDP port ends at the --timeout (its node:dgram passes no ICMP error), exit 1', { skip: !hasDeno && 'no Deno' }, async (t) => {
  const [port] = (await freePorts(1)) as [number];
  const ran = await run([DENO, 'run', '-A', 'ej11/client.ts', '--get', 'a', '--port', String(port), '--timeout', '2'], { timeoutMs: 60_000 });
  t.equal(ran.code, 1, 'exit 1');
  // Refused if a later Deno passes the ICMP error on; the silent-server sentence if not.
  t.match(ran.stderr, new RegExp(`^client\\.ts: (cannot connect to 127\\.0\\.0\\.1:${port}: connection refused|no answer from the server 127\\.0\\.0\\.1:${port} for 2\\.0 s)`, 'm'), ran.stderr.trim());
  t.notMatch(ran.stderr, TRACE);
});

t.test('-h lists the exit statuses', async (t) => {
  const server = await run(tsx('ej11/server.ts', '-h'));
  t.equal(server.code, 0);
  t.match(server.stdout, /Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot bind, 2 bad usage.*, 130 a second Ctrl-C/);
  const client = await run(tsx('ej11/client.ts', '-h'));
  t.equal(client.code, 0);
  t.match(client.stdout, /Exit status: 0 .*, 1 .*, 2 .*, 130 interrupted/);
});
