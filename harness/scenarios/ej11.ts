/**
 * Exercise 11: reliable file transfer over UDP. Roles: server (started with
 * `--dir DIR`), client (`--get NAME -o OUT`, `--put FILE`, `--tcp`).
 *
 * Transfers are judged on a path with known faults: the harness's UDP
 * impairment relay (harness/relay.ts) between client and server, with loss,
 * duplication and reordering in both directions, and on a path with real
 * kernel loss for TCP and UDP alike (two network namespaces and an nftables
 * rule, harness/netns.ts; root only). Every file must arrive byte-identical.
 *
 * Tiers. The assignment fixes the two command lines and the PDU's header;
 * which file moves, where the server takes it from and where the client
 * puts it are left to the student. So the assignment tier (`transfer`) moves
 * a file as the manifest declares it ([ej11.declare] `serve = --dir {dir}`
 * or `serve = cwd:archivos`; `get = --get {file} -o {out}` or `get =
 * stdin:{file}` with `out = recibido_{file}`; a target declaring this
 * project's features gets its `--dir`/`--get`/`-o`), and is n/a otherwise.
 * Every other requirement passes `--dir`, `--get`, `-o`, `--put` or `--tcp`,
 * or this project's messages inside the PDU's data, and is beyond.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createNetnsPair, run as runCommand } from '../netns.ts';
import { waitReady } from '../proc.ts';
import { type Faults, formatCounters, type Relay, startRelay } from '../relay.ts';
import { type ClientRun, type Context, cliRequirement, defineScenario, PEERS, type Server, TRACEBACK } from '../scenario.ts';
import { closeUdp, compareBytes, udpSocket } from '../wire.ts';

const MiB = 1024 * 1024;

/** The target's command with the words that name its files made absolute, so it can run in another folder. */
function commandElsewhere(ctx: Context, role: string): string[] {
  return ctx.command(role).map((word) => {
    const full = path.resolve(ctx.target.cwd, word);
    return !word.startsWith('-') && existsSync(full) && statSync(full).isFile() ? full : word;
  });
}

/** A folder of test files for the server, and one for what the client receives. */
async function folders(ctx: Context, files: Record<string, number>): Promise<{ served: string; local: string; data: Map<string, Buffer> }> {
  const base = await mkdtemp(path.join(tmpdir(), 'ej11-'));
  ctx.t.teardown(() => rm(base, { recursive: true, force: true }));
  const served = path.join(base, 'served');
  const local = path.join(base, 'local');
  await mkdir(served);
  await mkdir(local);
  const data = new Map<string, Buffer>();
  for (const [name, size] of Object.entries(files)) {
    const bytes = randomBytes(size);
    data.set(name, bytes);
    await writeFile(path.join(served, name), bytes);
  }
  return { served, local, data };
}

/** A relay with `faults` both ways in front of `server`, closed when the requirement ends. */
async function relayTo(ctx: Context, server: Server, faults: Faults, seed: number): Promise<Relay> {
  const relay = await startRelay({ target: { host: server.host, port: server.port }, forward: faults, backward: faults, seed });
  ctx.t.teardown(() => relay.close());
  return relay;
}

async function get(ctx: Context, host: string, port: number, name: string, out: string, extra: string[] = [], timeoutMs = 60_000): Promise<ClientRun> {
  return ctx.client('client', ['--host', host, '--port', String(port), '--get', name, '-o', out, ...extra], { timeoutMs });
}

async function checkArrived(ctx: Context, run: ClientRun, out: string, expected: Buffer, what: string): Promise<void> {
  ctx.t.notOk(run.timedOut, `${what}: the client finished (took ${(run.durationMs / 1000).toFixed(1)} s)`);
  ctx.t.equal(run.exit.code, 0, `${what}: exit status 0 (stderr: ${run.stderr.trim().slice(-300) || 'empty'})`);
  const got = existsSync(out) ? await readFile(out) : undefined;
  ctx.t.ok(got?.equals(expected), `${what}: ${got ? compareBytes(expected, got) : 'no file written'}`);
}

