/**
 * The README's first block of commands, run as a newcomer types them from
 * the project folder (issue 13): the shipped sample folder and file, a
 * download landing in the folder the user is in.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePorts } from '../lib/fixtures/ports.ts';
import { DENO, hasDeno, ROOT, TSX } from '../lib/fixtures/spawn.ts';

const TRACE = /\n\s+at /;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `argv` in `cwd` to its end (its process group killed after `timeoutMs`). */
function runIn(argv: string[], cwd: string, timeoutMs = 60_000): Promise<Ran> {
  const [file, ...args] = argv as [string, ...string[]];
  const child: ChildProcess = spawn(file, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // gone
    }
  }, timeoutMs);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** The commands of the README's first `sh` block, comments removed. */
function readmeCommands(): string[][] {
  const readme = readFileSync(path.join(ROOT, 'ej11', 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '')
    .map((line) => line.split(/\s+/));
}

/** A README command as argv: `npx tsx` and `npx deno` by their paths, scripts absolute, /tmp/ a folder of the test's. */
function resolveCommand(words: string[], tmp: string, port: number): string[] {
  // The README's words only: the runner's own path may itself lie under /tmp (a CI clone in /tmp/ci).
  const [runner, rest] = words[0] === 'npx' && words[1] === 'tsx' ? [TSX, words.slice(2)] : words[0] === 'npx' && words[1] === 'deno' ? [DENO, words.slice(2)] : [words[0] as string, words.slice(1)];
  return [runner, ...rest.map((w) => (w.startsWith('ej11/') && w.endsWith('.ts') ? path.join(ROOT, w) : w.replace(/^\/tmp\//, `${tmp}/`))), '--port', String(port)];
}

t.test('the README commands run as typed from the project folder (with a port of the test)', async (t) => {
  const commands = readmeCommands();
  t.ok(commands.length >= 4, `the README block has ${commands.length} commands`);
  const [serverWords, ...clients] = commands;
  t.match(serverWords?.join(' '), /ej11\/server\.ts --dir ej11\/files\//, 'the first starts the server on the shipped folder');
  const libro = readFileSync(path.join(ROOT, 'ej11', 'files', 'libro.txt'));
  t.ok(libro.length > 100_000 && libro.length < 300 * 1024, `ej11/files/libro.txt is shipped and small (${libro.length} bytes)`);
  const tmp = mkdtempSync(path.join(tmpdir(), 'ej11-readme-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const [port] = (await freePorts(1)) as [number];
  // The server as typed, from the project folder: --dir ej11/files/ is relative to it.
  const [serverFile, ...serverArgs] = resolveCommand(serverWords as string[], tmp, port) as [string, ...string[]];
  const server = spawn(serverFile, serverArgs, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let serverOut = '';
  server.stdout?.on('data', (c: Buffer) => (serverOut += c.toString('utf8')));
  server.stderr?.on('data', (c: Buffer) => (serverOut += c.toString('utf8')));
  const serverEnded = new Promise((resolve) => server.on('close', resolve));
  t.teardown(async () => {
    try {
      process.kill(-(server.pid as number), 'SIGKILL');
    } catch {
      // gone
    }
    await serverEnded;
    rmSync(path.join(ROOT, 'ej11', 'files', 'copia.txt'), { force: true });
  });
  const started = performance.now();
  while (!/\(tcp\)/.test(serverOut) && performance.now() - started < 30_000 && server.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  t.match(serverOut, /listening on 127\.0\.0\.1:\d+ \(udp\)/, 'the server is up');
  // The clients from the test's folder (where a download lands), in the README's order.
  for (const words of clients) {
    if (words[1] === 'deno' && !hasDeno) continue;
    const ran = await runIn(resolveCommand(words, tmp, port), tmp);
    t.equal(ran.code, 0, `${words.join(' ')}: exit 0 (stderr: ${ran.stderr.trim().slice(-300) || 'empty'})`);
    t.notMatch(ran.stderr, TRACE, `${words.join(' ')}: no stack trace`);
  }
  t.ok(readFileSync(path.join(tmp, 'libro.txt')).equals(libro), './libro.txt arrived whole');
  t.ok(existsSync(path.join(ROOT, 'ej11', 'files', 'copia.txt')), 'the --put landed in ej11/files/copia.txt');
});
