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
import { createShellServer, fileAuditLog } from './server.ts';

const decoder = new TextDecoder();

/** An in-process server in a temporary folder, with user ana/clave. */
async function start(t: Test, { maxFailures = 5 } = {}) {
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
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const session of server.sessions) session.socket.destroy();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const connect = async () => {
    const channel = await openSession('127.0.0.1', port, path.join(dir, 'known_hosts'));
    t.teardown(() => channel.socket.destroy());
    return { channel, inbox: new Inbox(channel) };
  };
  return { dir, work, log, connect };
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
