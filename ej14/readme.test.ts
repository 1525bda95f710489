import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../lib/fixtures/spawn.ts';

/**
 * The ```sh blocks of ej14/README.md marked `<!-- runs as typed: ej14/readme.test.ts -->`,
 * each run as typed by bash with job control on (`set -m`, as a terminal's shell has it, so that `kill %N` stops
 * a job's process group) in a network namespace of its own (so that
 * config.ini's ports 8000-8004 are free whatever else runs on this machine),
 * from a folder that looks like the project's (links to it), so that the
 * files the commands write do not land in the checkout.
 */
t.setTimeout(900_000);

const README = await readFile(path.join(ROOT, 'ej14', 'README.md'), 'utf8');
const MARK = '<!-- runs as typed: ej14/readme.test.ts -->\n```sh\n';
const blocks: { line: number; code: string }[] = [];
for (let at = README.indexOf(MARK); at >= 0; at = README.indexOf(MARK, at + 1)) {
  const start = at + MARK.length;
  blocks.push({ line: README.slice(0, start).split('\n').length, code: README.slice(start, README.indexOf('```', start)) });
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function canMakeNamespaces(): boolean {
  try {
    ip('netns', 'add', `ej14probe${process.pid}`);
    ip('netns', 'del', `ej14probe${process.pid}`);
    return true;
  } catch {
    return false;
  }
}

const pidsIn = (ns: string) => ip('netns', 'pids', ns).split('\n').filter(Boolean).map(Number);

t.test('the README marks its runnable blocks', async (t) => {
  t.equal(blocks.length, 2, 'two blocks');
});

for (const [i, block] of blocks.entries()) {
  t.test(`README.md line ${block.line}: the block runs as typed and the master prints its summary`, { skip: canMakeNamespaces() ? false : 'needs root and ip netns', timeout: 400_000 }, async (t) => {
    const ns = `ej14readme${process.pid}n${i}`;
    ip('netns', 'add', ns);
    t.teardown(() => {
      // Only the processes of this namespace: the ones this block started.
      for (const pid of pidsIn(ns)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      ip('netns', 'del', ns);
    });
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'ej14-readme-')));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    for (const name of ['ej14', 'lib', 'node_modules', 'package.json', 'tsconfig.json']) await symlink(path.join(ROOT, name), path.join(dir, name));
    const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'bash', '-c', `set -m\n${block.code}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    // 'exit', not 'close': nodes left running would hold the pipes open.
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(-1), 300_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const masterLines = stderr.split('\n').filter((l) => /master|error/.test(l));
    t.equal(code, 0, `bash exits 0 (${masterLines.slice(-3).join(' | ')})`);
    t.match(stdout, /^(out|salida)\.txt: 23591 terms, \d+ words from \d+ bytes in 2 piece\(s\), \d+ assignment\(s\), 0 mapper\(s\) lost, [\d.]+ s$/m, 'the summary line, as the README shows it');
    t.notMatch(stderr, /^\s+at |internal error/m, 'no stack trace');
    const until = Date.now() + 20_000;
    while (pidsIn(ns).length > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
    t.same(pidsIn(ns), [], "the block's last line stopped the nodes");
  });
}
