/**
 * Exercise 9: a chat that pairs users two by two. Roles: server, client.
 *
 * Conversations between the target's clients run with their stdin kept open
 * (a pipe the harness writes to, like a person typing), and what each client
 * printed is searched for the partner's numbered lines, in order. The load
 * and abuse requirements also speak the documented line protocol
 * (ej09/protocol.ts: `NAME`, `MSG`, `PAIRED`, …) from the harness's own
 * sockets, because 100 client processes would measure process start-up, not
 * the server.
 *
 * Tiers. The assignment fixes the two command lines and asks for users
 * paired two by two ("vincular a 2 usuarios") on a server multiplexing its
 * sockets; the line protocol, `--name`, `/quit` and the words announcing a
 * departure are this project's. So the assignment tier (`pairs`) starts the
 * clients with `--host` and `--port` alone and types into them as a person
 * would (a first line that may be taken as a name, then numbered lines), and
 * checks who received what: each user only its partner's lines, all of them,
 * in order, also while it types nothing, and the other pair still talking
 * after one user is killed. Everything on the raw protocol or with `--name`
 * is beyond.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type net from 'node:net';
import type { Proc } from '../proc.ts';
import { type Context, cliRequirement, defineScenario, PEERS } from '../scenario.ts';
import { TmuxSession } from '../tmux.ts';
import { tcpConnect } from '../wire.ts';

/** Starts a client with its stdin open for the harness to type into. */
function startClient(ctx: Context, port: number, name: string): Proc {
  return ctx.supervisor.start(`client-${name}`, [...ctx.command('client'), '--host', ctx.host, '--port', String(port), '--name', name], { stdin: true, cwd: ctx.target.cwd });
}

/** How many connections the server on `port` has accepted and holds (ESTABLISHED, local port `port`), from /proc/net. */
async function accepted(port: number): Promise<number> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const table = await readFile(file, 'utf8').catch(() => '');
    for (const line of table.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[1]?.endsWith(`:${hex}`) && fields[3] === '01') count++;
    }
  }
  return count;
}