/** A usage message's lines: what a refused command line prints, which says nothing about a transfer. */
const USAGE_LINE = /^\s*(usage:|\S+: error: (unrecognized|the following arguments)|.*unknown (option|flag))/i;

function checkCleanFailure(ctx: Context, run: ClientRun, what: string): void {
  ctx.t.notOk(run.timedOut, `${what}: the client gave up by itself (took ${(run.durationMs / 1000).toFixed(1)} s)`);
  const observed = `exit ${run.exit.code ?? run.exit.signal}, stderr: ${JSON.stringify(run.stderr.trim().slice(-200))}`;
  ctx.t.ok(run.exit.code !== 0 && run.exit.code !== 2 && run.exit.code !== null, `${what}: expected a non-zero exit that is not 2 (bad usage); observed ${observed}`);
  const said = run.stderr.split('\n').filter((line) => line.trim() !== '' && !USAGE_LINE.test(line));
  ctx.t.ok(said.length > 0, `${what}: expected a message on stderr saying why, other than a usage message; observed ${observed}`);
  ctx.t.notMatch(run.stderr, TRACEBACK, `${what}: no stack trace`);
}

/** Gets every file of `sizes` through a relay with `faults` and checks each arrived intact. */
async function transferSet(ctx: Context, sizes: Record<string, number>, faults: Faults, seed: number): Promise<void> {
  const f = await folders(ctx, sizes);
  const server = await ctx.server('server', 'udp', ['--dir', f.served]);
  const relay = await relayTo(ctx, server, faults, seed);
  for (const [name, bytes] of f.data) {
    const out = path.join(f.local, name);
    const run = await get(ctx, relay.host, relay.port, name, out);
    await checkArrived(ctx, run, out, bytes, `${name} (${bytes.length} B)`);
  }
  ctx.t.comment(`relay forward: ${formatCounters(relay.counters.forward)}`);
  ctx.t.comment(`relay backward: ${formatCounters(relay.counters.backward)}`);
  if ((faults.loss ?? 0) > 0) ctx.t.ok(relay.counters.forward.dropped + relay.counters.backward.dropped > 0, `expected the relay to drop packets; observed ${relay.counters.forward.dropped} forward and ${relay.counters.backward.dropped} backward`);
}

const SMALL = { 'empty.bin': 0, 'one.bin': 1, 'mebi.bin': MiB };

// This project's own hardening (ej11/README.md, "What it defends against"): the assignment does not
// ask for it. The packets are built here by hand, so that the grader does not share the exercise's codec.
const GET = 1;
const ERROR = 6;
const RETRY = 9;
const SYN = 1;
const TOKEN = 4;

/** A first packet of the PDU (sequence 7, no acknowledgement, window 1024) with `data`. */
function firstPacket(type: number, flags: number, connection: number, data: Uint8Array): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32BE(7, 0);
  head.writeUInt8(type, 12);
  head.writeUInt8(flags, 13);
  head.writeUInt16BE(1024, 14);
  head.writeUInt32BE(connection, 16);
  return Buffer.concat([head, data]);
}

/**
 * GETs a name from a raw socket, echoing the token if the server answers RETRY; `name(room)`
 * gives the name's bytes for `room` bytes of data. Resolves with the ERROR's text, or undefined
 * after 3 s.
 */
async function rawGet(ctx: Context, server: Server, name: (room: number) => Uint8Array): Promise<string | undefined> {
  const socket = await udpSocket();
  ctx.t.teardown(() => closeUdp(socket));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 3000);
    socket.on('message', (datagram) => {
      if (datagram[12] === RETRY) socket.send(firstPacket(GET, SYN | TOKEN, 0xc0ffee, Buffer.concat([datagram.subarray(24), name(1400 - (datagram.length - 24))])), server.port, server.host);
      else if (datagram[12] === ERROR) {
        clearTimeout(timer);
        resolve(datagram.subarray(24).toString('utf8'));
      }
    });
    socket.send(firstPacket(GET, SYN, 0xc0ffee, name(1400)), server.port, server.host);
  });
}
const impaired = (loss: number): Faults => ({ loss, duplicate: 0.05, reorder: 0.05, delayMs: 2, jitterMs: 1 });

