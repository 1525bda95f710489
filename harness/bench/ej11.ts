/**
 * The comparison exercise 11 asks for: the reliable-UDP file transfer against
 * the same transfer over TCP (`client.ts --tcp`), on the same impaired path.
 *
 * ```sh
 * npx tsx harness/bench/ej11.ts                        # 3 runs, 16 MiB, loss 0 1 2 5 10 %
 * npx tsx harness/bench/ej11.ts --runs 1 --size 4      # a quick look
 * npx tsx harness/bench/ej11.ts --json > ej11.json --svg ej11/bench.svg
 * ```
 *
 * Path 1 (root only): two network namespaces joined by a veth pair
 * (harness/netns.ts), the server in one, the client in the other, and an
 * nftables rule dropping N % of the packets arriving in each namespace, so
 * data and acknowledgements alike are lost, for UDP and TCP alike. Path 2:
 * the UDP impairment relay (harness/relay.ts) on loopback adding 20 ms each
 * way; TCP has no place there (the relay carries datagrams only, and a TCP
 * proxy would end TCP's own control loop at the proxy), so that row is UDP
 * only.
 *
 * Each transfer is a GET of a random file, timed by the client itself (from
 * its first packet to the verified SHA-256); the figure per cell is the
 * median over runs, goodput in MiB/s. UDP and TCP alternate which goes first.
 * A transfer that fails or runs past `--limit` seconds is counted as failed.
 * Table on stdout (or `--json`), an SVG chart with `--svg`.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand, parsePositive, UsageError } from '../../lib/cli.ts';
import { createLogger, type Logger } from '../../lib/log.ts';
import { isMain, runMain } from '../../lib/main.ts';
import { createNetnsPair, namespaceSupport } from '../netns.ts';
import { Supervisor, freePort, waitReady } from '../proc.ts';
import { startRelay } from '../relay.ts';
import { median } from './stats.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');

/** One cell of the comparison. */
export interface Cell {
  path: string;
  transport: 'udp' | 'tcp';
  /** Seconds of each successful run. */
  seconds: number[];
  failures: number;
  /** Median goodput, MiB/s (undefined when every run failed). */
  mibps?: number;
  medianSeconds?: number;
}

/** Everything measured. */
export interface Ej11Report {
  sizeMiB: number;
  runs: number;
  rows: { path: string; udp: Cell; tcp?: Cell }[];
  skipped: string[];
}

interface RunSpec {
  supervisor: Supervisor;
  command: string[];
  limitMs: number;
}

/** Runs one client transfer and returns its seconds, or undefined when it failed. */
async function transfer({ supervisor, command, limitMs }: RunSpec, log: Logger): Promise<number | undefined> {
  const proc = supervisor.start('client', command, { cwd: ROOT });
  const exit = await proc.waitForExit(limitMs).catch(() => undefined);
  if (!exit || exit.code !== 0) {
    log(`transfer failed (${exit ? `exit ${exit.code}` : `over ${limitMs / 1000} s`}): ${proc.stderr.trim().split('\n').at(-1) ?? ''}`);
    return undefined;
  }
  try {
    return (JSON.parse(proc.stdout.trim().split('\n').at(-1) ?? '') as { seconds: number }).seconds;
  } catch {
    log(`cannot read the client's --json output: ${proc.stdout.slice(0, 200)}`);
    return undefined;
  }
}

function finishCell(cell: Cell, sizeMiB: number): Cell {
  const seconds = median(cell.seconds);
  return seconds === undefined ? cell : { ...cell, medianSeconds: seconds, mibps: sizeMiB / seconds };
}