/** Waits (bounded) until the server on `port` holds `n` connections; returns how many it held. */
async function acceptedAtLeast(port: number, n: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const held = await accepted(port);
    if (held >= n || Date.now() > deadline) return held;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The numbers of `tag-N` markers a client printed, in the order printed. */
function markers(output: string, tag: string): number[] {
  return [...output.matchAll(new RegExp(`${tag}-(\\d+)\\b`, 'g'))].map((m) => Number(m[1]));
}

function inOrder(numbers: number[], count: number): string {
  if (numbers.length !== count) return `${numbers.length} of ${count} arrived`;
  const bad = numbers.findIndex((n, i) => n !== i + 1);
  return bad < 0 ? 'all, in order' : `out of order at position ${bad + 1} (got ${numbers[bad]})`;
}

/** A harness-side chat user on a raw socket, speaking the documented protocol. */
class RawUser {
  readonly socket: net.Socket;
  readonly lines: string[] = [];
  closed = false;
  #buffer = '';

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      const parts = this.#buffer.split('\n');
      this.#buffer = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    socket.on('error', () => {});
    socket.on('end', () => (this.closed = true));
    socket.on('close', () => (this.closed = true));
  }

  static async connect(ctx: Context, port: number, name?: string): Promise<RawUser> {
    const user = new RawUser(await tcpConnect(ctx.host, port));
    if (name) user.socket.write(`NAME ${name}\n`);
    return user;
  }

  /** Waits until a received line matches `pattern`, or the connection closes, or `timeoutMs`. */
  async until(pattern: RegExp, timeoutMs = 10_000): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((l) => pattern.test(l));
      if (line !== undefined || this.closed || Date.now() > deadline) return line;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

export default defineScenario('ej09', 'Chat: users paired two by two', [
  { ...cliRequirement({ server: [/--host HOST/, /--port PORT/], client: [/--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    id: 'pairs',
    tier: 'assignment',
    title: "four clients started as the assignment shows (--host, --port): each user receives only its partner's lines, all of them, in order, also while it types nothing; killing one user leaves the other pair talking",
    roles: ['server', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const names = ['ana', 'beto', 'carla', 'dario'];
      const tag = randomBytes(2).toString('hex');
      const clients: Proc[] = [];
      for (const [i, name] of names.entries()) {
        clients.push(ctx.supervisor.start(`client-${name}`, [...ctx.command('client'), '--host', ctx.host, '--port', String(server.port)], { stdin: true, cwd: ctx.target.cwd }));
        const held = await acceptedAtLeast(server.port, i + 1, 20_000);
        if (held < i + 1) {
          ctx.t.fail(`expected the server to hold ${i + 1} connections once client ${name} started; observed ${held} (client ${clients[i]?.exit ? `exited ${clients[i]?.exit?.code}` : 'running'}, stderr: ${clients[i]?.stderr.trim().slice(-200) || 'empty'})`);
          return;
        }
        // A first line a client may take as its user's name (and if not, a harmless message).
        clients[i]?.write(`${name}\n`, { keepOpen: true });
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const line = (i: number, n: number) => `${names[i]}-${tag}-${n}`;
      for (let n = 1; n <= 5; n++) {
        for (const [i, client] of clients.entries()) client.write(`${line(i, n)}\n`, { keepOpen: true });
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      /** Whose numbered lines client `i` printed (itself left out: a client may echo its own). */
      const heardFrom = (i: number) => names.map((_, j) => j).filter((j) => j !== i && (clients[i]?.stdout ?? '').includes(`${names[j]}-${tag}-`));
      await Promise.all(clients.map((client, i) => client.until(() => (heardFrom(i).length > 0 && markers(client.stdout, `${names[heardFrom(i)[0] as number]}-${tag}`).length >= 5 ? true : undefined), 15_000, 'a partner\'s five lines').catch(() => undefined)));
      const partner = clients.map((_, i) => heardFrom(i));
      for (const [i] of clients.entries()) {
        const from = partner[i] ?? [];
        ctx.t.equal(from.length, 1, `expected ${names[i]} to receive the lines of exactly one other user (its partner); observed lines of ${from.map((j) => names[j]).join(', ') || 'no one'}`);
        const j = from[0];
        if (from.length !== 1 || j === undefined) continue;
        ctx.t.same(partner[j], [i], `expected the pairing to be mutual: ${names[i]} hears ${names[j]}, so ${names[j]} hears only ${names[i]}; observed ${names[j]} hears ${(partner[j] ?? []).map((k) => names[k]).join(', ') || 'no one'}`);
        ctx.t.equal(inOrder(markers(clients[i]?.stdout ?? '', `${names[j]}-${tag}`), 5), 'all, in order', `${names[i]} received ${names[j]}'s 5 lines`);
      }
      const [ana] = clients as [Proc];
      const anaPartner = partner[0]?.length === 1 ? (partner[0][0] as number) : undefined;
      if (anaPartner === undefined) return;
      // A line arrives while its reader types nothing (a client blocked reading the keyboard would hold it back).
      const idle = `${names[anaPartner]}-${tag}-idle`;
      clients[anaPartner]?.write(`${idle}\n`, { keepOpen: true });
      const shown = await ana.waitForOutput(new RegExp(idle), 5000).then(() => true, () => false);
      ctx.t.ok(shown, `expected ana, typing nothing, to show ${names[anaPartner]}'s new line within 5 s; observed ${JSON.stringify(ana.stdout.slice(-160))}`);
      // One user gone: the server serves on, the other pair still talks.
      const others = [0, 1, 2, 3].filter((k) => k !== 0 && k !== anaPartner);
      const [c, d] = others as [number, number];
      await ana.stop({ signal: 'SIGKILL', graceMs: 0 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const after = `${names[c]}-${tag}-after`;
      clients[c]?.write(`${after}\n`, { keepOpen: true });
      const talked = await clients[d]?.waitForOutput(new RegExp(after), 10_000).then(() => true, () => false);
      ctx.t.equal(server.proc.exit, undefined, `expected the server to keep running after ana was killed; observed ${server.proc.exit ? `exit ${server.proc.exit.code ?? server.proc.exit.signal}` : ''}`);
      ctx.t.ok(talked, `expected ${names[c]}'s line to reach ${names[d]} after ana was killed; observed ${JSON.stringify(clients[d]?.stdout.slice(-160))}`);
    },
  },
  {
    id: 'thousand',
    tier: 'beyond',
    features: ['--name'],
    title: 'two clients exchange 1000 messages each way, all delivered in order to the partner',
    roles: ['server', 'client'],
    timeoutMs: 90_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const ana = startClient(ctx, server.port, 'ana');
      const beto = startClient(ctx, server.port, 'beto');
      await ana.waitForOutput(/beto/, 20_000);
      await beto.waitForOutput(/ana/, 20_000);
      ctx.t.pass('each client is told the name of its partner');
      const lines = (tag: string) => Array.from({ length: 1000 }, (_, i) => `${tag}-${i + 1} ${'x'.repeat(i % 50)}\n`).join('');
      ana.write(lines('from-ana'), { keepOpen: true });
      beto.write(lines('from-beto'), { keepOpen: true });
      await Promise.all([
        beto.waitForOutput(/from-ana-1000\b/, 60_000).catch(() => undefined),
        ana.waitForOutput(/from-beto-1000\b/, 60_000).catch(() => undefined),
      ]);
      ctx.t.equal(inOrder(markers(beto.stdout, 'from-ana'), 1000), 'all, in order', "beto received ana's 1000 messages");
      ctx.t.equal(inOrder(markers(ana.stdout, 'from-beto'), 1000), 'all, in order', "ana received beto's 1000 messages");
      ctx.t.same(markers(ana.stdout, 'from-ana'), [], 'ana did not get her own messages back');
      ana.write('/quit\n');
      const exit = await ana.waitForExit(10_000).catch(() => undefined);
      ctx.t.equal(exit?.code, 0, '/quit ends the client with status 0');
      await beto.waitForOutput(/ana.*(left|quit|gone|disconnect)|(left|quit|gone|disconnect).*ana/i, 10_000);
      ctx.t.pass("ana's departure is announced to beto");
      beto.write('', { keepOpen: false });
      const betoExit = await beto.waitForExit(10_000).catch(() => undefined);
      ctx.t.equal(betoExit?.code, 0, 'the end of input ends the other client with status 0');
    },
  },
  {
    id: 'fifty-pairs',
    tier: 'beyond',
    features: ['format:project-pdu'],
    title: '50 pairs at once: every user gets only its partner\'s messages, all of them, in order',
    roles: ['server'],
    timeoutMs: 90_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const users = await Promise.all(Array.from({ length: 100 }, (_, i) => RawUser.connect(ctx, server.port, `u${i}`)));
      try {
        const partners = await Promise.all(users.map(async (u) => (await u.until(/^PAIRED /, 20_000))?.slice(7)));
        ctx.t.equal(partners.filter(Boolean).length, 100, 'all 100 users were paired');
        const consistent = users.every((u, i) => {
          const p = partners[i];
          return p !== undefined && partners[Number(p.slice(1))] === `u${i}`;
        });
        ctx.t.ok(consistent, `expected the pairings to be mutual (a told b, b told a); observed ${partners.map((p, i) => `u${i}→${p ?? 'none'}`).filter((_, i) => partners[Number(partners[i]?.slice(1))] !== `u${i}`).slice(0, 5).join(', ')}`);
        // Everyone talks at once: 20 messages naming sender and number.
        for (let k = 1; k <= 20; k++) for (const [i, u] of users.entries()) u.socket.write(`MSG from-u${i}-${k}\n`);
        await Promise.all(users.map((u) => u.until(/-20$/, 30_000)));
        let crossed = 0;
        let incomplete = 0;
        for (const [i, u] of users.entries()) {
          const got = u.lines.filter((l) => l.startsWith('MSG '));
          const expected = Array.from({ length: 20 }, (_, k) => `MSG from-${partners[i]}-${k + 1}`);
          if (got.some((l) => !l.startsWith(`MSG from-${partners[i]}-`))) crossed++;
          if (got.join('\n') !== expected.join('\n')) incomplete++;
        }
        ctx.t.equal(crossed, 0, 'no user received a message from anyone but its partner');
        ctx.t.equal(incomplete, 0, "every user received its partner's 20 messages, in order");
      } finally {
        for (const u of users) u.socket.destroy();
      }
    },
  },
  {
    id: 'partner-killed',
    tier: 'beyond',
    features: ['--name'],
    title: 'a partner killed mid-conversation is announced, and the one left is paired with the next arrival',
    roles: ['server', 'client'],
    timeoutMs: 90_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const ana = startClient(ctx, server.port, 'ana');
      const beto = startClient(ctx, server.port, 'beto');
      await ana.waitForOutput(/beto/, 20_000);
      await beto.waitForOutput(/ana/, 20_000);
      beto.write('before-the-crash\n', { keepOpen: true });
      await ana.waitForOutput(/before-the-crash/, 10_000);
      await beto.stop({ signal: 'SIGKILL', graceMs: 0 });
      const announced = await ana.waitForOutput(/beto.*(left|quit|gone|disconnect|lost)|(left|quit|gone|disconnect|lost).*beto/i, 10_000).catch(() => undefined);
      ctx.t.ok(announced, `the kill is announced to ana (ana saw: ${JSON.stringify(ana.stdout.slice(-200))})`);
      const carla = startClient(ctx, server.port, 'carla');
      const paired = await ana.waitForOutput(/carla/, 20_000).catch(() => undefined);
      ctx.t.ok(paired, `expected ana to be paired again with the next arrival, carla; observed ana's output ${JSON.stringify(ana.stdout.slice(-200))}`);
      carla.write('hola-ana\n', { keepOpen: true });
      ctx.t.ok(await ana.waitForOutput(/hola-ana/, 10_000).catch(() => undefined), `expected carla's message to reach ana; observed ana's output ${JSON.stringify(ana.stdout.slice(-200))}`);
      ctx.t.equal(server.proc.exit, undefined, 'the server still runs');
    },
  },
  {
    id: 'abuse',
    tier: 'beyond',
    features: ['format:project-pdu'],
    title: 'a client sending garbage or a 10 MB line is cut off with a message; a conversation beside it is unaffected',
    roles: ['server'],
    timeoutMs: 60_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const a = await RawUser.connect(ctx, server.port, 'calm-a');
      const b = await RawUser.connect(ctx, server.port, 'calm-b');
      try {
        await Promise.all([a.until(/^PAIRED/), b.until(/^PAIRED/)]);
        const cases: [string, (u: RawUser) => void][] = [
          ['a 10 MB line', (u) => u.socket.write(Buffer.alloc(10 * 1024 * 1024, 0x61))],
          ['binary garbage', (u) => u.socket.write(Buffer.concat([randomBytes(2048), Buffer.from('\n')]))],
          ['an unknown command', (u) => u.socket.write('HELLO there\n')],
          ['invalid UTF-8 in a message', (u) => u.socket.write(Buffer.from([0x4d, 0x53, 0x47, 0x20, 0xff, 0xfe, 0x0a]))],
        ];
        for (const [what, abuse] of cases) {
          const rude = await RawUser.connect(ctx, server.port, what.includes('UTF-8') ? 'rude' : undefined);
          if (what.includes('UTF-8')) await rude.until(/^(WAIT|PAIRED)/);
          abuse(rude);
          const error = await rude.until(/^ERROR/, 15_000);
          ctx.t.ok(error, `${what}: the server answers ERROR with a reason (${error ?? 'nothing'})`);
          const deadline = Date.now() + 10_000;
          while (!rude.closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
          ctx.t.ok(rude.closed, `${what}: the connection is closed`);
          rude.socket.destroy();
        }
        a.socket.write('MSG still-talking\n');
        ctx.t.ok(await b.until(/^MSG still-talking$/), `expected the calm pair still to talk; observed calm-b's last lines ${JSON.stringify(b.lines.slice(-3))}`);
        ctx.t.equal(server.proc.exit, undefined, 'the server still runs');
      } finally {
        a.socket.destroy();
        b.socket.destroy();
      }
    },
  },
  {
    id: 'interactive',
    tier: 'beyond',
    features: ['--name'],
    title: 'in terminals (tmux): messages arrive while typing, and the half-typed line is kept intact',
    roles: ['server', 'client'],
    peers: [PEERS.tmux],
    timeoutMs: 90_000,
    async run(ctx) {
      const server = await ctx.server('server', 'tcp');
      const args = ['--host', ctx.host, '--port', String(server.port)];
      const ana = await TmuxSession.start(ctx, [...ctx.command('client'), ...args, '--name', 'ana'], { width: 100, height: 20 });
      let beto: TmuxSession | undefined;
      try {
        await ana.waitFor(/wait/i, 20_000);
        beto = await TmuxSession.start(ctx, [...ctx.command('client'), ...args, '--name', 'beto'], { width: 100, height: 20 });
        await beto.waitFor(/ana/, 20_000);
        await ana.waitFor(/beto/);
        await ana.line('hola beto');
        await beto.waitFor(/hola beto/);
        ctx.t.pass("ana's line appears on beto's screen");
        await beto.send(['medio escr'], { literal: true });
        await beto.waitFor(/medio escr$/);
        await ana.line('interrumpo');
        const screen = await beto.waitFor(/interrumpo[\s\S]*medio escr$/);
        ctx.t.pass('the message arrives while beto types, above his line');
        ctx.t.notMatch(screen, /medio escr.*interrumpo/, 'and is not mixed into the half-typed text');
        await beto.send(['ito'], { literal: true });
        await beto.send(['Enter']);
        await ana.waitFor(/medio escrito/);
        ctx.t.pass('the line typed around the interruption arrives whole: "medio escrito"');
        await beto.line('/quit');
        await ana.waitFor(/beto.*(left|quit|gone)/i);
        ctx.t.pass('/quit leaves, and ana is told');
      } finally {
        await ana.kill();
        await beto?.kill();
      }
    },
  },
]);
