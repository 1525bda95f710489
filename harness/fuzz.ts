/**
 * The fuzz campaign of issue 11: every server of the suite under random and
 * mutated input, with a seed and a budget, so that it can be rerun.
 *
 * ```sh
 * npm run fuzz                                      # every server, 1000 cases each, seed 1
 * npm run fuzz -- --seed 7 --cases 200 --server ej11 --server ej14
 * npm run fuzz -- --case ej11:issue-17-euro         # one case alone (a fixed one, or ej11#123)
 * npm run fuzz -- --runtime deno --json fuzz.json
 * ```
 *
 * Each server runs under a lowered open-file limit (prlimit), started the
 * way the harness starts it (harness/proc.ts: a process group of its own,
 * killed whole). The fixed regression cases run first, each as its own
 * batch; then the generated cases, in batches. After each batch the server
 * must be alive, answer a valid request correctly, hold a bounded number of
 * descriptors and of RSS (read from /proc of the real server process, not
 * tsx), and have printed no stack trace. A final table per server follows;
 * the exit status is 1 when anything was found, 2 on bad usage, 130 on
 * Ctrl-C (after stopping everything it started).
 *
 * @module
 */
import { writeFile } from 'node:fs/promises';
import { defineCommand, parsePositive, UsageError } from '../lib/cli.ts';
import { isMain, runMain } from '../lib/main.ts';
import { type CampaignOptions, formatFindings, formatTable, runTarget, type TargetReport } from './fuzz/campaign.ts';
import { selectTargets, TARGETS } from './fuzz/targets/index.ts';
import type { Supervisor } from './proc.ts';

const command = defineCommand({
  name: 'fuzz',
  summary: 'Fuzz campaign: random and mutated input to every server of the suite, with checks after each batch.',
  options: {
    seed: { type: 'string', default: '1', metavar: 'N', help: 'seed of the cases (the same seed makes the same cases)' },
    cases: { type: 'string', default: '1000', metavar: 'N', help: 'generated cases per server (the fixed regression cases run on top)' },
    server: { type: 'string', multiple: true, metavar: 'NAME', help: 'fuzz only this server (ej11, ej14-mapper, or ej12 for master and slave); repeatable' },
    case: { type: 'string', multiple: true, metavar: 'ID', help: 'run only this case (ej11#123, ej11:issue-17-euro); repeatable' },
    'fixed-only': { type: 'boolean', help: 'run only the fixed regression cases' },
    runtime: { type: 'string', default: 'node', metavar: 'node|deno', help: 'run the servers under Node (tsx) or Deno' },
    batch: { type: 'string', default: '50', metavar: 'N', help: 'cases per batch (the checks run after each)' },
    concurrency: { type: 'string', default: '8', metavar: 'N', help: 'cases in flight at once within a batch' },
    nofile: { type: 'string', default: '256', metavar: 'N', help: 'open-file limit of each fuzzed server (prlimit --nofile=N:N)' },
    'fd-slack': { type: 'string', default: '12', metavar: 'N', help: 'descriptors over the start a server may hold after a batch' },
    'rss-slack': { type: 'string', default: '256', metavar: 'MB', help: 'RSS growth over the start a server may show after a batch' },
    'no-bisect': { type: 'boolean', help: 'do not replay a batch that killed its server case by case' },
    json: { type: 'string', metavar: 'FILE', help: 'write every figure and finding, with the inputs, as JSON to FILE' },
    list: { type: 'boolean', help: 'list the servers and their fixed cases, and exit' },
  },
  epilog: `Servers: ${TARGETS.map((t) => t.name).join(', ')}.
Traffic goes to loopback only. Exit status: 0 nothing found, 1 a finding, 2 bad usage, 130 interrupted.`,
});

const integer = (text: string, option: string, min = 1) => {
  const n = parsePositive(text, option, { integer: true });
  if (n < min) throw new UsageError(`argument --${option}: expected at least ${min}, got '${text}'`);
  return n;
};

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  if (!['node', 'deno'].includes(opts.runtime)) throw new UsageError(`argument --runtime: expected node or deno, got '${opts.runtime}'`);
  if (!/^\d+$/.test(opts.seed) || Number(opts.seed) > 0xffffffff) throw new UsageError(`argument --seed: expected an integer from 0 to 4294967295, got '${opts.seed}'`);
  let targets;
  try {
    targets = selectTargets(opts.server);
  } catch (error) {
    throw new UsageError(`argument --server: ${(error as Error).message}`);
  }
  if (opts.case.length) targets = targets.filter((t) => opts.case.some((id) => id.startsWith(`${t.name}#`) || id.startsWith(`${t.name}:`)));
  if (opts.case.length && targets.length === 0) throw new UsageError(`argument --case: no server has a case ${opts.case.join(' ')} (ids look like ej11#12 or ej11:issue-17-euro)`);
  if (opts.list) {
    for (const t of TARGETS) console.log(`${t.name.padEnd(14)} ${t.title}${(t.fixed ?? []).map((f) => `\n  ${f.id} (${f.finding}): ${f.detail}`).join('')}`);
    return 0;
  }
  const live = new Set<Supervisor>();
  const options: CampaignOptions = {
    seed: Number(opts.seed),
    cases: integer(opts.cases, 'cases', 0),
    batchSize: integer(opts.batch, 'batch'),
    concurrency: integer(opts.concurrency, 'concurrency'),
    runtime: opts.runtime as 'node' | 'deno',
    nofile: integer(opts.nofile, 'nofile', 64),
    fdSlack: integer(opts['fd-slack'], 'fd-slack', 0),
    rssSlackBytes: integer(opts['rss-slack'], 'rss-slack') * 1024 * 1024,
    ...(opts.case.length ? { only: opts.case } : {}),
    fixedOnly: opts['fixed-only'] ?? false,
    bisect: !opts['no-bisect'],
    log: (line) => console.log(line),
    live,
  };

  let interrupted = false;
  const stop = () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write('\nfuzz: interrupted; stopping every process it started\n');
    void Promise.all([...live].map((s) => s.stopAll(500).then(() => s.reapLeftovers()))).finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const started = performance.now();
  console.log(`fuzz: seed ${options.seed}, ${options.cases} cases per server in batches of ${options.batchSize}, ${options.runtime}, open-file limit ${options.nofile}: ${targets.map((t) => t.name).join(', ')}`);
  const reports: TargetReport[] = [];
  for (const target of targets) {
    if (interrupted) break;
    reports.push(await runTarget(target, options));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log('');
  console.log(formatTable(reports));
  const findings = reports.reduce((n, r) => n + r.findings.length, 0);
  const cases = reports.reduce((n, r) => n + r.cases, 0);
  console.log('');
  if (findings > 0) console.log(`Findings:\n${formatFindings(reports)}\n`);
  console.log(`fuzz: ${cases} cases on ${reports.length} server(s) in ${seconds.toFixed(0)} s; ${findings} finding(s)`);
  if (opts.json) await writeFile(opts.json, `${JSON.stringify({ seed: options.seed, cases: options.cases, runtime: options.runtime, nofile: options.nofile, seconds, reports }, null, 2)}\n`);
  return findings > 0 ? 1 : 0;
}

if (isMain(import.meta)) runMain('fuzz', () => main(process.argv.slice(2)));
