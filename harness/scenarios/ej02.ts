/**
 * Exercise 2: daytime (RFC 867) and the time-zone protocol, with the served
 * time kept in step with NTP. Roles: server, client.
 *
 * The harness speaks the project's time-zone PDU itself (56-byte request,
 * 104-byte response, specified in ej02/server.ts) from its own sockets, and
 * checks offsets against the tz database through GNU date, not through the
 * code under test. NTP servers are a real chronyd on a loopback port and a
 * fake (harness/fake-ntp.ts) that lies on purpose; nothing leaves the machine.
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type dgram from 'node:dgram';
import { type FakeNtp, startFakeNtp } from '../fake-ntp.ts';
import { createNetnsPair } from '../netns.ts';
import { checkLogged, type ClientRun, type Context, cliRequirement, defineScenario, PEERS, type Server, TRACEBACK } from '../scenario.ts';
import { closeUdp, tcpConnect, udpExchange, udpSocket } from '../wire.ts';

const clock = () => performance.timeOrigin + performance.now();

/** The fields of a time-zone response the scenarios read (offsets per the spec in ej02/server.ts). */
interface TzResponse {
  nonce: number;
  status: number;
  stratum: number;
  unixMs: number;
  zoneOffsetSeconds: number;
  ntpOffsetMs: number;
  ntpDelayMs: number;
  syncAgeMs: number;
  zone: string;
}

function tzRequest(zone: string, nonce: number): Buffer {
  const request = Buffer.alloc(56);
  request.write('TZ', 0, 'latin1');
  request[2] = 1;
  request[3] = 1;
  request.writeUInt32BE(nonce, 4);
  request.write(zone, 8, 'utf8');
  return request;
}

function parseResponse(reply: Buffer): TzResponse {
  if (reply.length !== 104 || reply.toString('latin1', 0, 2) !== 'TZ' || reply[3] !== 2) {
    throw new Error(`not a time-zone response: ${reply.length} bytes starting ${reply.subarray(0, 8).toString('hex')}`);
  }
  return {
    nonce: reply.readUInt32BE(4),
    status: reply[8]!,
    stratum: reply[9]!,
    unixMs: Number(reply.readBigUInt64BE(12)),
    zoneOffsetSeconds: reply.readInt32BE(20),
    ntpOffsetMs: Number(reply.readBigInt64BE(24)) / 1000,
    ntpDelayMs: reply.readUInt32BE(32) / 1000,
    syncAgeMs: reply.readUInt32BE(36),
    zone: reply.subarray(40, 88).toString('utf8').replace(/\0+$/, ''),
  };
}

/**
 * Sends `datagram` from `socket` to the server and resolves with the first
 * reply from it that `accept` takes, trying `tries` times `timeoutMs` apart;
 * undefined when none comes. Other datagrams (a late reply to an earlier
 * request, say) are skipped, not taken for this request's reply.
 */
function exchangeMatching(
  socket: dgram.Socket,
  server: { host: string; port: number },
  datagram: Uint8Array,
  accept: (reply: Buffer) => boolean,
  { timeoutMs = 1000, tries = 1 } = {},
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let sent = 0;
    let timer: ReturnType<typeof setTimeout>;
    const finish = (reply: Buffer | undefined) => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(reply);
    };
    const onMessage = (reply: Buffer, from: dgram.RemoteInfo) => {
      if (from.port === server.port && accept(reply)) finish(reply);
    };
    const send = () => {
      if (sent++ === tries) return finish(undefined);
      socket.send(datagram, server.port, server.host);
      timer = setTimeout(send, timeoutMs);
    };
    socket.on('message', onMessage);
    send();
  });
}

/** Whether `reply` is a time-zone response carrying `nonce`. */
const answers = (nonce: number) => (reply: Buffer) => reply.length === 104 && reply.toString('latin1', 0, 2) === 'TZ' && reply[3] === 2 && reply.readUInt32BE(4) === nonce;

/**
 * One request from the harness's socket, timed on the harness's clock. Its
 * reply is the one that carries its nonce: a late reply to an earlier request
 * on the same socket is skipped, never read as this one's.
 */
