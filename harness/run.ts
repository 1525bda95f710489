/**
 * The harness: runs each exercise's requirements against a target (this
 * project under Node or Deno, or a submission) and prints a verdict per
 * requirement.
 *
 * ```sh
 * npm run harness                                   # every exercise, this project under Node
 * npm run harness -- ej01 --runtime deno            # one exercise under Deno
 * npm run harness -- ej01 --target python --submission ~/entregas/perez/ej1
 * npm run harness -- ej01 --capture captures/       # also a pcap and a summary per requirement
 * ```
 *
 * Each requirement starts its processes in process groups of their own,
 * bounds every step with a timeout, and stops everything it started when it
 * ends, pass or fail; one that leaves a process behind fails. Checks are tap
 * assertions (`--tap FILE` keeps the TAP stream). Exit status: 0 when nothing
 * failed, 1 when a requirement failed, 2 on bad usage, 3 when nothing failed
 * but the run or one of its exercises graded nothing (all skip or n/a).
 *
 * @module
 */
import { createWriteStream } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { defineCommand, UsageError } from '../lib/cli.ts';
import { isMain, runMain } from '../lib/main.ts';
import { startCapture, summarize } from './capture.ts';
import { describeExit, freePort, type Proc, Supervisor } from './proc.ts';
import { artefactDir, Context, hasProgram, type Requirement, RequirementNotApplicable, RequirementSkip, type Scenario } from './scenario.ts';
import { declaresAll, exerciseTarget, loadTarget, missingScripts, ROOT, type Target } from './target.ts';

/** The four verdicts. */
export const STATUSES = ['pass', 'fail', 'skip', 'n/a'] as const;
export type Status = (typeof STATUSES)[number];

/** The verdict on one requirement. */
export interface Verdict {
  exercise: string;
  id: string;
  title: string;
  /**
   * `pass`, `fail`; `skip`: it could not be judged here (a role, a peer or a
   * script is missing); `n/a`: it does not apply to this target (a beyond
   * requirement whose features the manifest does not declare, or an input
   * the assignment leaves open that it does not declare).
   */
  status: Status;
  /** Why it failed, was skipped or is n/a. */
  reason: string;
  seconds: number;
}

/** Every scenario file in harness/scenarios, or the named exercises' ones. */
export async function loadScenarios(exercises: readonly string[], dir = path.join(ROOT, 'harness', 'scenarios')): Promise<Scenario[]> {
  const available = (await readdir(dir)).filter((f) => /^ej\d\d\.ts$/.test(f)).map((f) => f.slice(0, 4)).sort();
  for (const exercise of exercises) {
    if (!/^ej\d\d$/.test(exercise)) throw new UsageError(`expected exercises named ej01 … ej15, got '${exercise}'`);
    if (!available.includes(exercise)) {
      throw new UsageError(`no scenarios for ${exercise} yet (there are: ${available.join(', ')})`);
    }
  }
  const chosen = exercises.length > 0 ? exercises : available;
  const scenarios: Scenario[] = [];
  for (const exercise of chosen) {
    const module = (await import(pathToFileURL(path.join(dir, `${exercise}.ts`)).href)) as { default: Scenario };
    scenarios.push(module.default);
  }
  return scenarios;
}

/** Why a requirement does not apply to this target (an undeclared beyond one), or undefined when it does. */
export function notApplicableReason(requirement: Requirement, exercise: string, target: Target): string | undefined {
  if (requirement.tier !== 'beyond') return undefined;
  const features = requirement.features ?? [];
  // A beyond requirement that names no feature needs them all declared.
  if (features.length > 0 ? declaresAll(target, exercise, features) : declaresAll(target, exercise, ['*'])) return undefined;
  const declared = target.features.get(exercise) ?? new Set<string>();
  const missing = features.length > 0 ? features.filter((f) => !declared.has(f)) : ['*'];
  return `beyond the assignment: needs ${missing.join(', ')}, not declared by target '${target.name}' (a submission that has ${missing.length === 1 ? 'it' : 'them'} declares "features = ${missing.join(', ')}" in [${exercise}] or [target])`;
}

