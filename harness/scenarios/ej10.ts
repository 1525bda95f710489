/**
 * Exercise 10: Cristian's algorithm. Roles: server (with `--skew MS`),
 * client (with `--json` figures: offsetMs, boundMs, rttMs).
 *
 * The path is shaped by the harness UDP relay (harness/relay.ts) that
 * adds a known delay to each direction or loses chosen replies, so the
 * client's estimate can be compared with the skew the server was given.
 *
 * @module
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
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

const SKEW = 2500;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

/** The delays the relay really applied (timers fire late), for the report. */
function applied(relay: Relay): string {
  return `relay applied ${median(relay.appliedDelays.forward).toFixed(3)} ms out and ${median(relay.appliedDelays.backward).toFixed(3)} ms back (medians)`;
}

export default defineScenario('ej10', "Cristian's algorithm: a UTC time server and a client that corrects for its offset", [
  cliRequirement({ server: [/--host HOST/, /--port PORT/], client: [/--host HOST/, /--port PORT/] }),
  {
    id: 'skew',
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
    title: 'total silence, and a port with nothing on it, give a clear error, not a hang',
    roles: ['client'],
    async run(ctx) {
      const socket = await udpSocket();
      try {
        const port = socket.address().port;
        const run = await ctx.client('client', ['--host', '127.0.0.1', '--port', String(port), '--timeout', '0.2', '--retries', '2']);
        ctx.t.notOk(run.timedOut, `it gave up by itself (${(run.durationMs / 1000).toFixed(1)} s)`);
        ctx.t.ok(run.exit.code !== 0 && run.exit.code !== null, `exit status non-zero (${run.exit.code})`);
        ctx.t.match(run.stderr, /no reply|no answer|timed? ?out/i, `it says nothing answered (${run.stderr.trim().slice(0, 160)})`);
        ctx.t.notMatch(run.stderr, TRACEBACK, 'no stack trace');
      } finally {
        await closeUdp(socket);
      }
      const closed = await ctx.port();
      const refused = await ctx.client('client', ['--host', '127.0.0.1', '--port', String(closed), '--timeout', '0.2', '--retries', '1']);
      ctx.t.ok(refused.exit.code !== 0 && !refused.timedOut, `nothing listening: non-zero exit (${refused.exit.code})`);
      ctx.t.match(refused.stderr, /\S/, `and a message (${refused.stderr.trim().slice(0, 160)})`);
      ctx.t.notMatch(refused.stderr, TRACEBACK, 'no stack trace');
    },
  },
  {
    id: 'malformed',
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
