import { mkdir, mkdtemp, readdir, readFile, realpath, rm } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import nacl from 'tweetnacl';
import type { SecureSocket } from '../lib/secure-channel.ts';
import { Inbox, openSession } from './client.ts';
import { addUser, LoginLimiter } from './keys.ts';
import * as P from './protocol.ts';
import { Attacker } from './fixtures/attacker.ts';
import { createShellServer, fileAuditLog, type ShellServerOptions } from './server.ts';

const decoder = new TextDecoder();

/** An in-process server in a temporary folder, with user ana/clave. */
async function start(t: Test, { maxFailures = 5, ...options }: { maxFailures?: number } & Partial<ShellServerOptions> = {}) {
  const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'ej05-server-')));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const work = path.join(dir, 'work');
  await mkdir(path.join(work, 'sub'), { recursive: true });
  const users = path.join(dir, 'users');
  await addUser(users, 'ana', 'clave');
  const log = path.join(dir, 'session.log');
  const server = createShellServer({
    hostKey: nacl.sign.keyPair(),
    usersFile: users,
    home: work,
    failDelayMs: 10,
    limiter: new LoginLimiter({ maxFailures, windowMs: 60_000 }),
    audit: fileAuditLog(log),
    ...options,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const session of server.sessions) session.socket.destroy();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const connect = async () => {
    const channel = await openSession('127.0.0.1', port, path.join(dir, 'known_hosts'), { newHostKey: 'accept' });
    t.teardown(() => channel.socket.destroy());
    return { channel, inbox: new Inbox(channel) };
  };
  return { dir, work, log, connect, port, server };
}

async function login(channel: SecureSocket, inbox: Inbox, user: string, password: string) {
  channel.send(P.encodeMessage(P.LOGIN, { user, password }));
  const reply = await inbox.next();
  return { type: reply.type, body: P.payloadJson(reply.payload) };
}

/** Runs a command, collecting its output until EXIT. */
async function run(channel: SecureSocket, inbox: Inbox, command: string, { interruptAfterMs }: { interruptAfterMs?: number } = {}) {
  channel.send(P.encodeMessage(P.RUN, command));
  if (interruptAfterMs !== undefined) setTimeout(() => channel.send(P.encodeMessage(P.INTERRUPT)), interruptAfterMs);
  const stdout: Uint8Array[] = [];
  let stderr = '';
  let messages = 0;
  for (;;) {
    const { type, payload } = await inbox.next();
    messages++;
    if (type === P.STDOUT) stdout.push(Uint8Array.from(payload));
    else if (type === P.STDERR) stderr += decoder.decode(payload);
    else if (type === P.EXIT) return { stdout: Buffer.concat(stdout), stderr, exit: P.payloadJson(payload), messages };
  }
}

t.test('a session: login, commands, persistent cd, exit statuses, the log', async (t) => {
  const server = await start(t);
  const { channel, inbox } = await server.connect();
  const welcome = await login(channel, inbox, 'ana', 'clave');
  t.equal(welcome.type, P.WELCOME);
  t.equal(welcome.body.cwd, server.work, 'starts in the work folder');
  t.equal((await run(channel, inbox, 'pwd')).stdout.toString(), `${server.work}\n`);
  const cd = await run(channel, inbox, 'cd sub');
  t.same([cd.stdout.toString(), cd.exit.code, cd.exit.cwd], ['', 0, path.join(server.work, 'sub')], 'cd prints nothing and moves');
  t.equal((await run(channel, inbox, 'pwd')).stdout.toString(), `${server.work}/sub\n`, 'the cd persisted');
  const bad = await run(channel, inbox, 'cd no-such-folder');
  t.not(bad.exit.code, 0, 'a failed cd fails');
  t.match(bad.stderr, /no-such-folder/);
  t.equal(bad.exit.cwd, path.join(server.work, 'sub'), 'and does not move');
  const failing = await run(channel, inbox, 'echo out; echo err >&2; exit 7');
  t.same([failing.stdout.toString(), failing.stderr, failing.exit.code], ['out\n', 'err\n', 7]);
  const log = await readFile(server.log, 'utf8');
  t.match(log, /login ok: user ana/);
  t.match(log, /command: "exit 7"|command: "echo out; echo err >&2; exit 7"/);
  t.match(log, /exit 7/);
  t.notMatch(log, /clave/, 'never the password');
});

