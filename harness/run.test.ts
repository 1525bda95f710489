/**
 * The harness has teeth: each deliberately broken submission in
 * harness/fixtures fails on the requirement its fault breaks (and passes the
 * ones it does not), and a correct Python submission with the assignment's
 * file names passes everything it can be asked.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { $ } from 'zx';
import { pathToFileURL } from 'node:url';
import { findByEnvironment } from './proc.ts';
import { ROOT } from './target.ts';
import type { Verdict } from './run.ts';

const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
// Every process these gradings start inherits this, so the leftover check
// below finds this test's processes and no one else's on a shared machine.
const MARKER_NAME = 'SOCKETS_RUN_TEST';
const MARKER_VALUE = randomUUID();

// The gradings run the harness as a user does: without this test run's
// TAP_* settings (its --grep would filter the harness's own subtests away).
const childEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('TAP') && !key.startsWith('_TAPJS'))),
  [MARKER_NAME]: MARKER_VALUE,
};

// Nine gradings of up to a minute each and seven short synthetic ones, on a
// loaded two-core machine: far beyond tap's per-file default.
t.setTimeout(1_500_000);

async function grade(args: string[]): Promise<{ code: number | null; verdicts: Verdict[]; stdout: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'harness-test-'));
  try {
    const json = path.join(dir, 'verdicts.json');
    const out = await $({ cwd: ROOT, nothrow: true, quiet: true, timeout: '240s', env: childEnv })`${tsx} harness/run.ts ej01 --json ${json} ${args}`;
    const verdicts = (JSON.parse(await readFile(json, 'utf8').catch(() => '{"verdicts":[]}')) as { verdicts: Verdict[] }).verdicts;
    return { code: out.exitCode, verdicts, stdout: out.stdout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}


/** A tree of files: a string is a file's text, an object a folder. */
type Tree = { [name: string]: string | Tree };

async function writeTree(dir: string, tree: Tree): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, entry] of Object.entries(tree)) {
    if (typeof entry === 'string') await writeFile(path.join(dir, name), entry);
    else await writeTree(path.join(dir, name), entry);
  }
}

/** The imports a synthetic scenario file starts with (absolute: it lives in a temporary folder). */
const SCENARIO_IMPORTS = `import { defineScenario, cliRequirement } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'harness', 'scenario.ts')).href)};\n`;

/** A Python script that accepts only --host, --port and --data (argparse), and echoes --data or says how it was started. */
const ARGPARSE_ECHO = `import argparse, sys
p = argparse.ArgumentParser(prog='echo.py')
p.add_argument('--host', default='127.0.0.1')
p.add_argument('--port', type=int, default=7007)
p.add_argument('--data', default='')
a = p.parse_args()
print(a.data or 'started')
`;

interface Synthetic {
  /** Scenario files by exercise (`ej01`): the body of defineScenario's requirement list. */
  scenarios: Record<string, string>;
  /** The target manifest. */
  manifest: string;
  /** The submission's files. */
  submission?: Tree;
  args?: string[];
}

interface Graded {
  code: number | null;
  stdout: string;
  stderr: string;
  verdicts: Verdict[];
  json: Record<string, unknown>;
  dir: string;
}

/**
 * Grades a made-up submission with made-up scenarios (harness/run.ts
 * --scenarios DIR): each runner behaviour is seen end to end, in seconds.
 */