async function ask(socket: dgram.Socket, server: { host: string; port: number }, zone = '', { timeoutMs = 1000, tries = 1 } = {}): Promise<{ response: TzResponse; t0: number; t1: number } | undefined> {
  const nonce = randomBytes(4).readUInt32BE(0);
  const t0 = clock();
  const reply = await exchangeMatching(socket, server, tzRequest(zone, nonce), answers(nonce), { timeoutMs, tries });
  const t1 = clock();
  return reply ? { response: parseResponse(reply), t0, t1 } : undefined;
}

/** Asks until the server reports itself synchronised (stratum below 16) or `timeoutMs` passes. */
async function waitSynchronised(socket: dgram.Socket, server: Server, timeoutMs: number): Promise<TzResponse | undefined> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const answer = await ask(socket, server);
    if (answer && answer.response.stratum < 16) return answer.response;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return undefined;
}

/** The offset the tz database gives `zone` now, in seconds east of UTC (GNU date, not the code under test). */
function tzdataOffset(zone: string, atMs: number): number {
  const out = execFileSync('date', ['-d', `@${Math.floor(atMs / 1000)}`, '+%z'], { env: { ...process.env, TZ: zone }, encoding: 'utf8' }).trim();
  return (out.startsWith('-') ? -1 : 1) * (Number(out.slice(1, 3)) * 3600 + Number(out.slice(3, 5)) * 60);
}

function checkCleanFailure(ctx: Context, run: ClientRun, what: string): void {
  ctx.t.notOk(run.timedOut, `${what}: the client gave up by itself (took ${(run.durationMs / 1000).toFixed(1)} s)`);
  ctx.t.ok(run.exit.code !== 0 && run.exit.code !== null, `${what}: exit status is non-zero (was ${run.exit.code ?? run.exit.signal})`);
  // A usage message is a refusal of the command line, not the failure being checked.
  ctx.t.notMatch(run.stderr, /^usage:/im, `${what}: it failed, not refused its command line (stderr: ${run.stderr.trim().split('\n').slice(-2).join(' | ') || 'empty'})`);
  ctx.t.notMatch(run.stderr, TRACEBACK, `${what}: no stack trace`);
}

/** Starts the server synchronising with a harness-run NTP server (never a public one). */
async function serverWithNtp(ctx: Context, ntp: { host: string; port: number }, extra: string[] = []): Promise<Server> {
  return ctx.server('server', 'udp', ['--ntp', `${ntp.host}:${ntp.port}`, '--ntp-interval', '1', '--ntp-samples', '3', ...extra]);
}

async function withFake<T>(options: Parameters<typeof startFakeNtp>[0], fn: (fake: FakeNtp) => Promise<T>): Promise<T> {
  const fake = await startFakeNtp(options);
  try {
    return await fn(fake);
  } finally {
    await fake.close();
  }
}

const ZONES = ['America/Argentina/Buenos_Aires', 'Europe/Madrid', 'Asia/Kolkata', 'Asia/Kathmandu', 'Pacific/Chatham', 'America/New_York', 'UTC'];
const FIXED: Record<string, number> = { 'UTC-03:00': -10800, 'UTC+05:30': 19800 };

