/**
 * The campaign: for each target, start the server under a lowered open-file
 * limit, run the fixed regression cases and then the generated ones in
 * batches, and after each batch check that the server is alive, answers a
 * valid request correctly, holds a bounded number of descriptors and of
 * resident memory, and printed no stack trace. A batch that killed the
 * server or made it print a trace is replayed case by case on a fresh server
 * to name the input that did it.
 *
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describeExit, type Proc, Supervisor } from '../proc.ts';
import { loadTarget, ROOT } from '../target.ts';
import { hashSeed, Rng } from './prng.ts';
import type { Case, Env, FuzzTarget, Running } from './types.ts';
import { describeFds, isAlive, nofileLimit, openFds, rssBytes, serverPid, stackTraces } from './watch.ts';

/** What went wrong, with the inputs that were sent. */
export interface Finding {
  target: string;
  batch: string;
  what: 'died' | 'stack-trace' | 'invalid-answer' | 'fd-leak' | 'rss-growth' | 'setup' | 'left-behind';
  message: string;
  /** The cases of the batch (ids, kinds, details), or the one that did it when the replay found it. */
  cases: { id: string; kind: string; detail: string }[];
  culprit?: { id: string; kind: string; detail: string };
}

/** One target's figures for the final table. */
export interface TargetReport {
  target: string;
  title: string;
  cases: number;
  batches: number;
  /** Never died (a restart after a death still counts it). */
  alive: boolean;
  restarts: number;
  validAfter: { ok: number; of: number };
  baseRss: number;
  peakRss: number;
  baseFds: number;
  peakFds: number;
  nofile: number | undefined;
  stackTraces: number;
  findings: Finding[];
  seconds: number;
}

