/**
 * Exercise 4: round-trip delay (RFC 2681) over UDP and TCP. Role: rtt.
 *
 * The meter is judged on a path whose faults the harness knows: its own echo
 * server behind the impairment relay (harness/relay.ts), which adds a delay
 * with jitter and drops a share of the probes. The meter must measure them.
 * Hosts are given through the assignment's files, `IPsUDP.txt` and
 * `IpsTCP.txt` (also as `IPsTCP.txt`), in a temporary working folder: IPs
 * only for the assignment tier; `host:port` entries (this project's, so
 * that the harness's own echo and relay can be reached) for the beyond
 * tier, with `--intervalo`, `--timeout` and `--hosts`.
 *
 * @module
 */
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatCounters, startRelay } from '../relay.ts';
import { type ClientRun, type Context, cliRequirement, defineScenario, TRACEBACK } from '../scenario.ts';
import { closeUdp, udpSocket } from '../wire.ts';

/** One host's block of the assignment's output, read back from the text. */
interface Block {
  label: string;
  sent: number;
  received: number;
  lost: number;
  avg?: number;
  median?: number;
}

/** Reads every `Estadísticas IP:` block of a run's stdout, in order. */
export function readBlocks(stdout: string): Block[] {
  const blocks: Block[] = [];
  const pattern = /Estad[ií]sticas IP: *(\S+)[^\n]*\n\s*Paquetes: *enviados=(\d+), *Recibido=(\d+), *Perdido=(\d+)[^\n]*\n\s*Promedio=([\d.]+)?[^\n]*(?:\n[^\n]*mediana=([\d.]+))?/gi;
  for (const m of stdout.matchAll(pattern)) {
    blocks.push({
      label: m[1] as string,
      sent: Number(m[2]),
      received: Number(m[3]),
      lost: Number(m[4]),
      ...(m[5] === undefined ? {} : { avg: Number(m[5]) }),
      ...(m[6] === undefined ? {} : { median: Number(m[6]) }),
    });
  }
  return blocks;
}

function blockFor(ctx: Context, run: ClientRun, port: number, what: string): Block | undefined {
  const block = readBlocks(run.stdout).find((b) => b.label.endsWith(`:${port}`));
  ctx.t.ok(block, `${what}: a block "Estadísticas IP: …:${port}" with its Paquetes line (stdout: ${JSON.stringify(run.stdout.slice(0, 300))})`);
  return block;
}

/** The run ended by itself, with status 0 (every host answered) or 1 (a host never answered, as fping). */
function checkRan(ctx: Context, run: ClientRun, what: string, code = 0): void {
  ctx.t.notOk(run.timedOut, `${what}: finished by itself (took ${(run.durationMs / 1000).toFixed(1)} s)`);
  ctx.t.equal(run.exit.code, code, `${what}: exit status ${code}${code === 1 ? ' (a host never answered)' : ''} (stderr: ${run.stderr.trim().slice(0, 300) || 'empty'})`);
}

async function udpEcho(ctx: Context): Promise<dgram.Socket> {
  const socket = await udpSocket(ctx.host, await ctx.port());
  socket.on('message', (m, from) => socket.send(m, from.port, from.address));
  return socket;
}

/**
 * Runs rtt from a temporary working folder holding the assignment's host
 * files (`IPsUDP.txt`, and `IpsTCP.txt` in both spellings), so that a submission is driven through
 * the interface the assignment gives it.
 */