/** Why a requirement cannot run here, or undefined when it can. */
async function skipReason(requirement: Requirement, exercise: string, target: Target): Promise<string | undefined> {
  const roles = target.roles.get(exercise);
  const missing = requirement.roles.filter((role) => !roles?.has(role));
  if (missing.length > 0) return `target '${target.name}' has no role ${missing.join(', ')} in [${exercise}]`;
  for (const peer of requirement.peers ?? []) {
    if (!(await hasProgram(peer.name))) return `${peer.name} is not installed (apt-get install ${peer.apt})`;
  }
  if (requirement.root && process.getuid?.() !== 0) return 'needs root (captures and namespaces)';
  return undefined;
}

/** Options of {@link runScenarios}. */
export interface RunOptions {
  target: Target;
  /** Only these requirement ids (`ej01.tcp-text` or `tcp-text`). */
  only?: readonly string[];
  /** Folder for a pcap and a summary per requirement. */
  captureDir?: string;
  /** Told each verdict as it is reached. */
  onVerdict?: (verdict: Verdict) => void;
  /** Told each line about a whole exercise (a missing script), once, before its verdicts. */
  onNote?: (note: string) => void;
}

/** What {@link runScenarios} found: a verdict per requirement, and the lines about whole exercises. */
export interface RunResult extends Array<Verdict> {
  notes?: string[];
}

const live = new Set<Supervisor>();

/**
 * Runs the requirements one after another (they measure timing-sensitive
 * behaviour, and the machine has two cores) and returns their verdicts.
 */
export async function runScenarios(scenarios: readonly Scenario[], { target, only, captureDir, onVerdict, onNote }: RunOptions): Promise<RunResult> {
  const verdicts: RunResult = [];
  verdicts.notes = [];
  const note = (line: string) => {
    verdicts.notes?.push(line);
    onNote?.(line);
  };
  for (const scenario of scenarios) {
    const { exercise } = scenario;
    // This exercise's view: its own folder as cwd (a whole practical).
    const here = exerciseTarget(target, exercise);
    const chosen = scenario.requirements.filter(
      (r) => !only?.length || only.includes(`${exercise}.${r.id}`) || only.includes(r.id),
    );
    // A missing script is one finding: said once, and each requirement that needs it skips pointing here.
    const cwd = here.cwd;
    const missingFor = new Map<Requirement, string>();
    const absent = target.absent.get(exercise);
    if (absent) {
      // No folder for it in the practical: one line, and its requirements skip pointing there.
      const needers = chosen.filter((r) => !notApplicableReason(r, exercise, target));
      for (const r of needers) missingFor.set(r, `no folder for ${exercise} (see "${exercise}: no folder" above)`);
      if (needers.length > 0) note(`${exercise}: ${absent}; skipped: ${needers.map((r) => r.id).join(', ')}`);
    }
    for (const [file, roles] of absent ? [] : missingScripts(target, exercise, cwd)) {
      const needers = chosen.filter((r) => !notApplicableReason(r, exercise, target) && !missingFor.has(r) && r.roles.some((role) => roles.has(role)));
      if (needers.length === 0) continue;
      for (const r of needers) missingFor.set(r, `no ${file} (see "${exercise}: no ${file}" above)`);
      note(`${exercise}: no ${file} in ${cwd}; needed by: ${needers.map((r) => r.id).join(', ')}`);
    }
    for (const requirement of chosen) {
      const missing = missingFor.get(requirement);
      const verdict = missing
        ? { exercise, id: requirement.id, title: requirement.title, status: 'skip' as const, reason: missing, seconds: 0 }
        : await runRequirement(exercise, requirement, here, captureDir);
      verdicts.push(verdict);
      onVerdict?.(verdict);
    }
  }
  return verdicts;
}