export interface CampaignOptions {
  seed: number;
  /** Generated cases per target (the fixed ones come on top). */
  cases: number;
  batchSize: number;
  /** Cases in flight at once within a batch. */
  concurrency: number;
  runtime: 'node' | 'deno';
  nofile: number;
  /** Growth of RSS over the start that counts as unbounded. */
  rssSlackBytes: number;
  /** Descriptors over the start that count as a leak. */
  fdSlack: number;
  /** Only these case ids (`ej11#12`, `ej11:issue-17-euro`). */
  only?: string[];
  /** Skip the generated cases: the fixed ones only. */
  fixedOnly?: boolean;
  /** Replay a batch that killed its server, case by case, to name the input. */
  bisect: boolean;
  log: (line: string) => void;
  /** Told when a supervisor starts and stops, so Ctrl-C can stop everything. */
  live?: Set<Supervisor>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const MB = 1024 * 1024;
const CASE_BOUND_MS = 20_000;

/** A case's own generator: the seed and its id, so one case can be redone alone. */
export function caseRng(seed: number, target: string, index: number): Rng {
  return new Rng(hashSeed(seed, `${target}#${index}`));
}

type Selection = Pick<CampaignOptions, 'seed' | 'cases' | 'only' | 'fixedOnly'>;

/** The indices of the generated cases of `target` the options ask for. */
export function generatedIndices(target: FuzzTarget, options: Selection): number[] {
  if (options.fixedOnly) return [];
  if (options.only?.length && !options.only.includes(target.name)) {
    return options.only.flatMap((id) => {
      const m = new RegExp(`^${target.name}#(\\d+)$`).exec(id);
      return m ? [Number(m[1])] : [];
    });
  }
  return Array.from({ length: options.cases }, (_, i) => i);
}

/** The `index`th generated case of `target` for `seed`. */
export function generatedCase(target: FuzzTarget, seed: number, index: number): Case {
  return target.generate(caseRng(seed, target.name, index), index);
}

/** The fixed and generated cases of `target` the options ask for, in order: fixed first. (The campaign makes generated cases batch by batch: a case can hold a megabyte.) */
export function casesFor(target: FuzzTarget, options: Selection): { fixed: Case[]; generated: Case[] } {
  const want = (id: string) => !options.only?.length || options.only.includes(id) || options.only.includes(target.name);
  const fixed = (target.fixed ?? []).filter((c) => want(c.id));
  return { fixed, generated: generatedIndices(target, options).map((i) => generatedCase(target, options.seed, i)) };
}

async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no end within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function runPool(cases: Case[], running: Running, concurrency: number): Promise<string[]> {
  const errors: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++] as Case;
      try {
        await bounded(c.run(running), CASE_BOUND_MS, c.id);
      } catch (error) {
        errors.push(`${c.id}: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, cases.length) }, worker));
  return errors;
}

function tail(proc: Proc, n = 12): string {
  const last = (text: string) => text.trimEnd().split('\n').slice(-n).join(' | ').slice(-500);
  return [proc.stderr && `stderr: ${last(proc.stderr)}`, proc.stdout && `stdout: ${last(proc.stdout)}`].filter(Boolean).join('; ');
}

/** A watched server: the process, the real PID, where its output was last scanned. */
interface Live {
  running: Running;
  pid: number;
  scanned: number;
}

/** Runs the campaign on one target and returns its figures. */
export async function runTarget(target: FuzzTarget, options: CampaignOptions): Promise<TargetReport> {
  const started = performance.now();
  const { log } = options;
  const { fixed } = casesFor(target, { ...options, fixedOnly: true });
  const indices = generatedIndices(target, options);
  const report: TargetReport = {
    target: target.name,
    title: target.title,
    cases: 0,
    batches: 0,
    alive: true,
    restarts: 0,
    validAfter: { ok: 0, of: 0 },
    baseRss: 0,
    peakRss: 0,
    baseFds: 0,
    peakFds: 0,
    nofile: undefined,
    stackTraces: 0,
    findings: [],
    seconds: 0,
  };
  const manifest = loadTarget(options.runtime);
  const dirs: string[] = [];
  const supervisors: Supervisor[] = [];

  const boot = async (): Promise<Live> => {
    const supervisor = new Supervisor({ PATH: `${path.join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}` });
    supervisors.push(supervisor);
    options.live?.add(supervisor);
    const dir = await mkdtemp(path.join(os.tmpdir(), `fuzz-${target.name}-`));
    dirs.push(dir);
    const env: Env = {
      supervisor,
      target: manifest,
      runtime: options.runtime,
      dir,
      nofile: options.nofile,
      start(name, exercise, role, args, { limited = false, stdin = false, cwd } = {}) {
        const command = manifest.roles.get(exercise)?.get(role);
        if (!command) throw new Error(`target ${manifest.name} has no role ${role} in [${exercise}]`);
        const words = limited ? ['prlimit', `--nofile=${options.nofile}:${options.nofile}`, '--', ...command, ...args] : [...command, ...args];
        return supervisor.start(name, words, { cwd: cwd ?? manifest.cwd, stdin });
      },
    };
    const running = await target.setup(env);
    // tsx's node starts the script's node a moment after the port is bound by it; it is bound now.
    const pid = await serverPid(running.proc.pid);
    return { running, pid, scanned: 0 };
  };

  const stop = async (live: Live | undefined) => {
    await live?.running.close?.().catch(() => {});
    for (const s of supervisors.splice(0)) {
      await s.stopAll(1500);
      const left = await s.reapLeftovers();
      options.live?.delete(s);
      if (left.length > 0) {
        report.findings.push({ target: target.name, batch: 'end', what: 'left-behind', message: `left ${left.length} process(es) after stop: ${left.join('; ').slice(0, 300)}`, cases: [] });
      }
    }
  };

  const sample = async (live: Live) => {
    const [fds, rss] = await Promise.all([openFds(live.pid), rssBytes(live.pid)]);
    if (fds !== undefined) report.peakFds = Math.max(report.peakFds, fds);
    if (rss !== undefined) report.peakRss = Math.max(report.peakRss, rss);
    return { fds, rss };
  };

  const alive = async (live: Live) => live.running.proc.exit === undefined && (await isAlive(live.pid));

  const newTraces = (live: Live): string[] => {
    const text = live.running.proc.stderr + '\n' + live.running.proc.stdout;
    // Output only grows (up to proc.ts's cap); scan from where the last scan ended, a line back.
    const from = Math.max(0, live.scanned - 2000);
    const seenBefore = stackTraces(text.slice(from, live.scanned));
    const traces = stackTraces(text.slice(from)).slice(seenBefore.length);
    live.scanned = text.length;
    return traces;
  };

  const check = async (live: Live): Promise<string | undefined> => {
    let last = '';
    const attempts = target.checkAttempts ?? 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        await bounded(target.check(live.running, attempt), 15_000, 'valid request');
        return undefined;
      } catch (error) {
        last = (error as Error).message;
        if (attempt + 1 < attempts) await sleep(300);
      }
    }
    return last;
  };

  let live: Live | undefined;
  try {
    try {
      live = await boot();
    } catch (error) {
      report.alive = false;
      report.findings.push({ target: target.name, batch: 'setup', what: 'setup', message: `cannot start: ${(error as Error).message}`, cases: [] });
      return report;
    }
    report.nofile = await nofileLimit(live.pid);
    const first = await check(live);
    if (first) {
      report.findings.push({ target: target.name, batch: 'setup', what: 'setup', message: `no valid answer before any case: ${first}`, cases: [] });
      return report;
    }
    await sleep(300);
    const base = await sample(live);
    report.baseFds = base.fds ?? 0;
    report.baseRss = base.rss ?? 0;
    const baseKinds = await describeFds(live.pid);
    const fdBound = report.baseFds + options.fdSlack + (target.fdSlack ?? 0);
    const rssBound = report.baseRss + options.rssSlackBytes;
    log(`${target.name}: pid ${live.pid} (${options.runtime}), open-file limit ${report.nofile ?? '?'}, ${report.baseFds} fds, ${(report.baseRss / MB).toFixed(0)} MB at start; ${fixed.length} fixed + ${indices.length} generated cases`);

    const batches: { label: string; cases: () => Case[] }[] = [
      ...fixed.map((c) => ({ label: `fixed ${c.id}`, cases: () => [c] })),
    ];
    for (let i = 0; i < indices.length; i += options.batchSize) {
      const slice = indices.slice(i, i + options.batchSize);
      batches.push({ label: `batch ${batches.length - fixed.length + 1}/${Math.ceil(indices.length / options.batchSize)}`, cases: () => slice.map((n) => generatedCase(target, options.seed, n)) });
    }

    for (const { label, cases: make } of batches) {
      const batch = { label, cases: make() };
      const t0 = performance.now();
      const found: Finding[] = [];
      const note = (what: Finding['what'], message: string) =>
        found.push({ target: target.name, batch: batch.label, what, message, cases: batch.cases.map(({ id, kind, detail }) => ({ id, kind, detail })) });
      const current = live as Live;
      const sampler = setInterval(() => void sample(current), 250);
      const errors = await runPool(batch.cases, current.running, options.concurrency);
      // A fixed case may check what it provoked itself (generated cases never throw): its error is a finding.
      if (label.startsWith('fixed ')) for (const error of errors) note('invalid-answer', `the case saw: ${error}`);
      clearInterval(sampler);
      report.cases += batch.cases.length;
      report.batches++;

      // Let closed connections and timed-out sessions go before counting.
      const settle = async () => {
        const settleUntil = performance.now() + (target.settleMs ?? 5000);
        let sampled = await sample(current);
        while (performance.now() < settleUntil && (await alive(current)) && (sampled.fds ?? 0) > fdBound) {
          await sleep(200);
          sampled = await sample(current);
        }
        return sampled;
      };
      let now = await settle();
      await sleep(100);
      const isUp = await alive(current);
      const traces = newTraces(current);
      report.stackTraces += traces.length;
      if (!isUp) {
        report.alive = false;
        const exit = current.running.proc.exit;
        note('died', `the server ${exit ? describeExit(exit) : 'is gone'}: ${tail(current.running.proc)}`);
      }
      if (traces.length > 0) note('stack-trace', `${traces.length} stack trace(s): ${traces.slice(0, 3).join(' || ')}`);
      let validOk = false;
      if (isUp) {
        report.validAfter.of++;
        const failure = await check(current);
        validOk = failure === undefined;
        if (validOk) report.validAfter.ok++;
        else note('invalid-answer', `no correct answer to a valid request after the batch: ${failure}; the server's last output: ${tail(current.running.proc)}`);
        // The check's own connections (and a proxy's pooled upstream ones) close after it: a leak is what stays.
        now = await settle();
        if ((now.fds ?? 0) > fdBound) note('fd-leak', `${now.fds} descriptors open after the batch settled, ${report.baseFds} at start (bound ${fdBound}); they are: ${await describeFds(current.pid)} (at start: ${baseKinds})`);
        if ((now.rss ?? 0) > rssBound) note('rss-growth', `RSS ${((now.rss ?? 0) / MB).toFixed(0)} MB after the batch, ${(report.baseRss / MB).toFixed(0)} MB at start (bound +${(options.rssSlackBytes / MB).toFixed(0)} MB)`);
      } else {
        report.validAfter.of++;
      }
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      log(
        `${target.name} ${batch.label}: ${batch.cases.length} case(s) in ${seconds} s; ${isUp ? 'alive' : 'DEAD'}; valid ${isUp ? (validOk ? 'ok' : 'FAILED') : '-'}; ` +
          `rss ${((now.rss ?? 0) / MB).toFixed(0)} MB (peak ${(report.peakRss / MB).toFixed(0)}); fds ${now.fds ?? '-'} (peak ${report.peakFds}, bound ${fdBound})` +
          (found.length ? `; FINDINGS: ${found.map((f) => f.what).join(', ')}` : ''),
      );
      for (const f of found) log(`  ! ${f.what}: ${f.message}${batch.cases.length === 1 ? ` [${batch.cases[0]?.id}: ${batch.cases[0]?.detail}]` : ''}`);

      const serious = found.some((f) => f.what === 'died' || f.what === 'stack-trace');
      const leak = found.find((f) => f.what === 'fd-leak');
      const mute = found.find((f) => f.what === 'invalid-answer');
      if ((serious || leak || mute) && options.bisect && batch.cases.length > 1) {
        await stop(current);
        const mode = serious ? 'death' : leak ? 'leak' : 'answer';
        const culprit = await replay(batch.cases, mode);
        const what = { death: ['died', 'stack-trace'], leak: ['fd-leak'], answer: ['invalid-answer'] }[mode];
        for (const f of found) if (culprit && what.includes(f.what)) f.culprit = culprit;
        if (culprit) log(`  ! replayed case by case on a fresh server: ${culprit.id} did it (${culprit.detail})`);
        else log(`  ! replayed case by case on a fresh server: no single case did it (it takes several, or timing)`);
        report.restarts++;
        live = await boot();
      } else if (!isUp || !validOk) {
        // Go on with a fresh server so that the later batches still test something.
        await stop(current);
        report.restarts++;
        live = await boot();
      }
      report.findings.push(...found);
    }
    return report;
  } finally {
    await stop(live);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true }).catch(() => {});
    report.seconds = (performance.now() - started) / 1000;
  }

  /**
   * Replays `cases` one at a time on a fresh server: the first after which
   * it is dead or printed a trace ('death'), or after which it holds more
   * descriptors than before the case once 2 s have passed ('leak'), or
   * after which the valid request is not answered ('answer').
   */
  async function replay(cases: Case[], mode: 'death' | 'leak' | 'answer'): Promise<{ id: string; kind: string; detail: string } | undefined> {
    let fresh: Live | undefined;
    try {
      fresh = await boot();
      newTraces(fresh);
      await sleep(300);
      for (const c of cases) {
        const before = (await openFds(fresh.pid)) ?? 0;
        await bounded(c.run(fresh.running), CASE_BOUND_MS, c.id).catch(() => {});
        await sleep(150);
        const up = await alive(fresh);
        const traces = newTraces(fresh);
        if (!up || traces.length > 0) return mode === 'death' ? { id: c.id, kind: c.kind, detail: c.detail } : undefined;
        if (mode === 'answer') {
          const failure = await check(fresh);
          if (failure) return { id: c.id, kind: c.kind, detail: `${c.detail}; then: ${failure}` };
        }
        if (mode === 'leak') {
          const until = performance.now() + 2000;
          let fds = (await openFds(fresh.pid)) ?? 0;
          while (fds > before && performance.now() < until) {
            await sleep(200);
            fds = (await openFds(fresh.pid)) ?? 0;
          }
          if (fds > before) return { id: c.id, kind: c.kind, detail: `${c.detail}; descriptors ${before} → ${fds}: ${await describeFds(fresh.pid)}` };
        }
      }
      return undefined;
    } catch {
      return undefined;
    } finally {
      await stop(fresh);
    }
  }
}

