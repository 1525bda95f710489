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
 * failed, 1 otherwise, 2 on bad usage.
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
import { freePort, Supervisor } from './proc.ts';
import { artefactDir, Context, hasProgram, type Requirement, RequirementSkip, type Scenario } from './scenario.ts';
import { loadTarget, ROOT, type Target } from './target.ts';

/** The verdict on one requirement. */
export interface Verdict {
  exercise: string;
  id: string;
  title: string;
  status: 'pass' | 'fail' | 'skip';
  /** Why it failed (the first failed check) or was skipped. */
  reason: string;
  seconds: number;
}

/** Every scenario file in harness/scenarios, or the named exercises' ones. */
export async function loadScenarios(exercises: readonly string[]): Promise<Scenario[]> {
  const dir = path.join(ROOT, 'harness', 'scenarios');
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
}

const live = new Set<Supervisor>();

/**
 * Runs the requirements one after another (they measure timing-sensitive
 * behaviour, and the machine has two cores) and returns their verdicts.
 */
export async function runScenarios(scenarios: readonly Scenario[], { target, only, captureDir, onVerdict }: RunOptions): Promise<Verdict[]> {
  const verdicts: Verdict[] = [];
  for (const scenario of scenarios) {
    for (const requirement of scenario.requirements) {
      const fullId = `${scenario.exercise}.${requirement.id}`;
      if (only?.length && !only.includes(fullId) && !only.includes(requirement.id)) continue;
      const verdict = await runRequirement(scenario.exercise, requirement, target, captureDir);
      verdicts.push(verdict);
      onVerdict?.(verdict);
    }
  }
  return verdicts;
}

async function runRequirement(exercise: string, requirement: Requirement, target: Target, captureDir?: string): Promise<Verdict> {
  const base = { exercise, id: requirement.id, title: requirement.title };
  const skip = await skipReason(requirement, exercise, target);
  if (skip) return { ...base, status: 'skip', reason: skip, seconds: 0 };

  const timeoutMs = requirement.timeoutMs ?? 60_000;
  const started = performance.now();
  const supervisor = new Supervisor({ PATH: `${path.join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` });
  live.add(supervisor);
  let timedOut = false;
  let skippedBecause: string | undefined;

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
      else st.fail(error instanceof Error ? error.message : String(error));
    } finally {
      clearTimeout(timer);
      if (capture) {
        const file = await capture.stop();
        await writeFile(file.replace(/\.pcap$/, '.txt'), await summarize(file));
      }
      await supervisor.stopAll();
      const left = await supervisor.reapLeftovers();
      const leftMessage = `left ${left.length} process${left.length === 1 ? '' : 'es'} behind (killed now): ${left.join('; ').slice(0, 300)}`;
      st.same(left, [], left.length === 0 ? 'every process it started has ended' : leftMessage);
      live.delete(supervisor);
    }
  });

  const seconds = (performance.now() - started) / 1000;
  // null: tap did not run the subtest at all (its parent had already ended).
  if (results === null) return { ...base, status: 'fail', reason: 'not run: the test run had already ended', seconds };
  if (results.ok && skippedBecause !== undefined) return { ...base, status: 'skip', reason: skippedBecause, seconds };
  if (results.ok) return { ...base, status: 'pass', reason: '', seconds };
  const first = results.failures[0];
  const reason = timedOut ? `did not finish within ${timeoutMs / 1000} s` : (first?.name ?? 'failed');
  return { ...base, status: 'fail', reason, seconds };
}

const MARK = { pass: '\u2714 pass', fail: '\u2718 FAIL', skip: '- skip' } as const;

/** One line per verdict, as it arrives. */
export function formatVerdict(v: Verdict): string {
  const time = v.status === 'skip' ? '' : ` (${v.seconds.toFixed(1)} s)`;
  const reason = v.reason ? `\n        ${v.status === 'fail' ? 'why' : 'because'}: ${v.reason}` : '';
  return `${MARK[v.status]}  ${v.exercise} ${v.id.padEnd(22)} ${v.title}${time}${reason}`;
}

/** The closing table: exercise, requirement, verdict and reason; then the totals line. */
export function formatSummary(verdicts: readonly Verdict[], target: Target): string {
  const rows = verdicts.map((v) => [v.exercise, v.id, v.status.toUpperCase(), v.reason]);
  const header = ['exercise', 'requirement', 'verdict', 'reason'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r[i]?.length ?? 0, 60))));
  const line = (cells: string[]) => cells.map((c, i) => (i === 3 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const count = (status: Verdict['status']) => verdicts.filter((v) => v.status === status).length;
  return [
    '',
    `Target: ${target.name} (${target.description})`,
    line(header),
    line(widths.map((w, i) => '-'.repeat(i === 3 ? 6 : w))),
    ...rows.map(line),
    '',
    `harness: ${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped`,
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
  },
  positionals: [{ name: 'ejNN', help: 'exercises to run (default: all that have scenarios)', optional: true, variadic: true }],
  epilog: `Targets live in harness/targets/*.ini: [ejNN] sections of "role = command" lines.
Exit status: 0 nothing failed, 1 a requirement failed, 2 bad usage.`,
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
  const scenarios = await loadScenarios(opts._);

  if (opts.list) {
    for (const s of scenarios) for (const r of s.requirements) console.log(`${s.exercise}.${r.id.padEnd(24)} ${r.title}`);
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
  const verdicts = await runScenarios(scenarios, {
    target,
    ...(opts.only.length ? { only: opts.only } : {}),
    ...(opts.capture ? { captureDir: path.resolve(opts.capture) } : {}),
    onVerdict: (verdict) => console.log(formatVerdict(verdict)),
  });
  t.end();
  if (opts.json) await writeFile(opts.json, `${JSON.stringify({ target: target.name, verdicts }, null, 2)}\n`);
  console.log(formatSummary(verdicts, target));
  if (opts.only.length && verdicts.length === 0) throw new UsageError(`no requirement matches --only ${opts.only.join(' ')}`);
  return verdicts.some((v) => v.status === 'fail') ? 1 : 0;
}

if (isMain(import.meta)) runMain('harness', () => main(process.argv.slice(2)));