t.test('a megabyte of output arrives intact, split into frames', async (t) => {
  const server = await start(t);
  const { channel, inbox } = await server.connect();
  await login(channel, inbox, 'ana', 'clave');
  const result = await run(channel, inbox, "head -c 1000000 /dev/zero | tr '\\0' x");
  t.equal(result.stdout.length, 1_000_000, 'all bytes');
  t.ok(result.stdout.every((b) => b === 0x78), 'all of them x');
  t.ok(result.messages > 1_000_000 / P.MAX_CHUNK, `in ${result.messages - 1} output messages of at most ${P.MAX_CHUNK} bytes`);
});

t.test('INTERRUPT stops a running command and its children', async (t) => {
  const server = await start(t);
  const { channel, inbox } = await server.connect();
  await login(channel, inbox, 'ana', 'clave');
  const started = Date.now();
  // The background sleep ignores SIGINT (sh does that to background jobs): the SIGKILL 2 s later must get it.
  const marker = `30.${process.pid}`;
  const result = await run(channel, inbox, `sleep ${marker} & sleep ${marker}; echo not-reached`, { interruptAfterMs: 300 });
  t.ok(Date.now() - started < 10_000, 'ended long before 30 s');
  t.notMatch(result.stdout.toString(), /not-reached/);
  t.ok(result.exit.signal === 'SIGINT' || result.exit.code !== 0, `ended by the interrupt (${JSON.stringify(result.exit)})`);
  t.equal((await run(channel, inbox, 'echo next')).stdout.toString(), 'next\n', 'the session goes on');
  await new Promise((resolve) => setTimeout(resolve, 2500));
  t.same(await processesWith(`sleep ${marker}`), [], 'no process of the command is left, background job included');
});

/** PIDs whose command line is exactly `cmdline`. */
async function processesWith(cmdline: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const text = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (text.split('\0').join(' ').trim() === cmdline) found.push(Number(name));
  }
  return found;
}

t.test('wrong passwords: retry allowed, then the connection ends; the address is then locked out', async (t) => {
  const server = await start(t, { maxFailures: 4 });
  const { channel, inbox } = await server.connect();
  const first = await login(channel, inbox, 'ana', 'mala');
  t.same([first.type, first.body.retry], [P.DENIED, true], 'first failure: may retry');
  await login(channel, inbox, 'nadie', 'clave');
  const third = await login(channel, inbox, 'ana', 'otra');
  t.same([third.type, third.body.retry], [P.DENIED, false], 'third failure on one connection: no more tries');
  await t.rejects(inbox.next(), /session closed/, 'the server ends the session');
  const again = await server.connect();
  await login(again.channel, again.inbox, 'ana', 'mala');
  const locked = await server.connect();
  const refused = await login(locked.channel, locked.inbox, 'ana', 'clave');
  t.equal(refused.type, P.DENIED, 'the right password is refused once the address is locked out');
  t.match(String(refused.body.message), /Too many failed logins/);
});

t.test('anything but LOGIN before the login closes the session', async (t) => {
  const server = await start(t);
  const { channel, inbox } = await server.connect();
  channel.send(P.encodeMessage(P.RUN, 'touch pwned'));
  await t.rejects(inbox.next(), /session closed/);
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.notOk(await readFile(path.join(server.work, 'pwned')).catch(() => undefined), 'nothing ran');
});

function attacker(t: Test, port: number, options: { localAddress?: string } = {}): Attacker {
  const a = new Attacker(port, options);
  t.teardown(() => a.socket.destroy());
  return a;
}