const mb = (n: number) => `${(n / MB).toFixed(0)} MB`;

/** The final table: one row per target. */
export function formatTable(reports: readonly TargetReport[]): string {
  const header = ['server', 'cases', 'batches', 'alive', 'valid-after', 'peak RSS', 'peak fds', 'stack traces', 'findings', 'time'];
  const rows = reports.map((r) => [
    r.target,
    String(r.cases),
    String(r.batches),
    r.alive ? 'yes' : `NO (${r.restarts} restart${r.restarts === 1 ? '' : 's'})`,
    `${r.validAfter.ok}/${r.validAfter.of}`,
    `${mb(r.peakRss)} (${mb(r.baseRss)})`,
    `${r.peakFds} (${r.baseFds})`,
    String(r.stackTraces),
    String(r.findings.length),
    `${r.seconds.toFixed(0)} s`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Every finding, one paragraph each, with the inputs. */
export function formatFindings(reports: readonly TargetReport[]): string {
  const out: string[] = [];
  for (const r of reports) {
    for (const f of r.findings) {
      out.push(`${f.target} ${f.batch}: ${f.what}: ${f.message}`);
      if (f.culprit) out.push(`    input: ${f.culprit.id} ${f.culprit.kind}: ${f.culprit.detail}`);
      else if (f.cases.length <= 3) for (const c of f.cases) out.push(`    input: ${c.id} ${c.kind}: ${c.detail}`);
      else out.push(`    inputs: ${f.cases.length} cases (${[...new Set(f.cases.map((c) => c.kind))].join(', ')}), ${f.cases[0]?.id} … ${f.cases[f.cases.length - 1]?.id}`);
    }
  }
  return out.join('\n');
}