async function gradeSynthetic(t: Test, { scenarios, manifest, submission = {}, args = [] }: Synthetic): Promise<Graded> {
  const dir = await mkdtemp(path.join(tmpdir(), 'harness-synthetic-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files: Tree = { 'target.ini': manifest, submission, scenarios: {} };
  for (const [exercise, body] of Object.entries(scenarios)) {
    (files.scenarios as Tree)[`${exercise}.ts`] = `${SCENARIO_IMPORTS}export default defineScenario('${exercise}', 'synthetic', [${body}]);\n`;
  }
  await writeTree(dir, files);
  const json = path.join(dir, 'verdicts.json');
  const out = await $({ cwd: ROOT, nothrow: true, quiet: true, timeout: '120s', env: childEnv })`${tsx} harness/run.ts --scenarios ${path.join(dir, 'scenarios')} --target ${path.join(dir, 'target.ini')} --submission ${path.join(dir, 'submission')} --json ${json} ${args}`;
  const parsed = JSON.parse(await readFile(json, 'utf8').catch(() => '{"verdicts":[]}')) as Record<string, unknown>;
  return { code: out.exitCode, stdout: out.stdout, stderr: out.stderr, verdicts: parsed.verdicts as Verdict[], json: parsed, dir: path.join(dir, 'submission') };
}

const ONE_ROLE = '[target]\ncwd = {submission}\n[ej01]\necho = python3 echo.py\n';

t.test('a beyond requirement the target does not declare is n/a, naming the features and how to declare them', async (t) => {
  const { code, verdicts, stdout, json } = await gradeSynthetic(t, {
    manifest: ONE_ROLE,
    submission: { 'echo.py': ARGPARSE_ECHO },
    scenarios: {
      ej01: `
        { id: 'plain', title: 'echoes', roles: ['echo'], async run(ctx) { const r = await ctx.client('echo', ['--data', 'hi']); ctx.t.equal(r.stdout.trim(), 'hi', 'echoes hi'); } },
        { id: 'extra', title: 'a project extra', tier: 'beyond', features: ['--json', 'pdu:project'], roles: ['echo'], async run(ctx) { ctx.t.fail('must not run'); } },
        { id: 'open', title: 'an input the assignment leaves open', roles: ['echo'], async run(ctx) { ctx.notApplicable('the assignment leaves the transport open and the target declares none ([ej01.declare] transport = tcp|udp)'); } },`,
    },
  });
  const byId = Object.fromEntries(verdicts.map((v) => [v.id, v]));
  t.equal(byId.plain?.status, 'pass', 'the assignment requirement runs and passes');
  t.equal(byId.extra?.status, 'n/a', 'the undeclared beyond requirement is n/a');
  t.match(byId.extra?.reason ?? '', /--json, pdu:project/, 'the reason names the features');
  t.match(byId.extra?.reason ?? '', /features = --json, pdu:project.*\[ej01\]/, 'and how to declare them');
  t.equal(byId.open?.status, 'n/a', 'a scenario may end an assignment requirement as n/a');
  t.match(byId.open?.reason ?? '', /leaves the transport open/, 'with its reason');
  t.match(stdout, /^harness: 1 passed, 0 failed, 0 skipped, 2 n\/a$/m, 'n/a is counted apart in the closing line');
  t.same(json.counts, { pass: 1, fail: 0, skip: 0, 'n/a': 2 }, 'and in the JSON');
  t.equal(code, 0, 'n/a is no failure');
});

t.test('a beyond requirement the target declares is graded', async (t) => {
  const { verdicts } = await gradeSynthetic(t, {
    manifest: `${ONE_ROLE}features = --json\n`,
    submission: { 'echo.py': ARGPARSE_ECHO },
    scenarios: { ej01: `{ id: 'extra', title: 'x', tier: 'beyond', features: ['--json'], roles: ['echo'], async run(ctx) { ctx.t.pass('ran'); } },` },
  });
  t.same(verdicts.map((v) => [v.id, v.status]), [['extra', 'pass']]);
});

t.test('a submission refusing the harness invocation (exit 2, usage error) fails, saying what it did not accept; a usage message satisfies no check', async (t) => {
  const { verdicts } = await gradeSynthetic(t, {
    manifest: ONE_ROLE,
    submission: { 'echo.py': ARGPARSE_ECHO },
    scenarios: {
      ej01: `
        cliRequirement({ echo: [/--data/] }),
        { id: 'timeout', title: 'fails clearly on a time-out', roles: ['echo'], async run(ctx) {
            const r = await ctx.client('echo', ['--timeout', '3']);
            ctx.t.not(r.exit.code, 0, 'exits non-zero');
            ctx.t.match(r.stderr, /timed? ?out/, 'says it timed out');
        } },
        { id: 'direct', title: 'started through the supervisor', roles: ['echo'], async run(ctx) {
            const p = ctx.supervisor.start('echo', [...ctx.command('echo'), '--name', 'ana'], { cwd: ctx.target.cwd });
            await p.exited;
        } },
        { id: 'server', title: 'a server with an extra option', roles: ['echo'], async run(ctx) {
            await ctx.server('echo', 'tcp', ['--root', 'www'], { readyTimeoutMs: 5000 }).catch(() => undefined);
            ctx.t.pass('nothing asserted');
        } },
        { id: 'asked', title: 'an unknown flag, deliberately', roles: ['echo'], async run(ctx) {
            const r = await ctx.client('echo', ['--bogus'], { expectRefusal: true });
            ctx.t.equal(r.exit.code, 2, 'exits 2');
        } },
        { id: 'bad-value', title: 'a bad value is a refusal the requirement may ask for', roles: ['echo'], async run(ctx) {
            const r = await ctx.client('echo', ['--port', 'abc']);
            ctx.t.equal(r.exit.code, 2, 'exits 2');
        } },`,
    },
  });
  const byId = Object.fromEntries(verdicts.map((v) => [v.id, v]));
  t.equal(byId.cli?.status, 'pass', 'the cli requirement asks for the refusal of --no-such-flag');
  t.equal(byId.timeout?.status, 'fail', "argparse's message does not satisfy /timed? ?out/");
  t.match(byId.timeout?.reason ?? '', /^did not accept `--timeout 3`: echo\.py: error: unrecognized arguments: --timeout 3/, 'the reason says what it refused');
  t.equal(byId.direct?.status, 'fail', 'a role started through the supervisor is seen too');
  t.match(byId.direct?.reason ?? '', /did not accept `--name ana`/);
  t.equal(byId.server?.status, 'fail', 'a server that exits 2 at start fails');
  t.match(byId.server?.reason ?? '', /did not accept `--host 127\.0\.0\.1 --port \d+ --root www`: echo\.py: error: unrecognized arguments: --root www/);
  t.equal(byId.asked?.status, 'pass', 'a refusal asked for is no failure');
  t.equal(byId['bad-value']?.status, 'pass', 'an invalid value is not a refused invocation');
});

t.test('a missing script is reported once for its exercise, and the requirements that need it skip pointing there', async (t) => {
  const { verdicts, stdout, json } = await gradeSynthetic(t, {
    manifest: '[target]\ncwd = {submission}\n[ej03]\nwget = python3 ejer3.py\nwget-proxy = python3 ejer3.py --proxy x\necho = python3 echo.py\n',
    submission: { 'echo.py': ARGPARSE_ECHO },
    scenarios: {
      ej03: `
        cliRequirement({ wget: [/--url/] }),
        { id: 'get', title: 'gets', roles: ['wget'], async run(ctx) { const r = await ctx.client('wget', ['--url', 'http://x/']); ctx.t.equal(r.exit.code, 0, 'exits 0'); } },
        { id: 'proxy', title: 'via proxy', roles: ['wget-proxy', 'echo'], async run(ctx) { ctx.t.fail('must not run'); } },
        { id: 'echo', title: 'echo alone', roles: ['echo'], async run(ctx) { const r = await ctx.client('echo', ['--data', 'x']); ctx.t.equal(r.stdout.trim(), 'x', 'echoes'); } },`,
    },
  });
  const byId = Object.fromEntries(verdicts.map((v) => [v.id, v]));
  const lines = stdout.split('\n').filter((line) => /no ejer3\.py in /.test(line));
  t.equal(lines.length, 1, `one line for the missing script: ${lines.join(' | ')}`);
  t.match(lines[0] ?? '', /^ej03: no ejer3\.py in \S+; needed by: cli, get, proxy$/, 'naming the exercise, the file, the folder and what needs it');
  for (const id of ['cli', 'get', 'proxy']) {
    t.equal(byId[id]?.status, 'skip', `${id} is skipped`);
    t.match(byId[id]?.reason ?? '', /^no ejer3\.py \(see "ej03: no ejer3\.py" above\)$/, `${id}'s reason is short and points at that line`);
  }
  t.equal(byId.echo?.status, 'pass', 'a requirement of another script still runs');
  t.match(JSON.stringify(json.notes), /ej03: no ejer3\.py in/, 'the JSON carries the line too');
});

t.test('a run that graded nothing, or an exercise that graded nothing, is no success and says which and why', async (t) => {
  const nothing = await gradeSynthetic(t, {
    manifest: '[target]\ncwd = {submission}\n[ej01]\necho = python3 ejer1.py\n',
    scenarios: { ej01: `{ id: 'a', title: 'a', roles: ['echo'], async run(ctx) { ctx.t.pass('x'); } },` },
  });
  t.not(nothing.code, 0, `nothing graded: exit ${nothing.code}, not 0`);
  t.match(nothing.stdout, /^harness: ej01 graded nothing \(1 skipped\)/m, 'a line says which exercise and why');
  const partly = await gradeSynthetic(t, {
    manifest: `${ONE_ROLE}[ej02]\nserver = python3 ejer2.py\n`,
    submission: { 'echo.py': ARGPARSE_ECHO },
    scenarios: {
      ej01: `{ id: 'a', title: 'a', roles: ['echo'], async run(ctx) { ctx.t.pass('x'); } },`,
      ej02: `{ id: 'b', title: 'b', roles: ['server'], async run(ctx) { ctx.t.pass('x'); } }, { id: 'c', title: 'c', tier: 'beyond', features: ['--x'], roles: ['server'], async run(ctx) { ctx.t.pass('x'); } },`,
    },
    args: ['ej01', 'ej02'],
  });
  t.not(partly.code, 0, `ej02 graded nothing: exit ${partly.code}, not 0`);
  t.match(partly.stdout, /^harness: ej02 graded nothing \(1 skipped, 1 n\/a\)/m, 'naming ej02 and what its verdicts were');
  t.notMatch(partly.stdout, /ej01 graded nothing/, 'not ej01, which passed');
});

t.test('a failing requirement lists every failed check as expected/observed, with the exit status and stderr tail of each process that exited non-zero', async (t) => {
  const { verdicts } = await gradeSynthetic(t, {
    manifest: '[target]\ncwd = {submission}\n[ej01]\ncrash = python3 crash.py\n',
    submission: {
      'crash.py': `import sys\nfor i in range(200):\n    print(f'noise line {i} ' + 'x' * 100, file=sys.stderr)\nprint('Traceback (most recent call last): ValueError: the real cause', file=sys.stderr)\nsys.exit(3)\n`,
    },
    scenarios: {
      ej01: `{ id: 'many', title: 'several checks', roles: ['crash'], async run(ctx) {
          const r = await ctx.client('crash', ['--data', 'x']);
          ctx.t.equal(r.exit.code, 0, 'crash exits 0');
          ctx.t.ok(true, 'this one holds');
          ctx.t.match(r.stdout, /hello/, 'prints hello');
      } },`,
    },
  });
  const reason = verdicts[0]?.reason ?? '';
  t.equal(verdicts[0]?.status, 'fail');
  t.match(reason, /crash exits 0: expected 0, observed 3/, `the first failed check, expected and observed: ${reason}`);
  t.match(reason, /prints hello: expected \/hello\/, observed ""/, 'and the second, not just the first');
  t.notMatch(reason, /this one holds/, 'a check that held is not listed');
  t.match(reason, /crash exit 3.*stderr: .*the real cause/, 'the exit status and the tail of stderr of the process that failed');
  t.ok(reason.length < 1500, `bounded: ${reason.length} characters`);
});

t.test('--submission takes a whole practical: one command grades every exercise in its own folder and prints one table', async (t) => {
  const whereAmI = `import os\nprint(os.getcwd())\n`;
  const { verdicts, stdout, dir } = await gradeSynthetic(t, {
    manifest: '[target]\ncwd = {submission}\n[ej01]\nx = python3 where.py\n[ej02]\nx = python3 where.py\n[ej03]\nx = python3 where.py\n',
    submission: { Ejercicio_1: { 'where.py': whereAmI }, TP2: { 'ejercicio 02': { 'where.py': whereAmI } } },
    scenarios: Object.fromEntries(['ej01', 'ej02', 'ej03'].map((e) => [e, `{ id: 'cwd', title: 'where', roles: ['x'], async run(ctx) { const r = await ctx.client('x', []); ctx.t.equal(r.stdout.trim(), ctx.target.cwd, 'runs in its folder'); ctx.t.pass(r.stdout.trim()); } },`])),
    args: ['ej01', 'ej02', 'ej03'],
  });
  const byEx = Object.fromEntries(verdicts.map((v) => [v.exercise, v]));
  t.equal(byEx.ej01?.status, 'pass', `ej01 ran in Ejercicio_1: ${byEx.ej01?.reason}`);
  t.equal(byEx.ej02?.status, 'pass', `ej02 ran in TP2/ejercicio 02: ${byEx.ej02?.reason}`);
  t.equal(byEx.ej03?.status, 'skip', 'ej03 has no folder');
  t.match(byEx.ej03?.reason ?? '', /^no folder for ej03 \(see "ej03: no folder" above\)$/);
  t.match(stdout, new RegExp(`^ej03: no folder for ej03 in ${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} .*; skipped: cwd$`, 'm'), 'said once for the exercise');
  t.equal(stdout.match(/^exercise {2}requirement/gm)?.length, 1, 'one table');
  t.match(stdout, /Ejercicio_1[\s\S]*ejercicio 02/, 'each exercise in its folder');
});

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
  t.same(verdicts.filter((v) => v.status === 'skip').map((v) => v.id), [], 'nothing is skipped');
  const na = verdicts.filter((v) => v.status === 'n/a');
  t.ok(na.some((v) => v.id === 'tcp-iterative'), 'the beyond --iterative server is n/a: a Python submission does not declare it');
  t.match(na.find((v) => v.id === 'tcp-iterative')?.reason ?? '', /--iterative/, 'the n/a says why');
  t.match(stdout, /^harness: \d+ passed, 0 failed, 0 skipped, \d+ n\/a$/m, 'the closing line counts the verdicts');
});

t.test('no process any of these gradings started is left running', async (t) => {
  const left = await findByEnvironment(`${MARKER_NAME}=${MARKER_VALUE}`);
  const described = await Promise.all(left.map(async (pid) => `${pid} ${(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ')}`));
  t.same(described, [], 'no process carries their marker');
});