async function withHostFiles(ctx: Context, files: { udp?: string; tcp?: string }, args: string[], timeoutMs = 40_000): Promise<ClientRun> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej04-hosts-'));
  try {
    if (files.udp !== undefined) await writeFile(path.join(dir, 'IPsUDP.txt'), `${files.udp}\n`);
    // The assignment spells the TCP file both ways (IpsTCP.txt in its text, IPsTCP.txt beside IPsUDP.txt): both, the same.
    if (files.tcp !== undefined) for (const name of ['IpsTCP.txt', 'IPsTCP.txt']) await writeFile(path.join(dir, name), `${files.tcp}\n`);
    return await clientIn(ctx, dir, args, timeoutMs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs a role's command from another working folder, its relative file arguments made absolute. */
async function clientIn(ctx: Context, dir: string, args: string[], timeoutMs = 30_000): Promise<ClientRun> {
  const words = ctx.command('rtt').map((word) => (!path.isAbsolute(word) && /[./]/.test(word) && existsSync(path.join(ctx.target.cwd, word)) ? path.join(ctx.target.cwd, word) : word));
  return ctx.exec('rtt', [...words, ...args], { cwd: dir, timeoutMs });
}

export default defineScenario('ej04', 'Round-trip delay (RFC 2681) over UDP and TCP', [
  { ...cliRequirement({ rtt: [/--segundos SEGUNDOS/, /--udp/, /--tcp/] }), tier: 'assignment' },
  {
    id: 'assignment-run',
    tier: 'assignment',
    title: "as the assignment runs it: --udp --tcp --segundos 2 with IPsUDP.txt and IpsTCP.txt listing IPs (';'), one block per IP and protocol, enviados = Recibido + Perdido",
    roles: ['rtt'],
    async run(ctx) {
      // The assignment's files hold IPs only, and it names no port to probe: where the probes go is
      // the submission's choice, so only what its output shows is graded, not the figures.
      const hosts = ['127.0.0.1', '127.0.0.2'];
      const run = await withHostFiles(ctx, { udp: hosts.join(';'), tcp: hosts.join(';') }, ['--udp', '--tcp', '--segundos', '2'], 60_000);
      ctx.t.notOk(run.timedOut, `it finished by itself (took ${(run.durationMs / 1000).toFixed(1)} s)`);
      ctx.t.notMatch(run.stderr, TRACEBACK, `no stack trace (stderr: ${run.stderr.trim().split('\n').slice(-2).join(' | ') || 'empty'})`);
      const blocks = readBlocks(run.stdout);
      for (const host of hosts) {
        const found = blocks.filter((b) => b.label === host || b.label.startsWith(`${host}:`));
        ctx.t.equal(found.length, 2, `two blocks "Estadísticas IP: ${host}" (UDP and TCP): observed ${found.length} (stdout: ${JSON.stringify(run.stdout.slice(0, 200))})`);
        for (const b of found) ctx.t.equal(b.sent, b.received + b.lost, `${host}: enviados=${b.sent} is Recibido=${b.received} + Perdido=${b.lost}`);
      }
    },
  },
  {
    // host:port entries, --intervalo and --timeout are this project's; the assignment's files hold IPs only.
    id: 'udp-accuracy',
    tier: 'beyond',
    features: ['--intervalo', '--timeout', 'format:host-port'],
    title: 'behind a relay adding 40 ± 5 ms and dropping 10 %, UDP median is 40 ± 6 ms and loss 10 ± 5 % (300 probes)',
    roles: ['rtt'],
    timeoutMs: 60_000,
    async run(ctx) {
      const echo = await udpEcho(ctx);
      const relay = await startRelay({
        target: { host: ctx.host, port: echo.address().port },
        forward: { delayMs: 40, jitterMs: 5, loss: 0.1 },
        seed: 2681,
      });
      try {
        const run = await withHostFiles(ctx, { udp: `${relay.host}:${relay.port}` }, ['--udp', '--segundos', '15', '--intervalo', '0.05', '--timeout', '0.5']);
        checkRan(ctx, run, 'rtt --udp through the relay');
        const block = blockFor(ctx, run, relay.port, 'relay');
        ctx.t.comment(`relay forward: ${formatCounters(relay.counters.forward)}`);
        if (!block) return;
        ctx.t.ok(block.sent >= 250, `enough probes to judge: ${block.sent} sent (15 s at 0.05 s)`);
        ctx.t.equal(block.sent, block.received + block.lost, 'enviados = Recibido + Perdido');
        ctx.t.equal(block.lost, relay.counters.forward.dropped, `Perdido equals what the relay dropped (${relay.counters.forward.dropped})`);
        const loss = (100 * block.lost) / Math.max(1, block.sent);
        ctx.t.ok(Math.abs(loss - 10) <= 5, `measured loss ${loss.toFixed(1)} % is within 10 ± 5 %`);
        const median = block.median ?? block.avg;
        ctx.t.ok(median !== undefined && Math.abs(median - 40) <= 6, `measured ${block.median === undefined ? 'average' : 'median'} ${median} ms is within 40 ± 6 ms`);
      } finally {
        await relay.close();
        await closeUdp(echo);
      }
    },
  },
  {
    id: 'tcp-open-closed',
    tier: 'beyond',
    features: ['--intervalo', 'format:host-port'],
    title: 'TCP: every connect to an open port is timed; every one to a closed port is lost',
    roles: ['rtt'],
    async run(ctx) {
      const server = net.createServer((socket) => socket.destroy());
      const openPort = await ctx.port();
      await new Promise<void>((resolve) => server.listen(openPort, ctx.host, resolve));
      const closedPort = await ctx.port();
      try {
        const run = await withHostFiles(ctx, { tcp: `${ctx.host}:${openPort};${ctx.host}:${closedPort}` }, ['--tcp', '--segundos', '1', '--intervalo', '0.2'], 20_000);
        checkRan(ctx, run, 'rtt --tcp', 1);
        ctx.t.match(run.stderr, new RegExp(`:${closedPort} never answered`), 'stderr names the host that never answered');
        const open = blockFor(ctx, run, openPort, 'open port');
        const closed = blockFor(ctx, run, closedPort, 'closed port');
        if (open) ctx.t.ok(open.sent >= 4 && open.received === open.sent && open.lost === 0, `open port: every probe answered (enviados=${open.sent}, Recibido=${open.received})`);
        if (closed) ctx.t.ok(closed.sent >= 4 && closed.received === 0 && closed.lost === closed.sent, `closed port: every probe lost (enviados=${closed.sent}, Perdido=${closed.lost})`);
        ctx.t.notMatch(run.stderr, TRACEBACK, 'no stack trace for the refused connections');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    },
  },
  {
    id: 'no-stall',
    tier: 'beyond',
    features: ['--hosts', '--intervalo', '--timeout'],
    title: 'a host that never answers does not stall the others: both are probed at the same pace',
    roles: ['rtt'],
    async run(ctx) {
      const echo = await udpEcho(ctx);
      const sink = await udpSocket(ctx.host, await ctx.port());
      let swallowed = 0;
      sink.on('message', () => swallowed++);
      try {
        const [echoPort, sinkPort] = [echo.address().port, sink.address().port];
        const run = await ctx.client('rtt', ['--udp', '--hosts', `${ctx.host}:${sinkPort};${ctx.host}:${echoPort}`, '--segundos', '3', '--intervalo', '0.2', '--timeout', '1'], { timeoutMs: 20_000 });
        ctx.t.comment('hosts given with --hosts here; the other requirements use IPsUDP.txt / IpsTCP.txt');
        checkRan(ctx, run, 'rtt with a silent host', 1);
        ctx.t.ok(run.durationMs < 12_000, `it ended soon after its 3 s (took ${(run.durationMs / 1000).toFixed(1)} s)`);
        const good = blockFor(ctx, run, echoPort, 'answering host');
        const silent = blockFor(ctx, run, sinkPort, 'silent host');
        if (good) ctx.t.ok(good.sent >= 10 && good.received === good.sent, `the answering host got every reply (enviados=${good.sent}, Recibido=${good.received})`);
        if (silent) ctx.t.ok(silent.sent >= 10 && silent.lost === silent.sent, `the silent host lost every probe (enviados=${silent.sent}, Perdido=${silent.lost})`);
        if (good && silent) ctx.t.equal(good.sent, silent.sent, 'both hosts were probed the same number of times');
        ctx.t.equal(swallowed, silent?.sent ?? swallowed, 'the silent host did receive each probe');
      } finally {
        await Promise.all([closeUdp(echo), closeUdp(sink)]);
      }
    },
  },
  {
    // An error naming the file's line is this project's convention; the assignment defines no error.
    id: 'bad-file-line',
    tier: 'beyond',
    features: ['format:host-port', 'errors:line'],
    title: 'an IPsUDP.txt with a bad entry gets a clear error naming the line, and no stack trace',
    roles: ['rtt'],
    async run(ctx) {
      const dir = await mkdtemp(path.join(tmpdir(), 'ej04-hosts-'));
      try {
        await writeFile(path.join(dir, 'IPsUDP.txt'), `${ctx.host};\n${ctx.host}:7;not a host!\n`);
        const run = await clientIn(ctx, dir, ['--udp', '--segundos', '1']);
        ctx.t.notOk(run.timedOut, 'it gave up by itself');
        ctx.t.ok(run.exit.code !== 0 && run.exit.code !== null, `exit status is non-zero (was ${run.exit.code ?? run.exit.signal})`);
        ctx.t.match(run.stderr, /line 2|l[ií]nea 2/i, `stderr names line 2 (${JSON.stringify(run.stderr.slice(0, 200))})`);
        ctx.t.match(run.stderr, /not a host!/, 'and quotes the bad entry');
        ctx.t.notMatch(run.stderr, TRACEBACK, 'no stack trace');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  },
]);
