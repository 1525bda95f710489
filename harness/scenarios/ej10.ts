/**
 * Exercise 10: Cristian's algorithm. Roles: server (with `--skew MS`),
 * client (with `--json` figures: offsetMs, boundMs, rttMs).
 *
 * Tiers. The assignment fixes only the two command lines; it names no
 * transport and no message format, and no option to skew a server or print
 * figures. So the assignment tier is `cli` and `exchange`: the pair started
 * as the assignment shows talks over the transport the manifest declares
 * (`[ej10.declare] transport = udp|tcp`) or, undeclared, the one the server
 * was seen to bind (both are offered when it binds both), and the client
 * reports a time near the truth. Everything measured with `--skew`, `--json`,
 * `--probes`, `--timeout`, `--retries` or `--watch` is beyond.
 *
 * The path is shaped by the harness UDP relay (harness/relay.ts) that
 * adds a known delay to each direction or loses chosen replies, so the
 * client's estimate can be compared with the skew the server was given.
 *
 * @module
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { isPortBound, type Proc } from '../proc.ts';
import { type Faults, type Relay, startRelay } from '../relay.ts';
import { type ClientRun, type Context, cliRequirement, defineScenario, type Server, TRACEBACK } from '../scenario.ts';
import { closeUdp, udpSocket } from '../wire.ts';


/** The figures the client prints with --json. */
interface Figures {
  offsetMs: number;
  boundMs: number;
  rttMs: number;
  lost?: number;
}

function figures(ctx: Context, run: ClientRun, what: string): Figures | undefined {
  ctx.t.equal(run.exit.code, 0, `${what}: exit 0 (stderr: ${run.stderr.trim().slice(0, 200) || 'empty'})`);
  try {
    const value = JSON.parse(run.stdout) as Figures;
    if (typeof value.offsetMs !== 'number' || typeof value.boundMs !== 'number') throw new Error('no offsetMs/boundMs');
    return value;
  } catch (error) {
    ctx.t.fail(`${what}: --json printed ${JSON.stringify(run.stdout.slice(0, 200))} (${(error as Error).message})`);
    return undefined;
  }
}

async function measure(ctx: Context, where: { host: string; port: number }, extra: string[] = []): Promise<{ run: ClientRun; figures: Figures | undefined }> {
  const run = await ctx.client('client', ['--json', '--host', where.host, '--port', String(where.port), ...extra]);
  return { run, figures: figures(ctx, run, `client ${extra.join(' ')}`.trim()) };
}

/** Runs `fn` with a relay in front of `server`: `forward` faults towards it, `backward` on the replies. */
async function throughRelay<T>(server: Server, forward: Faults, backward: Faults, fn: (relay: Relay) => Promise<T>): Promise<T> {
  const relay = await startRelay({ target: { host: server.host, port: server.port }, forward, backward, recordDelays: true });
  try {
    return await fn(relay);
  } finally {
    await relay.close();
  }
}


/**
 * Starts the server with the assignment's command line (`--host 127.0.0.1
 * --port P`) and waits until it printed a `listening on` line or has held
 * P for a second; returns which transports it holds P on.
 */
async function startServerAnyTransport(ctx: Context): Promise<{ proc: Proc; port: number; bound: ('udp' | 'tcp')[] } | undefined> {
  const port = await ctx.port();
  const proc = ctx.supervisor.start('server', [...ctx.command('server'), '--host', ctx.host, '--port', String(port)], { cwd: ctx.target.cwd });
  let bound: ('udp' | 'tcp')[] = [];
  let since: number | undefined;
  const poll = setInterval(() => {
    void Promise.all([isPortBound(port, 'udp', proc.pid), isPortBound(port, 'tcp', proc.pid)]).then(([udp, tcp]) => {
      bound = [...(udp ? ['udp' as const] : []), ...(tcp ? ['tcp' as const] : [])];
      if (bound.length === 0) since = undefined;
      else since ??= performance.now();
    });
  }, 50);
  try {
    await proc.until(() => ((/^listening on /m.test(proc.stdout) && bound.length > 0) || (since !== undefined && performance.now() - since >= 1000) ? true : undefined), 20_000, `port ${port} bound (UDP or TCP)`);
  } catch {
    ctx.t.fail(`expected the server to bind UDP or TCP port ${port} within 20 s; observed: ${proc.exit ? `exited ${proc.exit.code ?? proc.exit.signal}` : 'nothing bound'}, stderr: ${proc.stderr.trim().slice(-300) || 'empty'}`);
    return undefined;
  } finally {
    clearInterval(poll);
  }
  return { proc, port, bound };
}