export default defineScenario('ej11', 'Reliable file transfer over UDP, compared with TCP', [
  { ...cliRequirement({ server: [/--host HOST/, /--port PORT/], client: [/--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    id: 'transfer',
    tier: 'assignment',
    title: 'a file of 300 KiB arrives byte-identical with the assignment\'s command lines (the file chosen as the manifest declares), over a clean path and through 10 % loss, duplication and reordering',
    roles: ['server', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      const serve = ctx.declared('serve') ?? (ctx.feature('--dir') ? '--dir {dir}' : undefined);
      const getWith = ctx.declared('get') ?? (ctx.feature('--get') && ctx.feature('-o') ? '--get {file} -o {out}' : undefined);
      if (serve === undefined || getWith === undefined) {
        return ctx.notApplicable('the assignment leaves which file moves to the student: declare it in [ej11.declare], e.g. serve = --dir {dir} (or cwd:archivos) and get = --get {file} -o {out} (or stdin:{file} with out = recibido_{file})');
      }
      const base = await mkdtemp(path.join(tmpdir(), 'ej11-transfer-'));
      ctx.t.teardown(() => rm(base, { recursive: true, force: true }));
      const serverCwd = path.join(base, 'server');
      const clientCwd = path.join(base, 'client');
      await mkdir(clientCwd, { recursive: true });
      const fromCwd = /^cwd:(.+)$/.exec(serve)?.[1];
      const served = fromCwd ? path.join(serverCwd, fromCwd) : path.join(base, 'served');
      await mkdir(served, { recursive: true });
      const name = `datos-${randomBytes(3).toString('hex')}.bin`;
      const bytes = randomBytes(300 * 1024);
      await writeFile(path.join(served, name), bytes);
      const words = (template: string, fill: Record<string, string>) => template.split(/\s+/).filter(Boolean).map((word) => word.replace(/\{(\w+)\}/g, (_, key: string) => fill[key] ?? `{${key}}`));
      const port = await ctx.port();
      const serverArgs = fromCwd ? [] : words(serve, { dir: served });
      const proc = ctx.supervisor.start('server', [...commandElsewhere(ctx, 'server'), '--host', ctx.host, '--port', String(port), ...serverArgs], { cwd: fromCwd ? serverCwd : ctx.target.cwd });
      await waitReady(proc, port, 'udp', 20_000);
      const server: Server = { proc, host: ctx.host, port };
      for (const [what, faults, seed] of [['clean path', {}, 1], ['10 % loss, 5 % duplication and reordering', impaired(0.1), 7]] as const) {
        const relay = await relayTo(ctx, server, faults, seed);
        const outName = ctx.declared('out');
        const out = outName ? path.join(clientCwd, words(outName, { file: name }).join(' ')) : path.join(clientCwd, `copia-${seed}.bin`);
        await rm(out, { force: true });
        const typed = /^stdin:(.*)$/.exec(getWith)?.[1];
        const args = typed === undefined ? words(getWith, { file: name, out }) : [];
        const input = typed === undefined ? undefined : `${words(typed, { file: name, out }).join(' ')}\n`;
        const run = await ctx.exec('client', [...commandElsewhere(ctx, 'client'), '--host', relay.host, '--port', String(relay.port), ...args], { cwd: clientCwd, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
        await checkArrived(ctx, run, out, bytes, what);
        ctx.t.comment(`${what}: relay forward ${formatCounters(relay.counters.forward)}; backward ${formatCounters(relay.counters.backward)}`);
        await relay.close();
      }
      ctx.t.equal(proc.exit, undefined, 'the server is still running after both transfers');
    },
  },
  {
    id: 'clean',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'files of 0 B, 1 B and 1 MiB arrive byte-identical through the relay with no faults',
    roles: ['server', 'client'],
    async run(ctx) {
      await transferSet(ctx, SMALL, {}, 1);
    },
  },
  {
    id: 'loss-5',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'files of 0 B, 1 B and 1 MiB arrive byte-identical with 5 % loss, 5 % duplication and 5 % reordering each way',
    roles: ['server', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      await transferSet(ctx, SMALL, impaired(0.05), 5);
    },
  },
  {
    id: 'loss-20',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'files of 0 B, 1 B and 1 MiB arrive byte-identical with 20 % loss, 5 % duplication and 5 % reordering each way',
    roles: ['server', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      await transferSet(ctx, SMALL, impaired(0.2), 20);
    },
  },
  {
    id: 'big',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'a 64 MiB file arrives byte-identical with 5 % loss, duplication and reordering each way',
    roles: ['server', 'client'],
    timeoutMs: 180_000,
    async run(ctx) {
      await transferSet(ctx, { 'big.bin': 64 * MiB }, { loss: 0.05, duplicate: 0.05, reorder: 0.05 }, 64);
    },
  },
  {
    id: 'put',
    tier: 'beyond',
    features: ['--dir', '--put'],
    title: 'a 1 MiB file put with --put arrives byte-identical in the server folder, with 5 % loss',
    roles: ['server', 'client'],
    timeoutMs: 90_000,
    async run(ctx) {
      const f = await folders(ctx, {});
      const bytes = randomBytes(MiB);
      const file = path.join(f.local, 'up.bin');
      await writeFile(file, bytes);
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      const relay = await relayTo(ctx, server, impaired(0.05), 7);
      const run = await ctx.client('client', ['--host', relay.host, '--port', String(relay.port), '--put', file], { timeoutMs: 60_000 });
      await checkArrived(ctx, run, path.join(f.served, 'up.bin'), bytes, '--put up.bin');
    },
  },
  {
    id: 'server-dies',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'a server killed mid-transfer gives the client a clear error within 30 s, and no partial file',
    roles: ['server', 'client'],
    timeoutMs: 90_000,
    async run(ctx) {
      const f = await folders(ctx, { 'big.bin': 16 * MiB });
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      // A slow path, so that the transfer is surely under way when the server dies.
      const relay = await relayTo(ctx, server, { delayMs: 20 }, 3);
      const out = path.join(f.local, 'big.bin');
      const started = performance.now();
      const client = ctx.supervisor.start('client', [...ctx.command('client'), '--host', relay.host, '--port', String(relay.port), '--get', 'big.bin', '-o', out], { cwd: ctx.target.cwd });
      while (relay.counters.backward.delivered < 200 && performance.now() - started < 20_000 && !client.exit) await new Promise((r) => setTimeout(r, 50));
      ctx.t.ok(relay.counters.backward.delivered >= 200, `the transfer was under way (${relay.counters.backward.delivered} packets from the server)`);
      server.proc.signal('SIGKILL');
      const killedAt = performance.now();
      const exit = await client.waitForExit(40_000).catch(() => undefined);
      const seconds = (performance.now() - killedAt) / 1000;
      const run: ClientRun = { exit: exit ?? { code: null, signal: 'SIGKILL' }, stdout: client.stdout, stdoutBytes: Buffer.from(client.stdout), stderr: client.stderr, timedOut: exit === undefined, durationMs: seconds * 1000 };
      checkCleanFailure(ctx, run, 'server killed');
      ctx.t.ok(seconds <= 30, `the client reported it ${seconds.toFixed(1)} s after the server died (bound 30 s)`);
      ctx.t.notOk(existsSync(out), 'no file left under the output name');
    },
  },
  {
    id: 'garbage',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'garbage datagrams sent to the server during a transfer do not disturb it',
    roles: ['server', 'client'],
    timeoutMs: 90_000,
    async run(ctx) {
      const f = await folders(ctx, { 'file.bin': 4 * MiB });
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      const relay = await relayTo(ctx, server, { delayMs: 5 }, 4);
      const junk = await udpSocket();
      ctx.t.teardown(() => closeUdp(junk));
      const out = path.join(f.local, 'file.bin');
      const pending = get(ctx, relay.host, relay.port, 'file.bin', out);
      // Random bytes of many sizes, including header-sized ones, every 5 ms while it runs.
      let sent = 0;
      const timer = setInterval(() => {
        for (const size of [0, 1, 12, 24, 25, 100, 1424, 2000]) junk.send(randomBytes(size), server.port, server.host);
        sent += 8;
      }, 5);
      const run = await pending.finally(() => clearInterval(timer));
      ctx.t.ok(sent > 0, `${sent} garbage datagrams sent during the transfer`);
      await checkArrived(ctx, run, out, f.data.get('file.bin') as Buffer, 'transfer under garbage');
      ctx.t.equal(server.proc.exit, undefined, 'the server is still running');
    },
  },
  {
    id: 'two-clients',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'two clients transfer different files at once, each byte-identical, with 5 % loss',
    roles: ['server', 'client'],
    timeoutMs: 90_000,
    async run(ctx) {
      const f = await folders(ctx, { 'a.bin': 2 * MiB, 'b.bin': 3 * MiB });
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      const relay = await relayTo(ctx, server, impaired(0.05), 2);
      const runs = await Promise.all(['a.bin', 'b.bin'].map((name) => get(ctx, relay.host, relay.port, name, path.join(f.local, name))));
      for (const [i, name] of ['a.bin', 'b.bin'].entries()) await checkArrived(ctx, runs[i] as ClientRun, path.join(f.local, name), f.data.get(name) as Buffer, `client ${i + 1} (${name})`);
    },
  },
  {
    id: 'confined',
    tier: 'beyond',
    features: ['--dir', '--get', '-o'],
    title: 'a name outside the served folder is refused with a clear error, and nothing is written',
    roles: ['server', 'client'],
    async run(ctx) {
      const f = await folders(ctx, { 'ok.bin': 10 });
      await writeFile(path.join(path.dirname(f.served), 'secret.txt'), 'secret');
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      for (const name of ['../secret.txt', path.join(path.dirname(f.served), 'secret.txt'), 'missing.bin']) {
        const out = path.join(f.local, 'out.bin');
        const run = await get(ctx, server.host, server.port, name, out, [], 30_000);
        checkCleanFailure(ctx, run, `--get ${name}`);
        ctx.t.notOk(existsSync(out), `--get ${name}: nothing written`);
      }
    },
  },
  {
    id: 'amplification',
    tier: 'beyond',
    features: ['--dir', 'format:project-pdu'],
    title: 'one GET from an address that never answers gets back at most 3 times its size (address validation, RFC 9000 §8.1)',
    roles: ['server'],
    async run(ctx) {
      const f = await folders(ctx, { 'big.bin': 8 * MiB });
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      const socket = await udpSocket();
      ctx.t.teardown(() => closeUdp(socket));
      let received = 0;
      let datagrams = 0;
      socket.on('message', (datagram) => {
        received += datagram.length;
        datagrams++;
      });
      const get = firstPacket(GET, SYN, 0x5eed, Buffer.from('big.bin'));
      socket.send(get, server.port, server.host);
      await new Promise((resolve) => setTimeout(resolve, 4000));
      ctx.t.ok(received <= 3 * get.length, `a ${get.length}-byte GET brought back ${received} bytes in ${datagrams} datagrams within 4 s (bound ${3 * get.length})`);
    },
  },
  {
    id: 'hostile-names',
    tier: 'beyond',
    features: ['--dir', '--get', '-o', 'format:project-pdu'],
    title: 'GETs whose refusal would quote a name longer than a packet (../ + 465 × €, 700 NULs) leave the server serving; ..hidden is a name like any other',
    roles: ['server', 'client'],
    async run(ctx) {
      const f = await folders(ctx, { '..hidden': 1000 });
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      const euros = (room: number) => Buffer.from(`../${'€'.repeat(Math.min(465, Math.floor((room - 3) / 3)))}`);
      const nuls = (room: number) => new Uint8Array(Math.min(700, room));
      for (const [what, name] of [['../ + 465 × €', euros], ['700 NULs', nuls]] as const) {
        const error = await rawGet(ctx, server, name);
        ctx.t.ok(error !== undefined, `${what}: refused with an ERROR (${error?.slice(0, 80)})`);
        await new Promise((resolve) => setTimeout(resolve, 300));
        ctx.t.equal(server.proc.exit, undefined, `${what}: the server still runs`);
      }
      const out = path.join(f.local, 'hidden.bin');
      const run = await get(ctx, server.host, server.port, '..hidden', out, [], 30_000);
      await checkArrived(ctx, run, out, f.data.get('..hidden') as Buffer, '--get ..hidden afterwards');
    },
  },
  {
    id: 'tcp',
    tier: 'beyond',
    features: ['--dir', '--get', '-o', '--tcp'],
    title: 'with --tcp the same 1 MiB file arrives byte-identical over TCP',
    roles: ['server', 'client'],
    async run(ctx) {
      const f = await folders(ctx, { 'mebi.bin': MiB });
      const server = await ctx.server('server', 'udp', ['--dir', f.served]);
      const out = path.join(f.local, 'mebi.bin');
      const run = await get(ctx, server.host, server.port, 'mebi.bin', out, ['--tcp']);
      await checkArrived(ctx, run, out, f.data.get('mebi.bin') as Buffer, '--tcp');
    },
  },
  {
    id: 'netns',
    tier: 'beyond',
    features: ['--dir', '--get', '-o', '--tcp'],
    title: 'between two network namespaces with 5 % kernel loss (nft), 4 MiB arrive byte-identical over UDP and over --tcp',
    roles: ['server', 'client'],
    peers: [PEERS.ip, PEERS.nft],
    root: true,
    timeoutMs: 120_000,
    async run(ctx) {
      // The runner skips this visibly without root, ip or nft (root: true, peers).
      const f = await folders(ctx, { 'four.bin': 4 * MiB });
      const pair = await createNetnsPair();
      try {
        await pair.setLoss('a', 5);
        await pair.setLoss('b', 5);
        const port = 9011;
        const server = ctx.supervisor.start('server', pair.exec('b', [...ctx.command('server'), '--host', pair.addrB, '--port', String(port), '--dir', f.served]), { cwd: ctx.target.cwd });
        await waitReady(server, port, 'udp', 20_000);
        for (const extra of [[], ['--tcp']]) {
          const out = path.join(f.local, `four${extra.join('')}.bin`);
          const run = await ctx.exec('client', pair.exec('a', [...ctx.command('client'), '--host', pair.addrB, '--port', String(port), '--get', 'four.bin', '-o', out, ...extra]), { cwd: ctx.target.cwd, timeoutMs: 60_000 });
          await checkArrived(ctx, run, out, f.data.get('four.bin') as Buffer, `netns ${extra.length ? 'TCP' : 'UDP'}`);
        }
        const counters = await runCommand('ip', ['netns', 'exec', pair.b, 'nft', 'list', 'ruleset']);
        const dropped = Number(/counter packets (\d+)/.exec(counters)?.[1] ?? 0);
        ctx.t.ok(dropped > 0, `the kernel dropped packets on the way in (${dropped} in b)`);
        await server.stop();
      } finally {
        await pair.destroy();
      }
    },
  },
]);