/** Whether `promise` settles within `ms` (a bound for a failing test, not a speed check). */
async function within(promise: Promise<unknown>, ms = 15_000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([promise.then(() => true, () => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return result;
}

/** Whether the server served an attacker's handshake or refused the connection (bounded). */
async function outcome(a: Attacker): Promise<'served' | 'refused' | 'no answer'> {
  if (!(await within(a.ready))) return 'no answer';
  return a.ready.then(() => 'served' as const, () => 'refused' as const);
}

/** Waits (bounded) until the server has no session left, so that its log is complete. */
async function sessionsGone(server: { sessions: Set<unknown> }, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (server.sessions.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return server.sessions.size === 0;
}

t.test('50 parallel wrong logins then the right one, from one address: no WELCOME while it is blocked', async (t) => {
  const server = await start(t, { maxFailures: 5, failDelayMs: 500, maxStartups: 100, perSourceMaxStartups: 100 });
  const attackers = Array.from({ length: 51 }, () => attacker(t, server.port));
  await Promise.all(attackers.map((a) => a.ready));
  // All written in one turn: the server reads them in this order, the right password last.
  for (const [i, a] of attackers.entries()) a.send(P.LOGIN, { user: 'ana', password: i === 50 ? 'clave' : `mala-${i}` });
  const replies = await Promise.all(attackers.map((a) => a.message(0)));
  const welcomes = replies.filter((r) => r?.type === P.WELCOME).length;
  const refusedAtOnce = replies.filter((r) => /Too many failed logins/.test(String(r?.body.message))).length;
  t.equal(welcomes, 0, 'no WELCOME at all inside the burst');
  t.equal(replies[50]?.type, P.DENIED, 'the right password, sent while the address is blocked, is refused');
  t.match(String(replies[50]?.body.message), /Too many failed logins/, 'as rate limited');
  t.ok(refusedAtOnce >= 45, `at most 5 of the 51 were checked at all (${51 - refusedAtOnce} were)`);
});

t.test('a fourth login on one connection is never checked: the connection is closed after the third failure', async (t) => {
  const server = await start(t, { maxFailures: 100 });
  const a = attacker(t, server.port);
  await a.ready;
  for (let i = 0; i < 3; i++) {
    a.send(P.LOGIN, { user: 'ana', password: `mala-${i}` });
    const reply = await a.message(i);
    t.equal(reply?.type, P.DENIED, `failure ${i + 1} is denied`);
    if (i === 2) t.equal(reply?.body.retry, false, 'the third says no more tries');
  }
  t.ok(await within(a.ended), 'the server ends the connection after the third failure');
  // The attacker ignores that and sends the right password on its still-open side.
  a.send(P.LOGIN, { user: 'ana', password: 'clave' });
  t.ok(await sessionsGone(server.server), 'the server closes the connection for good');
  t.notOk(a.messages.some((m) => m.type === P.WELCOME), 'no WELCOME');
  const log = await readFile(server.log, 'utf8');
  t.notMatch(log, /login ok/, 'the fourth login was not checked: no success in the log');
  t.equal(log.match(/login failed/g)?.length, 3, 'three failures logged, no fourth attempt');
});

t.test('past the login deadline a connection cannot log in any more', async (t) => {
  const server = await start(t, { loginTimeoutMs: 300 });
  const a = attacker(t, server.port);
  await a.ready;
  t.ok(await within(a.ended), 'the server ends an idle unauthenticated connection at its deadline');
  a.send(P.LOGIN, { user: 'ana', password: 'clave' });
  t.ok(await sessionsGone(server.server), 'the server closes the connection for good');
  t.notOk(a.messages.some((m) => m.type === P.WELCOME), 'no WELCOME');
  const log = await readFile(server.log, 'utf8');
  t.match(log, /no login within 0\.3 s/, 'the deadline is logged');
  t.notMatch(log, /login ok/, 'the late login was never checked');
});

t.test('unauthenticated connections are capped per source and in all; established sessions keep working', async (t) => {
  const server = await start(t, { perSourceMaxStartups: 2, maxStartups: 3 });
  const established = await server.connect();
  t.equal((await login(established.channel, established.inbox, 'ana', 'clave')).type, P.WELCOME, 'a session logs in first');
  const first = [attacker(t, server.port), attacker(t, server.port)];
  await Promise.all(first.map((a) => a.ready));
  t.pass('two unauthenticated connections from 127.0.0.1 are served');
  const third = attacker(t, server.port);
  t.equal(await outcome(third), 'refused', 'a third one from the same address is refused');
  const other = attacker(t, server.port, { localAddress: '127.0.0.2' });
  await other.ready;
  t.pass('one from 127.0.0.2 is served (3 unauthenticated in all)');
  const fourth = attacker(t, server.port, { localAddress: '127.0.0.3' });
  t.equal(await outcome(fourth), 'refused', 'a fourth in all, from 127.0.0.3, is refused');
  t.equal((await run(established.channel, established.inbox, 'echo still-here')).stdout.toString(), 'still-here\n', 'the established session keeps working');
  // Logging in frees the slot.
  first[0]!.send(P.LOGIN, { user: 'ana', password: 'clave' });
  t.equal((await first[0]!.message(0))?.type, P.WELCOME, 'one of them logs in');
  const next = attacker(t, server.port);
  await next.ready;
  t.pass('and another unauthenticated connection from 127.0.0.1 is served again');
  const log = await readFile(server.log, 'utf8');
  t.match(log, /refused: 2 unauthenticated connections from 127\.0\.0\.1/, 'the per-source refusal is logged');
  t.match(log, /refused: 3 unauthenticated connections in all/, 'the total refusal is logged');
});