/** A TCP forwarder on `listenPort` to the server, counting bytes each way. */
async function tcpCounter(listenPort: number, target: { host: string; port: number }): Promise<{ up: number; down: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const counts = { up: 0, down: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => (counts.up += chunk.length));
    upstream.on('data', (chunk: Buffer) => (counts.down += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', resolve);
  });
  return {
    get up() { return counts.up; },
    get down() { return counts.down; },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** The times of day (HH:MM:SS, seconds since midnight) a text shows. */
function timesOfDay(text: string): number[] {
  return [...text.matchAll(/\b([01]\d|2[0-3]):([0-5]\d):([0-5]\d)/g)].map((m) => Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]));
}

/** How far a time of day is from `date`'s, in UTC or local time, whichever is nearer (seconds, across midnight). */
function secondsFrom(seconds: number, date: Date): number {
  const utc = date.getUTCHours() * 3600 + date.getUTCMinutes() * 60 + date.getUTCSeconds();
  const local = date.getHours() * 3600 + date.getMinutes() * 60 + date.getSeconds();
  const apart = (a: number, b: number) => Math.min(Math.abs(a - b), 86_400 - Math.abs(a - b));
  return Math.min(apart(seconds, utc), apart(seconds, local));
}

const SKEW = 2500;
/** What a client says when nothing answered; option names (`--timeout`) are taken out first, so a usage message cannot say it. */
const SILENT = /no reply|no answer|not answer|timed out|sin respuesta|no respond/i;
/** What it says when nothing listens (an ICMP port unreachable), or, where that is not seen, that nothing answered. */
const REFUSED = /nothing listens|refused|unreachable|no reply|no answer|not answer|timed out|sin respuesta|no respond|rechaz/i;

/**
 * The client gave up on `port` as it should: exit 1-ish (not 0, not 2, the
 * usage status), a message that names the port and says why, no stack trace.
 */
function checkNoAnswer(ctx: Context, run: ClientRun, port: number, why: RegExp, what: string): void {
  const said = run.stderr.replace(/--?[a-z][\w-]*/gi, ' ');
  const observed = `exit ${run.exit.code ?? run.exit.signal}, stderr: ${JSON.stringify(run.stderr.trim().slice(-200))}`;
  ctx.t.ok(run.exit.code !== 0 && run.exit.code !== 2 && run.exit.code !== null, `${what}: expected a non-zero exit that is not 2 (bad usage); observed ${observed}`);
  ctx.t.ok(why.test(said) && said.includes(String(port)), `${what}: expected a message naming port ${port} and saying ${why.source}; observed ${observed}`);
  ctx.t.notMatch(run.stderr, TRACEBACK, `${what}: no stack trace`);
}

/** What every beyond requirement passes that the assignment's command lines do not have. */
const MEASURED = ['--skew', '--json', '--probes'];

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

/** The delays the relay really applied (timers fire late), for the report. */
function applied(relay: Relay): string {
  return `relay applied ${median(relay.appliedDelays.forward).toFixed(3)} ms out and ${median(relay.appliedDelays.backward).toFixed(3)} ms back (medians)`;
}