export default defineScenario('ej02', 'Daytime (RFC 867), a time-zone protocol and NTP synchronisation', [
  { ...cliRequirement({ server: [/--host HOST/, /--port PORT/], client: [/--format FORMAT/, /--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    id: 'format-c',
    tier: 'assignment',
    title: "as the assignment runs it (server with --host/--port only, client --format %c), on a host with no route out: the client prints this year's date and a time",
    roles: ['server', 'client'],
    peers: [PEERS.ip],
    root: true,
    timeoutMs: 60_000,
    async run(ctx) {
      // The server must synchronise with "algún servidor de hora", a public one by default; in a
      // namespace of the harness's own with loopback alone, its tries fail at once and nothing leaves.
      // Both run there; the PDU between them is the submission's own.
      const hosts = await createNetnsPair();
      try {
        const inB = (command: string[]) => hosts.exec('b', command);
        const server = await ctx.server('server', 'udp', [], { wrap: inB });
        const run = await ctx.clientWrapped('client', ['--format', '%c', '--host', server.host, '--port', String(server.port)], inB, { timeoutMs: 30_000 });
        const said = `stdout ${JSON.stringify(run.stdout.trim().slice(0, 120))}, stderr ${JSON.stringify(run.stderr.trim().split('\n').at(-1) ?? '')}`;
        ctx.t.equal(run.exit.code, 0, `client --format %c exits 0 (observed ${run.exit.code ?? run.exit.signal}; ${said})`);
        const year = String(new Date().getUTCFullYear());
        ctx.t.match(run.stdout, new RegExp(`(?=[\\s\\S]*\\b(${year}|${Number(year) - 1}|${Number(year) + 1})\\b)[\\s\\S]*\\d{1,2}:\\d\\d`), `it prints a date with the year and a time (${said})`);
      } finally {
        await hosts.destroy();
      }
    },
  },
  {
    // Refusing an unknown directive with exit 2, naming it, is this project's; Python's strftime passes it through.
    id: 'bad-format',
    tier: 'beyond',
    features: ['errors:format'],
    title: 'an unknown strftime directive in --format is refused with exit 2, naming it',
    roles: ['client'],
    async run(ctx) {
      const format = await ctx.client('client', ['--format', '%Y %Q']);
      ctx.t.equal(format.exit.code, 2, 'an unknown strftime directive is a usage error (exit 2)');
      ctx.t.match(format.stderr, /%Q/, 'and the message names it');
      ctx.t.notMatch(format.stderr, TRACEBACK, 'no stack trace');
    },
  },
  {
    id: 'zones',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', '--tz', 'format:project-pdu'],
    title: "the client's time for several zones carries each zone's true offset (checked against tzdata)",
    roles: ['server', 'client'],
    async run(ctx) {
      await withFake({}, async (fake) => {
        const server = await serverWithNtp(ctx, fake);
        for (const zone of [...ZONES, ...Object.keys(FIXED)]) {
          const run = await ctx.client('client', ['--tz', zone, '--format', '%Y-%m-%dT%H:%M:%S%z', '--host', server.host, '--port', String(server.port)]);
          const now = Date.now();
          const match = /(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)([+-])(\d\d)(\d\d)/.exec(run.stdout);
          ctx.t.equal(run.exit.code, 0, `${zone}: exit 0 (stderr: ${run.stderr.trim().slice(0, 200) || 'empty'})`);
          if (!match) {
            ctx.t.fail(`${zone}: printed ${JSON.stringify(run.stdout.slice(0, 100))}, not the format asked for`);
            continue;
          }
          const [, y, mo, d, h, mi, s, sign, oh, om] = match;
          const offset = (sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60);
          const expected = FIXED[zone] ?? tzdataOffset(zone, now);
          ctx.t.equal(offset, expected, `${zone}: offset ${sign}${oh}${om} is the zone's (${expected} s)`);
          // The wall-clock time printed, taken back to UTC, is now (within the client's run time).
          const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) - offset * 1000;
          ctx.t.ok(Math.abs(utc - now) < run.durationMs + 2000, `${zone}: the local time printed is the current time there (${((utc - now) / 1000).toFixed(1)} s off)`);
        }
      });
    },
  },
  {
    id: 'server-region',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', '--tz', '--locale', '--daytime'],
    title: 'the server told --tz Asia/Tokyo answers a request naming no zone with Tokyo time, and --format %c works',
    roles: ['server', 'client'],
    async run(ctx) {
      await withFake({}, async (fake) => {
        const server = await serverWithNtp(ctx, fake, ['--tz', 'Asia/Tokyo', '--locale', 'es-AR']);
        const run = await ctx.client('client', ['--format', '%z %Z', '--host', server.host, '--port', String(server.port)]);
        ctx.t.equal(run.stdout.trim(), '+0900 JST', 'no --tz: the server\'s zone (+0900 JST)');
        const c = await ctx.client('client', ['--format', '%c', '--host', server.host, '--port', String(server.port)]);
        ctx.t.match(c.stdout.trim(), /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4}$/, `%c prints the C locale's date and time (${c.stdout.trim()})`);
        const daytime = await ctx.client('client', ['--daytime', '--host', server.host, '--port', String(server.port)]);
        ctx.t.match(daytime.stdout, /(lunes|martes|miércoles|jueves|viernes|sábado|domingo)/, `the daytime line is in the server's locale, es-AR (${daytime.stdout.trim()})`);
      });
    },
  },
  {
    id: 'unknown-zone',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', '--tz'],
    title: 'an unknown zone gets the error status, and the client says so',
    roles: ['server', 'client'],
    async run(ctx) {
      await withFake({}, async (fake) => {
        const server = await serverWithNtp(ctx, fake);
        const socket = await udpSocket();
        try {
          const answer = await ask(socket, server, 'Mars/Olympus_Mons');
          ctx.t.equal(answer?.response.status, 1, 'status 1 (unknown zone) on the wire');
          ctx.t.equal(answer?.response.zone, 'Mars/Olympus_Mons', 'the zone is echoed');
        } finally {
          await closeUdp(socket);
        }
        const run = await ctx.client('client', ['--tz', 'Mars/Olympus_Mons', '--host', server.host, '--port', String(server.port)]);
        checkCleanFailure(ctx, run, 'client --tz Mars/Olympus_Mons');
        ctx.t.match(run.stderr, /Mars\/Olympus_Mons/, 'the client names the zone');
        ctx.t.match(run.stderr, /unknown/i, 'and says it is unknown');
      });
    },
  },
  {
    // The PDU is the student's own (the assignment fixes only that it is fixed-length).
    id: 'malformed',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', 'format:project-pdu'],
    title: 'malformed datagrams get a malformed-request status or the daytime line, and the server serves on',
    roles: ['server', 'client'],
    async run(ctx) {
      await withFake({}, async (fake) => {
        const server = await serverWithNtp(ctx, fake);
        const socket = await udpSocket();
        try {
          const good = tzRequest('UTC', 0x4d414c46);
          const bad: [string, Buffer, number | 'daytime'][] = [
            ['55 bytes', good.subarray(0, 55), 2],
            ['57 bytes', Buffer.concat([good, Buffer.of(0)]), 2],
            ['just "TZ"', Buffer.from('TZ'), 2],
            ['version 9', Buffer.concat([good.subarray(0, 2), Buffer.of(9), good.subarray(3)]), 3],
            ['kind 2', Buffer.concat([good.subarray(0, 3), Buffer.of(2), good.subarray(4)]), 2],
            ['invalid UTF-8 zone', Buffer.concat([good.subarray(0, 8), Buffer.of(0xc3, 0x28), good.subarray(10)]), 2],
            ['garbage after the padding', Buffer.concat([good.subarray(0, 55), Buffer.of(0x41)]), 2],
          ];
          for (const [what, datagram, expected] of bad) {
            // A socket of its own for each: a reply to the previous case (a retry's) cannot be taken for this one's.
            const own = await udpSocket();
            try {
              const reply = await udpExchange(own, server.host, server.port, datagram, { timeoutMs: 1000, tries: 3 });
              ctx.t.ok(reply, `${what}: answered`);
              if (reply) ctx.t.equal(reply.length === 104 ? reply[8] : `${reply.length} bytes`, expected, `${what}: status ${expected}`);
            } finally {
              await closeUdp(own);
            }
          }
          // 200 random datagrams, then at once a good request on the same socket: the
          // answers to the 200 may come before or after its own, and are skipped by nonce.
          for (let i = 0; i < 200; i++) socket.send(randomBytes(i * 7), server.port, server.host);
          const after = await ask(socket, server, 'Europe/Madrid', { timeoutMs: 2000, tries: 3 });
          ctx.t.equal(after?.response.status, 0, 'after 207 malformed datagrams a good request is answered (its reply matched by its nonce)');
          ctx.t.equal(server.proc.exit, undefined, 'the server is still running');
        } finally {
          await closeUdp(socket);
        }
      });
    },
  },
  {
    id: 'chronyd',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', 'format:project-pdu'],
    title: 'synchronised with a real chronyd (local stratum 8) on loopback, the server reports stratum 9 and an offset near 0',
    roles: ['server'],
    peers: [PEERS.chronyd],
    timeoutMs: 60_000,
    async run(ctx) {
      const dir = await mkdtemp(path.join(tmpdir(), 'ej02-chronyd-'));
      // chronyd drops to its own user, which must be able to write its pid and drift files here.
      await chmod(dir, 0o777);
      const socket = await udpSocket();
      try {
        const port = await ctx.port();
        const conf = path.join(dir, 'chrony.conf');
        await writeFile(conf, [`port ${port}`, 'bindaddress 127.0.0.1', 'local stratum 8', 'allow 127.0.0.1', 'cmdport 0', `pidfile ${dir}/chronyd.pid`, `driftfile ${dir}/drift`, ''].join('\n'));
        // -x: never touch the system clock; -d: stay in the foreground, so the harness can stop it.
        const chronyd = ctx.spawn('chronyd', ['chronyd', '-d', '-x', '-f', conf]);
        const request = Buffer.alloc(48);
        request[0] = 0x23;
        request.writeUInt32BE(0x12345678, 40);
        const up = await udpExchange(socket, '127.0.0.1', port, request, { timeoutMs: 500, tries: 20 });
        ctx.t.ok(up, 'chronyd answers NTP on loopback');
        if (!up) return void ctx.t.comment(`chronyd output: ${chronyd.stderr.slice(-500)}`);
        ctx.t.equal(up[1], 8, 'chronyd serves at stratum 8');

        const server = await serverWithNtp(ctx, { host: '127.0.0.1', port });
        const synced = await waitSynchronised(socket, server, 15_000);
        ctx.t.ok(synced, 'the server reports itself synchronised within 15 s');
        if (!synced) return;
        ctx.t.equal(synced.stratum, 9, 'stratum 9: one below chronyd');
        ctx.t.ok(Math.abs(synced.ntpOffsetMs) <= synced.ntpDelayMs / 2 + 1, `offset ${synced.ntpOffsetMs.toFixed(3)} ms is 0 within δ/2 + 1 ms (δ = ${synced.ntpDelayMs.toFixed(3)} ms)`);
        const answer = await ask(socket, server, 'UTC');
        if (answer) {
          const off = answer.response.unixMs - (answer.t0 + answer.t1) / 2;
          ctx.t.ok(Math.abs(off) <= (answer.t1 - answer.t0) / 2 + 2, `served time is the real time within the request's RTT/2 + 2 ms (${off.toFixed(3)} ms)`);
        }
        await checkLogged(ctx.t, server.proc, new RegExp(`synchronised with 127\\.0\\.0\\.1:${port} \\(stratum 8\\)`), 'the server logs the synchronisation');
      } finally {
        await closeUdp(socket);
        await ctx.supervisor.stopAll();
        await rm(dir, { recursive: true, force: true });
      }
    },
  },
  {
    id: 'ntp-ahead',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', 'format:project-pdu'],
    title: 'against an NTP server 3.5 s ahead, the served time is 3.5 s ahead within the measured delay',
    roles: ['server'],
    async run(ctx) {
      await withFake({ aheadMs: 3500, stratum: 2 }, async (fake) => {
        const server = await serverWithNtp(ctx, fake);
        const socket = await udpSocket();
        try {
          const synced = await waitSynchronised(socket, server, 10_000);
          ctx.t.ok(synced, 'the server reports itself synchronised');
          if (!synced) return;
          ctx.t.equal(synced.stratum, 3, 'stratum 3, below the fake\'s 2');
          for (let i = 0; i < 3; i++) {
            const answer = await ask(socket, server, 'UTC');
            if (!answer) {
              ctx.t.fail('no answer');
              continue;
            }
            const { response, t0, t1 } = answer;
            const ahead = response.unixMs - (t0 + t1) / 2;
            // Error sources: the NTP exchange (δ/2), this request (RTT/2), unix_ms counting whole milliseconds (1).
            const bound = response.ntpDelayMs / 2 + (t1 - t0) / 2 + 1;
            ctx.t.ok(Math.abs(ahead - 3500) <= bound, `served time is ${ahead.toFixed(3)} ms ahead: 3500 within ±${bound.toFixed(3)} ms`);
            ctx.t.ok(Math.abs(response.ntpOffsetMs - 3500) <= response.ntpDelayMs / 2 + 0.1, `reported θ ${response.ntpOffsetMs.toFixed(3)} ms`);
          }
          ctx.t.ok(fake.requests >= 3, `the fake saw ${fake.requests} requests (several samples per round)`);
        } finally {
          await closeUdp(socket);
        }
      });
    },
  },
  {
    id: 'ntp-wrong-origin',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', 'format:project-pdu'],
    title: 'replies whose origin timestamp is not ours are rejected: the server stays unsynchronised and says why',
    roles: ['server'],
    async run(ctx) {
      await withFake({ aheadMs: 3500, wrongOrigin: true }, async (fake) => {
        const server = await serverWithNtp(ctx, fake);
        const socket = await udpSocket();
        try {
          const until = Date.now() + 15_000;
          while (fake.requests < 4 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
          ctx.t.ok(fake.requests >= 4, `the server asked the fake ${fake.requests} times`);
          await server.proc.waitForOutput(/origin/i, 10_000, 'stderr').catch(() => undefined);
          const answer = await ask(socket, server, 'UTC');
          ctx.t.equal(answer?.response.stratum, 16, 'stratum 16: unsynchronised');
          if (answer) {
            const ahead = answer.response.unixMs - (answer.t0 + answer.t1) / 2;
            ctx.t.ok(Math.abs(ahead) < 50, `served time is the system clock (${ahead.toFixed(1)} ms), not 3.5 s ahead`);
          }
          await checkLogged(ctx.t, server.proc, /origin timestamp/i, 'the server logs that the origin timestamp did not match');
        } finally {
          await closeUdp(socket);
        }
      });
    },
  },
  {
    id: 'ntp-unreachable',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples'],
    title: 'with its NTP server unreachable the server serves on, reports itself unsynchronised, and logs why',
    roles: ['server', 'client'],
    async run(ctx) {
      const closedPort = await ctx.port();
      const server = await serverWithNtp(ctx, { host: '127.0.0.1', port: closedPort });
      await server.proc.waitForOutput(/no usable NTP reply|unreachable|refused|nothing listens/i, 10_000, 'stderr').catch(() => undefined);
      const socket = await udpSocket();
      try {
        const answer = await ask(socket, server, 'UTC');
        ctx.t.equal(answer?.response.status, 0, 'requests are still answered');
        ctx.t.equal(answer?.response.stratum, 16, 'stratum 16: unsynchronised');
        ctx.t.equal(answer?.response.syncAgeMs, 0xffffffff, 'sync age: never');
      } finally {
        await closeUdp(socket);
      }
      await checkLogged(ctx.t, server.proc, new RegExp(`127\\.0\\.0\\.1:${closedPort}`), 'the log names the NTP server that failed');
      const run = await ctx.client('client', ['--format', '%Y', '--host', server.host, '--port', String(server.port)]);
      ctx.t.equal(run.stdout.trim(), String(new Date().getUTCFullYear()), 'the client still gets the time');
    },
  },
  {
    id: 'daytime-own',
    tier: 'beyond',
    features: ['--ntp', '--ntp-interval', '--ntp-samples', '--tz', '--locale', '--daytime', '--tcp'],
    title: 'the --daytime client reads the RFC 867 line from our server over UDP and TCP; a raw datagram gets it too',
    roles: ['server', 'client'],
    async run(ctx) {
      await withFake({}, async (fake) => {
        const server = await serverWithNtp(ctx, fake, ['--tz', 'UTC', '--locale', 'en-US']);
        const year = String(new Date().getUTCFullYear());
        const udp = await ctx.client('client', ['--daytime', '--host', server.host, '--port', String(server.port)]);
        ctx.t.equal(udp.exit.code, 0, `UDP: exit 0 (stderr: ${udp.stderr.trim().slice(0, 200) || 'empty'})`);
        ctx.t.match(udp.stdout, new RegExp(`${year}.*\\d{1,2}:\\d\\d:\\d\\d`), `UDP: a date and time line (${udp.stdout.trim()})`);
        const tcp = await ctx.client('client', ['--daytime', '--tcp', '--host', server.host, '--port', String(server.port)]);
        ctx.t.match(tcp.stdout, new RegExp(`${year}.*\\d{1,2}:\\d\\d:\\d\\d`), `TCP: a date and time line (${tcp.stdout.trim()})`);
        const socket = await udpSocket();
        try {
          const reply = await udpExchange(socket, server.host, server.port, Buffer.from('any datagram'), { timeoutMs: 1000, tries: 2 });
          ctx.t.match(reply?.toString('utf8') ?? '', new RegExp(`${year}.*\\r?\\n$`), 'any datagram gets the daytime line (RFC 867)');
        } finally {
          await closeUdp(socket);
        }
      });
    },
  },
  {
    id: 'daytime-socat',
    tier: 'beyond',
    features: ['--daytime', '--tcp', '--timeout'],
    title: 'the --daytime client reads the line socat serves from `date`, over UDP and TCP',
    roles: ['client'],
    peers: [PEERS.socat],
    async run(ctx) {
      const udpPort = await ctx.port();
      const tcpPort = await ctx.port();
      ctx.spawn('socat-udp', ['socat', `UDP-RECVFROM:${udpPort},bind=127.0.0.1,fork`, 'SYSTEM:date -u']);
      ctx.spawn('socat-tcp', ['socat', `TCP-LISTEN:${tcpPort},bind=127.0.0.1,reuseaddr,fork`, 'SYSTEM:date -u']);
      // Wait until both listen (an answer, a connection), not for a fixed while.
      const probe = await udpSocket();
      try {
        ctx.t.ok(await udpExchange(probe, '127.0.0.1', udpPort, Buffer.from('\n'), { timeoutMs: 250, tries: 40 }), 'socat answers on UDP');
      } finally {
        await closeUdp(probe);
      }
      let listening = false;
      for (let i = 0; i < 40 && !listening; i++) {
        listening = await tcpConnect('127.0.0.1', tcpPort, 1000).then(
          (socket) => (socket.destroy(), true),
          () => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 250)),
        );
      }
      ctx.t.ok(listening, 'socat listens on TCP');
      const expected = execFileSync('date', ['-u', '+%a %b'], { encoding: 'utf8' }).trim().split(' ');
      for (const [what, args] of [['UDP', []], ['TCP', ['--tcp']]] as const) {
        const run = await ctx.client('client', ['--daytime', ...args, '--host', '127.0.0.1', '--port', String(what === 'UDP' ? udpPort : tcpPort), '--timeout', '2']);
        ctx.t.equal(run.exit.code, 0, `${what}: exit 0 (stderr: ${run.stderr.trim().slice(0, 200) || 'empty'})`);
        ctx.t.match(run.stdout, new RegExp(`${expected[0]}.*${expected[1]}.*\\d\\d:\\d\\d:\\d\\d.*UTC.*\\d{4}`), `${what}: printed date's line (${run.stdout.trim()})`);
      }
    },
  },
  {
    id: 'client-silence',
    tier: 'beyond',
    features: ['--timeout', '--retries'],
    title: 'the client gives up with a clear error when nothing answers',
    roles: ['client'],
    async run(ctx) {
      const socket = await udpSocket();
      try {
        const port = socket.address().port;
        const run = await ctx.client('client', ['--host', '127.0.0.1', '--port', String(port), '--timeout', '0.3', '--retries', '1']);
        checkCleanFailure(ctx, run, 'a server that never answers');
        // Not `timeout` inside an option's name (`--timeout` in a usage line).
        ctx.t.match(run.stderr, /no answer|(?<![-\w])timed? ?out(?![-\w])/i, `it says nothing answered (observed: ${run.stderr.trim().slice(0, 200) || 'nothing'})`);
      } finally {
        await closeUdp(socket);
      }
    },
  },
]);