async function runRequirement(exercise: string, requirement: Requirement, target: Target, captureDir?: string): Promise<Verdict> {
  const base = { exercise, id: requirement.id, title: requirement.title };
  const notApplicable = notApplicableReason(requirement, exercise, target);
  if (notApplicable) return { ...base, status: 'n/a', reason: notApplicable, seconds: 0 };
  const skip = await skipReason(requirement, exercise, target);
  if (skip) return { ...base, status: 'skip', reason: skip, seconds: 0 };

  const timeoutMs = requirement.timeoutMs ?? 60_000;
  const started = performance.now();
  const supervisor = new Supervisor({ PATH: `${path.join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` });
  live.add(supervisor);
  let timedOut = false;
  let skippedBecause: string | undefined;
  let notApplicableBecause: string | undefined;
  let refused: string[] = [];
  let exitedNonZero: Proc[] = [];

  const results = await t.test(`${exercise} ${requirement.id}: ${requirement.title}`, { timeout: timeoutMs + 30_000 }, async (st) => {
    const pool = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const ctx = new Context(st, exercise, target, supervisor, [...new Set(pool)]);
    const capture =
      captureDir && (await hasProgram('tcpdump'))
        ? await startCapture(supervisor, pool, path.join(await artefactDir(captureDir, exercise), `${requirement.id}.pcap`))
        : undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        requirement.run(ctx),
        new Promise((_, reject) => {
          timer = setTimeout(() => {
            timedOut = true;
            reject(new Error(`did not finish within ${timeoutMs / 1000} s`));
          }, timeoutMs);
        }),
      ]);
    } catch (error) {
      if (error instanceof RequirementSkip) skippedBecause = error.message;
      else if (error instanceof RequirementNotApplicable) notApplicableBecause = error.message;
      else st.fail(error instanceof Error ? error.message : String(error));
    } finally {
      clearTimeout(timer);
      if (capture) {
        const file = await capture.stop();
        await writeFile(file.replace(/\.pcap$/, '.txt'), await summarize(file));
      }
      // Before the harness stops the rest: these ended by themselves.
      exitedNonZero = supervisor.procs.filter((p) => p.exit && p.exit.code !== 0 && p.exit.code !== null);
      await supervisor.stopAll();
      // A usage error satisfies no check: the submission never ran as asked.
      refused = ctx.refusals();
      const left = await supervisor.reapLeftovers();
      const leftMessage = `left ${left.length} process${left.length === 1 ? '' : 'es'} behind (killed now): ${left.join('; ').slice(0, 300)}`;
      st.same(left, [], left.length === 0 ? 'every process it started has ended' : leftMessage);
      live.delete(supervisor);
    }
  });

  const seconds = (performance.now() - started) / 1000;
  // null: tap did not run the subtest at all (its parent had already ended).
  if (results === null) return { ...base, status: 'fail', reason: 'not run: the test run had already ended', seconds };
  if (refused.length > 0) return { ...base, status: 'fail', reason: refused.join('; '), seconds };
  if (results.ok && notApplicableBecause !== undefined) return { ...base, status: 'n/a', reason: notApplicableBecause, seconds };
  if (results.ok && skippedBecause !== undefined) return { ...base, status: 'skip', reason: skippedBecause, seconds };
  if (results.ok) return { ...base, status: 'pass', reason: '', seconds };
  // Every failed check, then how each process that gave up ended.
  const checks = results.failures.map((f) => describeFailure(f as { name?: string; diag?: Record<string, unknown> | null }));
  if (timedOut && !checks.some((c) => c.startsWith('did not finish'))) checks.unshift(`did not finish within ${timeoutMs / 1000} s`);
  const procs = [...new Set(exitedNonZero.map(describeExited))].slice(0, 4);
  const reason = cut([...(checks.length ? checks : ['failed']), ...procs].join('; '), 1400);
  return { ...base, status: 'fail', reason, seconds };
}

const MARK: Record<Status, string> = { pass: '\u2714 pass', fail: '\u2718 FAIL', skip: '- skip', 'n/a': '\u00b7 n/a ' };

/** How many verdicts of each status. */
export function countVerdicts(verdicts: readonly Verdict[]): Record<Status, number> {
  return Object.fromEntries(STATUSES.map((status) => [status, verdicts.filter((v) => v.status === status).length])) as Record<Status, number>;
}

/**
 * The lines that say a run, or an exercise of it, graded nothing (no pass
 * and no fail), and why: such a run is no success (exit 3).
 */