export default defineScenario('ej10', "Cristian's algorithm: a UTC time server and a client that corrects for its offset", [
  { ...cliRequirement({ server: [/--host HOST/, /--port PORT/], client: [/--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    id: 'exchange',
    tier: 'assignment',
    title: 'the client started as the assignment shows asks the server over its transport (declared, or the one it binds), gets an answer, and reports a time near the true one',
    roles: ['server', 'client'],
    async run(ctx) {
      const declared = ctx.declared('transport');
      if (declared !== undefined && declared !== 'udp' && declared !== 'tcp') ctx.notApplicable(`[ej10.declare] transport = ${declared} is not understood (expected udp or tcp)`);
      const server = await startServerAnyTransport(ctx);
      if (!server) return;
      const offered = declared ? [declared as 'udp' | 'tcp'] : server.bound;
      if (declared && !server.bound.includes(declared as 'udp' | 'tcp')) {
        ctx.t.fail(`expected the server to bind ${declared.toUpperCase()} port ${server.port} (the manifest declares transport = ${declared}); observed ${server.bound.join(' and ').toUpperCase()}`);
        return;
      }
      // One front port for both transports, so the client needs only --port.
      const front = await ctx.port();
      const udp = offered.includes('udp') ? await startRelay({ target: { host: ctx.host, port: server.port }, listenPort: front }) : undefined;
      const tcp = offered.includes('tcp') ? await tcpCounter(front, { host: ctx.host, port: server.port }) : undefined;
      try {
        const asked = new Date();
        const run = await ctx.client('client', ['--host', ctx.host, '--port', String(front)], { timeoutMs: 20_000 });
        const udpTalk = udp ? `UDP: ${udp.counters.forward.received} requests, ${udp.counters.backward.delivered} answers` : '';
        const tcpTalk = tcp ? `TCP: ${tcp.up} bytes up, ${tcp.down} bytes down` : '';
        const talked = (udp !== undefined && udp.counters.forward.received > 0 && udp.counters.backward.delivered > 0) || (tcp !== undefined && tcp.up > 0 && tcp.down > 0);
        ctx.t.ok(talked, `expected the client to ask the server and get an answer over ${offered.join(' or ').toUpperCase()}; observed ${[udpTalk, tcpTalk].filter(Boolean).join('; ')}`);
        if (run.timedOut) ctx.t.comment('the client was still running after 20 s (it may keep adjusting): stopped');
        else ctx.t.equal(run.exit.code, 0, `expected the client to exit 0; observed exit ${run.exit.code ?? run.exit.signal}, stderr: ${run.stderr.trim().slice(-200) || 'empty'}`);
        ctx.t.match(run.stdout, /\S/, 'the client reports something on stdout');
        const times = timesOfDay(run.stdout);
        if (times.length === 0) ctx.t.comment('the client printed no time of day (HH:MM:SS): its report is not checked against the clock');
        else {
          const nearest = Math.min(...times.map((time) => secondsFrom(time, asked)));
          ctx.t.ok(nearest <= 5, `expected a time of day it printed within 5 s of the true time (the server is not skewed); observed the nearest ${nearest} s off: ${JSON.stringify(run.stdout.slice(0, 300))}`);
        }
        ctx.t.notMatch(run.stderr, TRACEBACK, 'the client printed no stack trace');
        ctx.t.equal(server.proc.exit, undefined, 'the server is still running');
      } finally {
        await udp?.close();
        await tcp?.close();
      }
    },
  },
  {
    id: 'skew',
    tier: 'beyond',
    features: MEASURED,
    title: 'a server with --skew 2500 is measured at 2500 ms within the reported bound (and --skew=-1000 at -1000)',
    roles: ['server', 'client'],
    async run(ctx) {
      for (const skew of [SKEW, -1000]) {
        const server = await ctx.server('server', 'udp', [`--skew=${skew}`]);
        for (let i = 0; i < 3; i++) {
          const { figures: f } = await measure(ctx, server, ['--probes', '8']);
          if (!f) continue;
          const error = f.offsetMs - skew;
          ctx.t.ok(Math.abs(error) <= f.boundMs, `skew ${skew}: offset ${f.offsetMs.toFixed(3)} ms, error ${error.toFixed(3)} ms within ±${f.boundMs.toFixed(3)} ms`);
          ctx.t.ok(f.boundMs > 0 && f.boundMs < 500, `the bound (${f.boundMs.toFixed(3)} ms) is half a loopback round trip (under 500 ms even on a busy machine), not a blanket`);
        }
        await server.proc.stop();
      }
      const human = await ctx.server('server', 'udp', [`--skew=${SKEW}`]);
      const run = await ctx.client('client', ['--host', human.host, '--port', String(human.port)]);
      ctx.t.match(run.stdout, /\+?2[45]\d\d\.\d+ ms ± \d+\.\d+ ms/, `the human report shows the offset and its bound (${run.stdout.split('\n').find((l) => /±/.test(l))?.trim()})`);
    },
  },
  {
    id: 'delay-symmetric',
    tier: 'beyond',
    features: [...MEASURED, '--timeout'],
    title: 'with 20 ms added each way, the estimate stays within its bound and near the truth',
    roles: ['server', 'client'],
    async run(ctx) {
      const server = await ctx.server('server', 'udp', [`--skew=${SKEW}`]);
      await throughRelay(server, { delayMs: 20 }, { delayMs: 20 }, async (relay) => {
        const { figures: f } = await measure(ctx, relay, ['--probes', '5', '--timeout', '1']);
        if (!f) return;
        const error = f.offsetMs - SKEW;
        ctx.t.ok(f.rttMs >= 40, `round trip ${f.rttMs.toFixed(3)} ms includes the 40 ms added`);
        ctx.t.ok(Math.abs(error) <= f.boundMs, `error ${error.toFixed(3)} ms within ±${f.boundMs.toFixed(3)} ms`);
        // Timers are late by the event loop's jitter, in each direction independently.
        ctx.t.ok(Math.abs(error) <= 3, `symmetric legs: the error (${error.toFixed(3)} ms) is small beside the bound`);
        ctx.t.comment(`symmetric 20/20 ms: rtt ${f.rttMs.toFixed(3)} ms, offset ${f.offsetMs.toFixed(3)} ms, error ${error.toFixed(3)} ms, bound ±${f.boundMs.toFixed(3)} ms; ${applied(relay)}`);
      });
    },
  },
  {
    id: 'delay-asymmetric',
    tier: 'beyond',
    features: [...MEASURED, '--timeout'],
    title: 'with 40 ms out and 5 ms back, the estimate errs by half the difference (17.5 ms), still within its bound',
    roles: ['server', 'client'],
    async run(ctx) {
      const server = await ctx.server('server', 'udp', [`--skew=${SKEW}`]);
      await throughRelay(server, { delayMs: 40 }, { delayMs: 5 }, async (relay) => {
        const { figures: f } = await measure(ctx, relay, ['--probes', '5', '--timeout', '1']);
        if (!f) return;
        const error = f.offsetMs - SKEW;
        ctx.t.ok(Math.abs(error) <= f.boundMs, `error ${error.toFixed(3)} ms within ±${f.boundMs.toFixed(3)} ms: the bound holds whatever the asymmetry`);
        ctx.t.ok(Math.abs(error - 17.5) <= 3, `the error is (40 − 5) / 2 = 17.5 ms (measured ${error.toFixed(3)} ms): RTT/2 assumes equal legs`);
        ctx.t.comment(`asymmetric 40/5 ms: rtt ${f.rttMs.toFixed(3)} ms, offset ${f.offsetMs.toFixed(3)} ms, error ${error.toFixed(3)} ms, bound ±${f.boundMs.toFixed(3)} ms; ${applied(relay)}`);
      });
    },
  },
  {
    id: 'lost-reply',
    tier: 'beyond',
    features: [...MEASURED, '--timeout'],
    title: 'a lost reply is retried and the estimate is still right',
    roles: ['server', 'client'],
    async run(ctx) {
      const server = await ctx.server('server', 'udp', [`--skew=${SKEW}`]);
      await throughRelay(server, {}, { drop: (n) => n === 1 || n === 4 }, async (relay) => {
        const { figures: f } = await measure(ctx, relay, ['--probes', '4', '--timeout', '0.3']);
        const { forward, backward } = relay.counters;
        ctx.t.equal(backward.dropped, 2, 'the relay lost two replies');
        ctx.t.ok(forward.received >= 6, `the client sent ${forward.received} requests for 4 probes: it retried`);
        if (!f) return;
        ctx.t.ok(Math.abs(f.offsetMs - SKEW) <= f.boundMs, `offset ${f.offsetMs.toFixed(3)} ms is ${SKEW} within ±${f.boundMs.toFixed(3)} ms`);
        if (f.lost !== undefined) ctx.t.equal(f.lost, 2, 'it reports 2 lost tries');
      });
    },
  },
  {
    id: 'silence',
    tier: 'beyond',
    features: ['--timeout', '--retries'],
    title: 'total silence, and a port with nothing on it, give a clear error, not a hang',
    roles: ['client'],
    async run(ctx) {
      const socket = await udpSocket();
      try {
        const port = socket.address().port;
        const run = await ctx.client('client', ['--host', '127.0.0.1', '--port', String(port), '--timeout', '0.2', '--retries', '2']);
        ctx.t.notOk(run.timedOut, `it gave up by itself (${(run.durationMs / 1000).toFixed(1)} s)`);
        checkNoAnswer(ctx, run, port, SILENT, 'silence');
      } finally {
        await closeUdp(socket);
      }
      const closed = await ctx.port();
      const refused = await ctx.client('client', ['--host', '127.0.0.1', '--port', String(closed), '--timeout', '0.2', '--retries', '1']);
      ctx.t.notOk(refused.timedOut, `nothing listening: it gave up by itself (${(refused.durationMs / 1000).toFixed(1)} s)`);
      checkNoAnswer(ctx, refused, closed, REFUSED, 'nothing listening');
    },
  },
  {
    id: 'malformed',
    tier: 'beyond',
    features: MEASURED,
    title: 'malformed datagrams do not stop the server',
    roles: ['server', 'client'],
    async run(ctx) {
      const server = await ctx.server('server', 'udp', [`--skew=${SKEW}`]);
      const socket = dgram.createSocket('udp4');
      for (let i = 0; i < 200; i++) socket.send(randomBytes(i % 40), server.port, server.host);
      socket.send(Buffer.from('CR'), server.port, server.host);
      await new Promise((resolve) => setTimeout(resolve, 300));
      socket.close();
      const { figures: f } = await measure(ctx, server, ['--probes', '3']);
      ctx.t.equal(server.proc.exit, undefined, 'the server is still running');
      if (f) ctx.t.ok(Math.abs(f.offsetMs - SKEW) <= f.boundMs, 'and still measured right');
    },
  },
  {
    id: 'watch',
    tier: 'beyond',
    features: ['--skew', '--watch', '--ticks'],
    title: '--watch shows the corrected clock ticking, 2.5 s ahead of the local one',
    roles: ['server', 'client'],
    async run(ctx) {
      const server = await ctx.server('server', 'udp', [`--skew=${SKEW}`]);
      const run = await ctx.client('client', ['--watch', '--ticks', '3', '--host', server.host, '--port', String(server.port)]);
      ctx.t.equal(run.exit.code, 0, 'exit 0 after 3 ticks');
      const ticks = [...run.stdout.matchAll(/corrected (\S+)\s+local (\S+)/g)];
      ctx.t.equal(ticks.length, 3, `3 ticks printed`);
      for (const [, corrected, local] of ticks) {
        const ahead = Date.parse(corrected!) - Date.parse(local!);
        ctx.t.ok(Math.abs(ahead - SKEW) <= 2, `corrected ${corrected} is ${ahead} ms ahead of local`);
      }
    },
  },
]);
