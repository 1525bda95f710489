/**
 * The harness has teeth: each deliberately broken submission in
 * harness/fixtures fails on the requirement its fault breaks (and passes the
 * ones it does not), and a correct Python submission with the assignment's
 * file names passes everything it can be asked.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { $ } from 'zx';
import { findByEnvironment } from './proc.ts';
import { ROOT } from './target.ts';
import type { Verdict } from './run.ts';

const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
// Every process these gradings start inherits this, so the leftover check
// below finds this test's processes and no one else's on a shared machine.
const MARKER_NAME = 'SOCKETS_RUN_TEST';
const MARKER_VALUE = randomUUID();

// Nine gradings of up to a minute each: far beyond tap's per-file default.
t.setTimeout(600_000);

async function grade(args: string[]): Promise<{ code: number | null; verdicts: Verdict[]; stdout: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'harness-test-'));
  try {
    const json = path.join(dir, 'verdicts.json');
    const out = await $({ cwd: ROOT, nothrow: true, quiet: true, timeout: '240s', env: { ...process.env, [MARKER_NAME]: MARKER_VALUE } })`${tsx} harness/run.ts ej01 --json ${json} ${args}`;
    const verdicts = (JSON.parse(await readFile(json, 'utf8').catch(() => '{"verdicts":[]}')) as { verdicts: Verdict[] }).verdicts;
    return { code: out.exitCode, verdicts, stdout: out.stdout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const fixtures: { name: string; fails: string[]; passes: string[]; reason?: RegExp }[] = [
  { name: 'truncating', fails: ['tcp-binary', 'tcp-many'], passes: ['tcp-text', 'tcp-concurrent', 'shutdown'], reason: /got 1024 of 8388608 bytes/ },
  { name: 'iterative', fails: ['tcp-concurrent'], passes: ['tcp-text', 'tcp-binary', 'shutdown'] },
  { name: 'dies-on-reset', fails: ['tcp-robust'], passes: ['tcp-text', 'tcp-binary'] },
  { name: 'small-buffer', fails: ['udp-binary', 'udp-many'], passes: ['udp-text'], reason: /got 1024 of 65507 bytes/ },
  { name: 'no-timeout', fails: ['udp-client-timeout'], passes: ['udp-text'], reason: /gave up by itself/ },
  { name: 'silent-failure', fails: ['tcp-client-refused'], passes: ['tcp-text'], reason: /exit status is non-zero/ },
  { name: 'unbounded', fails: ['tcp-backpressure'], passes: ['tcp-text', 'tcp-binary', 'tcp-concurrent'], reason: /let in 96\.0 MiB from a client that reads nothing/ },
  { name: 'leaks-child', fails: ['tcp-text'], passes: ['udp-text'], reason: /left 1 process behind/ },
];

for (const fixture of fixtures) {
  t.test(`the harness fails the '${fixture.name}' fixture on ${fixture.fails.join(', ')} and only there`, async (t) => {
    const ids = [...fixture.fails, ...fixture.passes];
    const target = path.join(ROOT, 'harness', 'fixtures', 'targets', `${fixture.name}.ini`);
    const { code, verdicts } = await grade(['--target', target, ...ids.flatMap((id) => ['--only', id])]);
    t.equal(code, 1, 'the harness exits 1');
    const status = Object.fromEntries(verdicts.map((v) => [v.id, v.status]));
    for (const id of fixture.fails) t.equal(status[id], 'fail', `${id} fails`);
    for (const id of fixture.passes) t.equal(status[id], 'pass', `${id} passes`);
    if (fixture.reason) {
      const reason = verdicts.find((v) => v.id === fixture.fails[0])?.reason ?? '';
      t.match(reason, fixture.reason, `the reason names the fault: ${reason}`);
    }
  });
}

t.test('a correct Python submission with the assignment file names passes (--target python)', async (t) => {
  const { code, verdicts, stdout } = await grade(['--target', 'python', '--submission', path.join(ROOT, 'harness', 'fixtures', 'python')]);
  t.equal(code, 0, 'the harness exits 0');
  t.same(verdicts.filter((v) => v.status === 'fail').map((v) => `${v.id}: ${v.reason}`), [], 'no requirement fails');
  const skipped = verdicts.filter((v) => v.status === 'skip');
  t.same(skipped.map((v) => v.id), ['tcp-iterative'], 'only the role a Python submission lacks is skipped');
  t.match(skipped[0]?.reason ?? '', /no role tcp-server-iterative/, 'the skip says why');
  t.match(stdout, /^harness: \d+ passed, 0 failed, 1 skipped$/m, 'the closing line counts the verdicts');
});

t.test('no process any of these gradings started is left running', async (t) => {
  const left = await findByEnvironment(`${MARKER_NAME}=${MARKER_VALUE}`);
  const described = await Promise.all(left.map(async (pid) => `${pid} ${(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ')}`));
  t.same(described, [], 'no process carries their marker');
});