export function ungraded(verdicts: readonly Verdict[], exercises: readonly string[]): string[] {
  const lines: string[] = [];
  const why = (of: readonly Verdict[]) => {
    const count = countVerdicts(of);
    const parts = [count.skip && `${count.skip} skipped`, count['n/a'] && `${count['n/a']} n/a`].filter(Boolean);
    return parts.length > 0 ? parts.join(', ') : 'no requirement ran';
  };
  for (const exercise of exercises) {
    const of = verdicts.filter((v) => v.exercise === exercise);
    if (of.some((v) => v.status === 'pass' || v.status === 'fail')) continue;
    const first = of.find((v) => v.status === 'skip') ?? of[0];
    lines.push(`harness: ${exercise} graded nothing (${why(of)})${first ? `: ${first.id}: ${first.reason}` : ''}`);
  }
  if (!verdicts.some((v) => v.status === 'pass' || v.status === 'fail') && exercises.length !== 1) {
    lines.push(`harness: nothing was graded (${why(verdicts)})`);
  }
  return lines;
}

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}\u2026` : text);

function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0 ? String(value) : JSON.stringify(value);
}

/**
 * A failed check in words: its name, then what it wanted and what it found
 * (tap's `wanted`/`found`, or the two sides of its diff), each bounded.
 */
export function describeFailure(failure: { name?: string; diag?: Record<string, unknown> | null }): string {
  const diag = failure.diag ?? {};
  let expected = 'wanted' in diag ? shown(diag.wanted) : 'pattern' in diag ? String(diag.pattern) : undefined;
  let observed = 'found' in diag ? shown(diag.found) : undefined;
  if (typeof diag.diff === 'string') {
    const side = (mark: string) =>
      diag.diff === undefined ? '' : String(diag.diff).split('\n').filter((l) => l.startsWith(mark) && !l.startsWith(mark.repeat(3))).map((l) => l.slice(1).trim()).join(' ');
    expected ??= side('-');
    observed ??= side('+');
  }
  const name = failure.name || 'a check failed';
  if (expected !== undefined && observed !== undefined) return `${name}: expected ${cut(expected, 120)}, observed ${cut(observed, 160)}`;
  if (observed !== undefined) return `${name}: observed ${cut(observed, 160)}`;
  return name;
}

/** `name exit 3, stderr: …last lines…` for a process that exited non-zero by itself. */
function describeExited(proc: Proc): string {
  const tail = proc.stderr.trimEnd().split('\n').slice(-3).map((l) => l.trim()).join(' | ');
  return `${proc.name} ${describeExit(proc.exit ?? { code: null, signal: null })}${tail ? `, stderr: ${tail.length > 300 ? `\u2026${tail.slice(-300)}` : tail}` : ''}`;
}

/** One line per verdict, as it arrives. */
export function formatVerdict(v: Verdict): string {
  const time = v.status === 'skip' || v.status === 'n/a' ? '' : ` (${v.seconds.toFixed(1)} s)`;
  const reason = v.reason ? `\n        ${v.status === 'fail' ? 'why' : 'because'}: ${v.reason}` : '';
  return `${MARK[v.status]}  ${v.exercise} ${v.id.padEnd(22)} ${v.title}${time}${reason}`;
}

/** The closing table: exercise, requirement, verdict and reason; then the totals line. */
export function formatSummary(verdicts: readonly Verdict[], target: Target): string {
  const rows = verdicts.map((v) => [v.exercise, v.id, v.status.toUpperCase(), v.reason]);
  const header = ['exercise', 'requirement', 'verdict', 'reason'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r[i]?.length ?? 0, 60))));
  const line = (cells: string[]) => cells.map((c, i) => (i === 3 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const count = countVerdicts(verdicts);
  return [
    '',
    `Target: ${target.name} (${target.description})`,
    line(header),
    line(widths.map((w, i) => '-'.repeat(i === 3 ? 6 : w))),
    ...rows.map(line),
    '',
    `harness: ${count.pass} passed, ${count.fail} failed, ${count.skip} skipped, ${count['n/a']} n/a`,
  ].join('\n');
}

const command = defineCommand({
  name: 'harness',
  summary: "Runs the exercises' requirements against a target and prints a verdict for each.",
  options: {
    target: { type: 'string', default: 'node', help: 'node, deno, python, or the path of a target .ini manifest' },
    runtime: { type: 'string', metavar: 'node|deno', help: 'shorthand for --target node or --target deno' },
    submission: { type: 'string', metavar: 'DIR', help: 'folder of the submission a target such as python runs in' },
    only: { type: 'string', multiple: true, metavar: 'ID', help: 'run only this requirement (ej01.tcp-text); repeatable' },
    capture: { type: 'string', metavar: 'DIR', help: 'record a pcap and a tshark summary per requirement in DIR' },
    tap: { type: 'string', metavar: 'FILE', help: 'write the TAP stream of every check to FILE ("-" for stdout)' },
    json: { type: 'string', metavar: 'FILE', help: 'write the verdicts as JSON to FILE' },
    list: { type: 'boolean', help: 'list the requirements and exit' },
    scenarios: { type: 'string', metavar: 'DIR', help: "a folder of ejNN.ts scenario files instead of harness/scenarios (the harness's own tests)" },
  },
  positionals: [{ name: 'ejNN', help: 'exercises to run (default: all that have scenarios)', optional: true, variadic: true }],
  epilog: `Targets live in harness/targets/*.ini: [ejNN] sections of "role = command" lines.
Exit status: 0 nothing failed, 1 a requirement failed, 2 bad usage, 3 nothing failed but
the run, or an exercise of it, graded nothing (every requirement skipped or n/a).`,
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  if (opts.runtime !== undefined && !['node', 'deno'].includes(opts.runtime)) {
    throw new UsageError(`argument --runtime: expected node or deno, got '${opts.runtime}'`);
  }
  let target: Target;
  try {
    target = loadTarget(opts.runtime ?? opts.target, opts.submission);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const scenarios = await loadScenarios(opts._, opts.scenarios ? path.resolve(opts.scenarios) : undefined);

  if (opts.list) {
    for (const s of scenarios) {
      for (const r of s.requirements) {
        const tier = r.tier === 'beyond' ? `  [beyond: ${(r.features ?? ['*']).join(', ')}]` : '';
        console.log(`${s.exercise}.${r.id.padEnd(24)} ${r.title}${tier}`);
      }
    }
    return 0;
  }

  // The TAP stream goes where asked, or nowhere: the verdict lines are the human report.
  const sink = opts.tap === '-' ? process.stdout : opts.tap ? createWriteStream(opts.tap) : new Writable({ write: (_c, _e, done) => done() });
  t.pipe(sink);
  // tap ends its root test after 30 s by default; a run of many requirements
  // takes longer, and each requirement is bounded by its own timeout.
  t.setTimeout(0);

  const stop = () => {
    process.stderr.write('\nharness: interrupted; stopping every process it started\n');
    void Promise.all([...live].map((s) => s.stopAll(500).then(() => s.reapLeftovers()))).finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  console.log(`Grading ${target.name} (${target.description}): ${scenarios.map((s) => s.exercise).join(', ')}`);
  const practical = opts.submission ? path.resolve(opts.submission) : '';
  const whole = target.absent.size > 0 || [...target.cwds.values()].some((cwd) => cwd !== practical);
  if (opts.submission && whole) {
    const where = scenarios.map(({ exercise }) => {
      if (target.absent.has(exercise)) return `${exercise} (no folder)`;
      const cwd = exerciseTarget(target, exercise).cwd;
      return `${exercise} ${cwd === practical ? '.' : path.relative(practical, cwd)}`;
    });
    console.log(`Folders in ${practical}: ${where.join(', ')}`);
  }
  const verdicts = await runScenarios(scenarios, {
    target,
    ...(opts.only.length ? { only: opts.only } : {}),
    ...(opts.capture ? { captureDir: path.resolve(opts.capture) } : {}),
    onVerdict: (verdict) => console.log(formatVerdict(verdict)),
    onNote: (line) => console.log(line),
  });
  t.end();
  if (opts.json) await writeFile(opts.json, `${JSON.stringify({ target: target.name, counts: countVerdicts(verdicts), notes: verdicts.notes ?? [], verdicts: [...verdicts] }, null, 2)}\n`);
  console.log(formatSummary(verdicts, target));
  if (opts.only.length && verdicts.length === 0) throw new UsageError(`no requirement matches --only ${opts.only.join(' ')}`);
  // With --only, the exercises chosen are those it picked requirements from.
  const chosen = opts.only.length ? [...new Set(verdicts.map((v) => v.exercise))] : scenarios.map((s) => s.exercise);
  const nothing = ungraded(verdicts, chosen);
  for (const line of nothing) console.log(line);
  if (verdicts.some((v) => v.status === 'fail')) return 1;
  return nothing.length > 0 ? 3 : 0;
}

if (isMain(import.meta)) runMain('harness', () => main(process.argv.slice(2)));