/** Runs the whole comparison. */
export async function runEj11Bench({ sizeMiB, runs, losses, limitS, log }: { sizeMiB: number; runs: number; losses: number[]; limitS: number; log: Logger }): Promise<Ej11Report> {
  const supervisor = new Supervisor({ PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` });
  const dir = await mkdtemp(path.join(tmpdir(), 'ej11-bench-'));
  const report: Ej11Report = { sizeMiB, runs, rows: [], skipped: [] };
  const limitMs = limitS * 1000;
  try {
    await writeFile(path.join(dir, 'file.bin'), randomBytes(sizeMiB * 1024 * 1024));
    const out = (name: string) => path.join(dir, name);
    const clientArgs = (host: string, port: number, tcp: boolean) => [TSX, 'ej11/client.ts', '--host', host, '--port', String(port), '--get', 'file.bin', '-o', out(tcp ? 'tcp.out' : 'udp.out'), '--json', '--quiet', '--timeout', '30', ...(tcp ? ['--tcp'] : [])];

    const reason = await namespaceSupport();
    if (reason) {
      report.skipped.push(`namespace path: ${reason}`);
      log(`skipping the namespace path: ${reason}`);
    } else {
      const pair = await createNetnsPair();
      try {
        const server = supervisor.start('server', pair.exec('b', [TSX, 'ej11/server.ts', '--host', pair.addrB, '--port', '9011', '--dir', dir, '--quiet']), { cwd: ROOT });
        await waitReady(server, 9011, 'udp', 30_000);
        for (const loss of losses) {
          await pair.setLoss('a', loss);
          await pair.setLoss('b', loss);
          const name = `netns, ${loss} % loss`;
          const cells = { udp: { path: name, transport: 'udp', seconds: [], failures: 0 } as Cell, tcp: { path: name, transport: 'tcp', seconds: [], failures: 0 } as Cell };
          for (let run = 0; run < runs; run++) {
            const order: ('udp' | 'tcp')[] = run % 2 === 0 ? ['udp', 'tcp'] : ['tcp', 'udp'];
            for (const transport of order) {
              const seconds = await transfer({ supervisor, command: pair.exec('a', clientArgs(pair.addrB, 9011, transport === 'tcp')), limitMs }, log);
              if (seconds === undefined) cells[transport].failures++;
              else cells[transport].seconds.push(seconds);
              log(`${name}, ${transport}, run ${run + 1}: ${seconds === undefined ? 'failed' : `${seconds.toFixed(2)} s, ${(sizeMiB / seconds).toFixed(2)} MiB/s`}`);
            }
          }
          report.rows.push({ path: name, udp: finishCell(cells.udp, sizeMiB), tcp: finishCell(cells.tcp, sizeMiB) });
        }
        await server.stop();
      } finally {
        await pair.destroy();
      }
    }

    // The relay path: 20 ms each way on loopback, UDP only.
    const port = await freePort();
    const server = supervisor.start('server', [TSX, 'ej11/server.ts', '--host', '127.0.0.1', '--port', String(port), '--dir', dir, '--quiet'], { cwd: ROOT });
    await waitReady(server, port, 'udp', 30_000);
    const relay = await startRelay({ target: { host: '127.0.0.1', port }, forward: { delayMs: 20 }, backward: { delayMs: 20 } });
    try {
      const name = 'relay, 20 ms each way';
      const cell: Cell = { path: name, transport: 'udp', seconds: [], failures: 0 };
      for (let run = 0; run < runs; run++) {
        const seconds = await transfer({ supervisor, command: clientArgs(relay.host, relay.port, false), limitMs }, log);
        if (seconds === undefined) cell.failures++;
        else cell.seconds.push(seconds);
        log(`${name}, udp, run ${run + 1}: ${seconds === undefined ? 'failed' : `${seconds.toFixed(2)} s`}`);
      }
      report.rows.push({ path: name, udp: finishCell(cell, sizeMiB) });
    } finally {
      await relay.close();
      await server.stop();
    }
    return report;
  } finally {
    await supervisor.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

const fmt = (cell: Cell | undefined, key: 'mibps' | 'medianSeconds', digits: number) => {
  if (!cell) return '—';
  const value = cell[key];
  const failed = cell.failures ? ` (${cell.failures} failed)` : '';
  return value === undefined ? `failed${failed}` : `${value.toFixed(digits)}${failed}`;
};

/** The table: goodput and time per transport, and UDP / TCP. */
export function formatEj11Report(report: Ej11Report): string {
  const header = ['path', 'UDP MiB/s', 'TCP MiB/s', 'UDP/TCP', 'UDP s', 'TCP s'];
  const rows = report.rows.map((row) => [
    row.path,
    fmt(row.udp, 'mibps', 2),
    fmt(row.tcp, 'mibps', 2),
    row.tcp?.mibps && row.udp.mibps ? `${(row.udp.mibps / row.tcp.mibps).toFixed(2)}×` : '—',
    fmt(row.udp, 'medianSeconds', 2),
    fmt(row.tcp, 'medianSeconds', 2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  const lines = [
    `ej11: GET of a ${report.sizeMiB} MiB file, median of ${report.runs} run${report.runs === 1 ? '' : 's'}`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ];
  for (const skipped of report.skipped) lines.push(`skipped: ${skipped}`);
  return `${lines.join('\n')}\n`;
}

/** A small SVG chart: goodput against kernel loss, UDP and TCP (namespace rows only). */
export function renderEj11Svg(report: Ej11Report): string {
  const points = report.rows.flatMap((row) => {
    const loss = /(\d+(?:\.\d+)?) % loss/.exec(row.path);
    return loss ? [{ loss: Number(loss[1]), udp: row.udp.mibps, tcp: row.tcp?.mibps }] : [];
  });
  const width = 640;
  const height = 360;
  const m = { left: 60, right: 20, top: 40, bottom: 60 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const maxLoss = Math.max(1, ...points.map((p) => p.loss));
  const maxY = Math.max(1, ...points.flatMap((p) => [p.udp ?? 0, p.tcp ?? 0])) * 1.1;
  const x = (loss: number) => m.left + (loss / maxLoss) * w;
  const y = (v: number) => m.top + h - (v / maxY) * h;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">ej11: goodput of a ${report.sizeMiB} MiB GET against kernel packet loss</text>`,
    `<rect x="${m.left}" y="${m.top}" width="${w}" height="${h}" fill="none" stroke="#333"/>`,
  ];
  const step = maxY > 50 ? 20 : maxY > 20 ? 10 : maxY > 5 ? 2 : 1;
  for (let v = 0; v <= maxY; v += step) {
    parts.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
  }
  for (const p of points) parts.push(`<text x="${x(p.loss).toFixed(1)}" y="${m.top + h + 18}" text-anchor="middle">${p.loss}</text>`);
  parts.push(`<text x="${m.left + w / 2}" y="${m.top + h + 38}" text-anchor="middle">packet loss in each direction (%)</text>`);
  parts.push(`<text transform="translate(16 ${m.top + h / 2}) rotate(-90)" text-anchor="middle">goodput (MiB/s)</text>`);
  for (const [key, color, label] of [['udp', '#1f77b4', 'reliable UDP (ej11)'], ['tcp', '#d62728', 'TCP (--tcp)']] as const) {
    const pts = points.filter((p) => p[key] !== undefined).map((p) => `${x(p.loss).toFixed(1)},${y(p[key] as number).toFixed(1)}`);
    if (pts.length > 1) parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const pt of pts) parts.push(`<circle cx="${pt.split(',')[0]}" cy="${pt.split(',')[1]}" r="3" fill="${color}"/>`);
    const ly = m.top + 14 + (key === 'udp' ? 0 : 16);
    parts.push(`<line x1="${m.left + w - 150}" x2="${m.left + w - 130}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="3"/><text x="${m.left + w - 124}" y="${ly}">${label}</text>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

const command = defineCommand({
  name: 'bench/ej11.ts',
  summary: 'Compares ej11 reliable UDP with TCP: goodput of a GET at several kernel loss rates (namespaces, root) and over a 20 ms relay.',
  options: {
    runs: { type: 'string', default: '3', help: 'runs per cell (the median is reported)' },
    size: { type: 'string', default: '16', metavar: 'MIB', help: 'file size, MiB' },
    losses: { type: 'string', default: '0,1,2,5,10', metavar: 'LIST', help: 'comma-separated loss rates, percent' },
    limit: { type: 'string', default: '120', metavar: 'SECONDS', help: 'a transfer running longer counts as failed' },
    json: { type: 'boolean', help: 'print the report as JSON' },
    svg: { type: 'string', metavar: 'FILE', help: 'write the chart as SVG' },
  },
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const losses = opts.losses.split(',').map((text) => {
    if (!/^\d{1,2}$/.test(text.trim())) throw new UsageError(`argument --losses: expected integers 0-99 separated by commas, got '${opts.losses}'`);
    return Number(text);
  });
  const log = createLogger('bench-ej11');
  const report = await runEj11Bench({
    sizeMiB: parsePositive(opts.size, 'size', { integer: true }),
    runs: parsePositive(opts.runs, 'runs', { integer: true }),
    losses,
    limitS: parsePositive(opts.limit, 'limit'),
    log,
  });
  if (opts.svg) await writeFile(opts.svg, renderEj11Svg(report));
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatEj11Report(report));
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
