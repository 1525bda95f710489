/**
 * The benchmark's results as data (the `--json` output) and as the table a
 * person reads: one row per measurement, one column per server, then the
 * ratios of ej01 to the references.
 *
 * @module
 */
import { median } from './stats.ts';

/** A server under test, as the report names it. */
export interface ServerInfo {
  id: string;
  label: string;
  /** The command line it was started with (`PORT` standing for the port). */
  command: string;
}

/** One measured quantity: a row of the table. */
export interface RowSpec {
  id: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
}

/** A ratio column: the `numerator` server's figure over the `denominator`'s. */
export interface RatioSpec {
  name: string;
  numerator: string;
  denominator: string;
}

/** One row with its figures: per server the median and every run's value (null: the run failed). */
export interface Row extends RowSpec {
  values: Record<string, { median: number | null; runs: (number | null)[] }>;
  /** Per ratio column, the median of the per-run ratios. */
  ratios: Record<string, number | null>;
}

/** Where the figures were measured. */
export interface Machine {
  cpu: string;
  cores: number;
  os: string;
  node: string;
  deno: string;
  socat: string;
}

/** Everything the benchmark reports; `--json` prints exactly this. */
export interface Report {
  date: string;
  machine: Machine;
  settings: { seconds: number; warmupSeconds: number; runs: number; chunkBytes: number; windowBytes: number; messageBytes: number };
  servers: ServerInfo[];
  ratios: RatioSpec[];
  rows: Row[];
  /** Memory details per server, one entry per run (see `memory.ts`). */
  memory: Record<string, unknown[]>;
  notes: string[];
  failures: string[];
}

/**
 * Turns raw figures, `figures[row][server][run]`, into rows. A ratio is
 * taken run by run, from figures measured minutes apart, and then the median
 * of those is reported: on a noisy machine that cancels more drift than a
 * ratio of two medians would.
 */
export function summarize(
  rows: readonly RowSpec[],
  servers: readonly ServerInfo[],
  ratios: readonly RatioSpec[],
  figures: Record<string, Record<string, (number | null)[]>>,
): Row[] {
  return rows.map((spec) => {
    const byServer = figures[spec.id] ?? {};
    const values: Row['values'] = {};
    for (const server of servers) {
      const runs = byServer[server.id] ?? [];
      values[server.id] = { median: median(runs.filter((value) => value !== null)) ?? null, runs };
    }
    const ratioValues: Row['ratios'] = {};
    for (const ratio of ratios) {
      const top = byServer[ratio.numerator] ?? [];
      const bottom = byServer[ratio.denominator] ?? [];
      const perRun: number[] = [];
      top.forEach((value, run) => {
        const reference = bottom[run];
        if (value !== null && reference !== null && reference !== undefined && reference > 0) perRun.push(value / reference);
      });
      ratioValues[ratio.name] = median(perRun) ?? null;
    }
    return { ...spec, values, ratios: ratioValues };
  });
}

/** Three significant digits, never in exponent form: 1234 → "1234", 12.345 → "12.3", 0.98765 → "0.988". */
export function formatFigure(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return 'failed';
  const digits = value === 0 ? 0 : Math.max(0, 2 - Math.floor(Math.log10(Math.abs(value))));
  return value.toFixed(digits);
}

/** A plain-text table with the first column left-aligned and the others right-aligned. */
export function formatColumns(header: string[], body: string[][]): string {
  const all = [header, ...body];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(header), rule, ...body.map(line)].join('\n');
}

/** The whole human-readable report: settings and machine, the table, then the notes and failures. */
export function formatReport(report: Report): string {
  const { machine, settings } = report;
  const header = ['measurement', 'unit', ...report.servers.map((server) => server.label), ...report.ratios.map((ratio) => ratio.name)];
  const body = report.rows.map((row) => [
    `${row.label} (${row.better} is better)`,
    row.unit,
    ...report.servers.map((server) => formatFigure(row.values[server.id]?.median ?? null)),
    ...report.ratios.map((ratio) => {
      const value = row.ratios[ratio.name] ?? null;
      return value === null ? '-' : value.toFixed(2);
    }),
  ]);
  const lines = [
    `TCP echo benchmark: median of ${settings.runs} run${settings.runs === 1 ? '' : 's'}, ` +
      `${settings.seconds} s per measurement after ${settings.warmupSeconds} s of warm-up`,
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.os}; node ${machine.node}, deno ${machine.deno}, socat ${machine.socat}`,
    `date:    ${report.date}`,
    '',
    formatColumns(header, body),
    '',
    ...report.servers.map((server) => `${server.label.padEnd(12)} ${server.command}`),
    '',
    ...report.notes.map((note) => `- ${note}`),
  ];
  if (report.failures.length > 0) {
    lines.push('', `FAILURES (${report.failures.length}):`, ...report.failures.map((failure) => `- ${failure}`));
  }
  return `${lines.join('\n')}\n`;
}
