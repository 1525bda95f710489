/**
 * Exercise 5: a remote shell with ssh's protections. Roles: server, client.
 *
 * The server is started with its files in a temporary folder
 * (`--host-key`, `--users`, `--workdir`, `--log`) and the client with its own
 * `--known-hosts` there too: a run never touches the real home folder. The
 * user is created through the server's `--add-user NAME` (password on stdin),
 * and the client reads the user name, the password and the commands from
 * stdin, one per line, as from a script.
 *
 * A client that refuses an unknown host key outside a terminal (as this
 * project's does, ssh's StrictHostKeyChecking=ask) is given `--accept-new`
 * for the scripted sessions, when its `-h` names that flag; a client that
 * does not have it (a submission that pins silently) is started as before.
 * In the terminal requirement, a host-key question is answered "yes" after
 * checking that it shows the server's fingerprint.
 *
 * Attacks come from the harness's own relay (tamper-relay.ts), which knows
 * the u32 length framing and nothing else.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readPackets, startCapture } from '../capture.ts';
import { checkLogged, type ClientRun, type Context, cliRequirement, defineScenario, PEERS, type Server, TRACEBACK } from '../scenario.ts';
import { startTamperRelay, type Tamper } from '../tamper-relay.ts';
import { TmuxSession } from '../tmux.ts';
import { tcpConnect } from '../wire.ts';

const USER = 'zorro_user';
const PASSWORD = 'S3cr3t-Pa55w0rd';

interface Files {
  dir: string;
  work: string;
  users: string;
  hostKey: string;
  knownHosts: string;
  log: string;
}

/** A temporary folder with a user added through the server's --add-user. */
async function setup(ctx: Context): Promise<Files> {
  const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'ej05-')));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files = {
    dir,
    work: path.join(dir, 'work'),
    users: path.join(dir, 'users'),
    hostKey: path.join(dir, 'host_key'),
    knownHosts: path.join(dir, 'known_hosts'),
    log: path.join(dir, 'session.log'),
  };
  await mkdir(files.work);
  const add = await ctx.client('server', ['--add-user', USER, '--users', files.users], { input: `${PASSWORD}\n` });
  if (add.exit.code !== 0) throw new Error(`server --add-user failed (exit ${add.exit.code}): ${add.stderr.trim()}`);
  return files;
}

function startServer(ctx: Context, files: Files, extra: string[] = []): Promise<Server> {
  return ctx.server('server', 'tcp', ['--host-key', files.hostKey, '--users', files.users, '--workdir', files.work, '--log', files.log, '--fail-delay', '0.2', ...extra]);
}

// Per target manifest: whether its client's help names --accept-new.
const acceptNew = new Map<string, Promise<boolean>>();

/** `['--accept-new']` when the target's client has that flag (its -h says so), else nothing. */
async function acceptNewArgs(ctx: Context): Promise<string[]> {
  let known = acceptNew.get(ctx.target.file);
  if (!known) {
    known = ctx.client('client', ['-h']).then((run) => /--accept-new\b/.test(run.stdout + run.stderr), () => false);
    acceptNew.set(ctx.target.file, known);
  }
  return (await known) ? ['--accept-new'] : [];
}

/** Runs the client against `port` with stdin lines: user, password, then the commands. */
async function session(ctx: Context, files: Files, port: number, lines: string[], { user = USER, password = PASSWORD, timeoutMs = 20_000 } = {}): Promise<ClientRun> {
  return ctx.client('client', ['--host', ctx.host, '--port', String(port), '--known-hosts', files.knownHosts, ...(await acceptNewArgs(ctx))], {
    input: [user, password, ...lines].map((l) => `${l}\n`).join(''),
    timeoutMs,
  });
}

function describe(run: ClientRun): string {
  return `exit ${run.exit.code ?? run.exit.signal}; stdout ${JSON.stringify(run.stdout.slice(-300))}; stderr ${JSON.stringify(run.stderr.slice(-300))}`;
}

function checkRefused(ctx: Context, run: ClientRun, what: string): void {
  ctx.t.notOk(run.timedOut, `${what}: the client ended by itself`);
  ctx.t.ok(run.exit.code !== 0 && run.exit.code !== null, `${what}: exit status non-zero (${describe(run)})`);
  ctx.t.notMatch(run.stderr, TRACEBACK, `${what}: no stack trace`);
}

/** Runs one session through a relay that tampers as `tamper` says. */
async function tampered(ctx: Context, tamper: Tamper, lines: string[]): Promise<{ run: ClientRun; server: Server; files: Files; count: number }> {
  const files = await setup(ctx);
  const server = await startServer(ctx, files);
  const relay = await startTamperRelay(ctx.host, server.port, tamper);
  try {
    const run = await session(ctx, files, relay.port, lines);
    return { run, server, files, count: relay.tampered };
  } finally {
    await relay.close();
  }
}

export default defineScenario('ej05', 'Remote shell with ssh-like security', [
  { ...cliRequirement({ server: [/--host HOST/, /--port PORT/, /--log LOG/], client: [/--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    // The assignment's user is nahuel/1234 in its own code; users, keys and folders given by option are this project's.
    id: 'session',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay'],
    title: 'a scripted session (pwd, mkdir, cd, ls, mv, a failing command) gives the expected outputs and statuses',
    roles: ['server', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      const files = await setup(ctx);
      const server = await startServer(ctx, files);
      const run = await session(ctx, files, server.port, ['pwd', 'mkdir -p carpeta/sub', 'cd carpeta', 'pwd', 'touch a.txt', 'mv a.txt b.txt', 'ls', 'ls no-such-file', 'echo to-stderr >&2', 'exit 3']);
      ctx.t.notOk(run.timedOut, 'the session ended by itself at the end of input');
      const out = run.stdout;
      ctx.t.match(out, /^>>> /m, 'the ">>> " prompt is shown');
      ctx.t.ok(out.includes(`${files.work}\n`), `pwd prints the starting directory ${files.work}`);
      ctx.t.ok(out.includes(`${files.work}/carpeta\n`), 'after cd carpeta, pwd prints the new directory (cd persists)');
      ctx.t.match(out, /^b\.txt$/m, 'ls in the new directory lists b.txt (mv worked, in the right place)');
      ctx.t.notMatch(out, /^a\.txt$/m, 'a.txt is gone after mv');
      ctx.t.ok(existsSync(path.join(files.work, 'carpeta', 'b.txt')), 'the server\'s filesystem has carpeta/b.txt');
      ctx.t.ok(existsSync(path.join(files.work, 'carpeta', 'sub')), 'mkdir -p carpeta/sub made the folder');
      ctx.t.match(run.stderr, /no-such-file/, "the failing command's stderr comes back");
      ctx.t.match(run.stderr, /exit status 2/, 'its exit status (2) is reported');
      ctx.t.match(run.stderr, /to-stderr/, 'stderr output comes back on stderr');
      ctx.t.equal(run.exit.code, 3, 'the client exits with the last command\'s status, as ssh does');
      const log = await readFile(files.log, 'utf8').catch(() => '');
      ctx.t.match(log, new RegExp(`login ok: user ${USER}`), 'the session log records the login');
      ctx.t.match(log, /command: "mv a\.txt b\.txt"/, 'the session log records commands');
      ctx.t.match(log, /exit 2/, 'the session log records exit codes');
      ctx.t.match(log, /stdout "b\.txt\\n/, 'the session log records output');
      ctx.t.match(log, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/m, 'its lines are timestamped');
      ctx.t.notOk(log.includes(PASSWORD), 'the session log never contains the password');
      ctx.t.equal(server.proc.exit, undefined, 'the server still runs after the session');
    },
  },
  {
    id: 'secrets-at-rest',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay', 'format:scrypt'],
    title: 'the users file holds a salted scrypt hash, never the password, and it and the host key are mode 0600',
    roles: ['server'],
    async run(ctx) {
      const files = await setup(ctx);
      const users = await readFile(files.users, 'utf8');
      ctx.t.notOk(users.includes(PASSWORD), 'the password is not in the users file');
      ctx.t.match(users, new RegExp(`^${USER}:scrypt:`, 'm'), 'the entry is an scrypt hash');
      ctx.t.equal((await stat(files.users)).mode & 0o777, 0o600, 'the users file is mode 0600');
      // Same password again: a fresh salt gives a different hash.
      await ctx.client('server', ['--add-user', USER, '--users', files.users], { input: `${PASSWORD}\n` });
      const again = await readFile(files.users, 'utf8');
      ctx.t.not(again.trim(), users.trim(), 'the same password hashed again differs (salted)');
      ctx.t.equal(again.trim().split('\n').length, 1, 'adding the user again replaces the entry');
      await startServer(ctx, files);
      ctx.t.equal((await stat(files.hostKey)).mode & 0o777, 0o600, 'the host key created on first start is mode 0600');
    },
  },
  {
    // Login rate limits are this project's (ssh-like); the assignment asks only for encrypted credentials.
    id: 'wrong-password',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay', '--max-failures', '--lockout'],
    title: 'a wrong password is refused, and repeated failures lock the address out even with the right one',
    roles: ['server', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      const files = await setup(ctx);
      const server = await startServer(ctx, files, ['--max-failures', '3', '--lockout', '60']);
      const started = performance.now();
      const wrong = await session(ctx, files, server.port, ['touch pwned'], { password: 'wrong-1' });
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      checkRefused(ctx, wrong, 'wrong password');
      ctx.t.match(wrong.stderr, /denied|wrong|incorrect|refused/i, `it says the login was refused (took ${seconds} s with --fail-delay 0.2)`);
      ctx.t.notOk(existsSync(path.join(files.work, 'pwned')), 'no command ran');
      const unknown = await session(ctx, files, server.port, ['touch pwned'], { user: 'nobody', password: 'x' });
      checkRefused(ctx, unknown, 'unknown user');
      await session(ctx, files, server.port, [], { password: 'wrong-3' });
      // Three failures from 127.0.0.1 now: even the right password is refused.
      const locked = await session(ctx, files, server.port, ['touch pwned']);
      checkRefused(ctx, locked, 'right password after 3 failures');
      // Not any word containing "rate" (separate, generate): the lock-out itself.
      ctx.t.match(locked.stderr, /too many|try again|rate[- ]?limit|locked|bloquead|demasiados/i, `it says the address is rate-limited (${describe(locked)})`);
      ctx.t.notOk(existsSync(path.join(files.work, 'pwned')), 'still no command ran');
      const log = await readFile(files.log, 'utf8');
      ctx.t.notOk(log.includes('wrong-1'), 'a wrong password is not logged either');
    },
  },
  {
    id: 'host-key-changed',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay'],
    title: 'a changed host key (another server behind the pinned address) is refused before the login is sent',
    roles: ['server', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      const files = await setup(ctx);
      const real = await startServer(ctx, files);
      const other = { ...files, hostKey: path.join(files.dir, 'other_host_key'), log: path.join(files.dir, 'other.log') };
      const impostor = await startServer(ctx, other);
      const relay = await startTamperRelay(ctx.host, real.port);
      try {
        const first = await session(ctx, files, relay.port, ['pwd']);
        ctx.t.equal(first.exit.code, 0, `first use: the key is pinned and the session works (${describe(first)})`);
        const pinned = await readFile(files.knownHosts, 'utf8').catch(() => '');
        ctx.t.ok(pinned.includes(String(relay.port)), 'known-hosts now has an entry for the address');
        relay.targetPort = impostor.port; // the path now leads elsewhere
        const second = await session(ctx, files, relay.port, ['touch impostor-ran']);
        checkRefused(ctx, second, 'another host key at the pinned address');
        ctx.t.match(second.stderr, /CHANGED|host key|verification failed/i, 'it warns that the host key changed');
        const impostorLog = await readFile(other.log, 'utf8').catch(() => '');
        ctx.t.notMatch(impostorLog, /login/, 'the impostor never received a login attempt');
        ctx.t.notOk(impostorLog.includes(PASSWORD), 'nor the password');
        ctx.t.notOk(existsSync(path.join(files.work, 'impostor-ran')), 'and no command ran');
      } finally {
        await relay.close();
      }
    },
  },
  {
    // The relay knows this project's u32 length framing.
    id: 'tamper-flip',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay', 'format:project-frames'],
    title: 'a bit flipped in a command frame by a relay closes the session; the command never runs',
    roles: ['server', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      // Frames client → server: 0 hello, 1 login, 2 the first command.
      const { run, server, files, count } = await tampered(ctx, { direction: 'c2s', frame: 2, action: 'flip' }, ['touch tampered-ran', 'pwd']);
      ctx.t.equal(count, 1, 'the relay flipped one bit');
      checkRefused(ctx, run, 'flipped bit');
      ctx.t.match(run.stderr, /closed|broken|lost|reset/i, `the client says the session closed (${describe(run)})`);
      ctx.t.notOk(existsSync(path.join(files.work, 'tampered-ran')), 'the altered command was not run');
      await checkLogged(ctx.t, server.proc, /authentication|altered|tamper|integrity|MAC/i, 'the server says the frame failed authentication');
      ctx.t.equal(server.proc.exit, undefined, 'the server still runs');
    },
  },
  {
    id: 'tamper-output',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay', 'format:project-frames'],
    title: 'a bit flipped in the server\'s output by a relay is detected by the client',
    roles: ['server', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      // Frames server → client: 0 hello, 1 welcome, 2 the first output.
      const { run, count } = await tampered(ctx, { direction: 's2c', frame: 2, action: 'flip' }, ['echo output-to-alter', 'pwd']);
      ctx.t.equal(count, 1, 'the relay flipped one bit');
      checkRefused(ctx, run, 'flipped bit in output');
      ctx.t.notMatch(run.stdout, /^output-to-alter$/m, 'the altered output is not shown');
      ctx.t.match(run.stderr, /authentication|altered|tamper|integrity|MAC/i, `the client says the frame failed authentication (${describe(run)})`);
    },
  },
  {
    id: 'replay',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay', 'format:project-frames'],
    title: 'a command frame replayed by a relay closes the session; the command never runs twice',
    roles: ['server', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      const { run, server, files, count } = await tampered(ctx, { direction: 'c2s', frame: 2, action: 'replay' }, ['echo ran >> count.txt', 'sleep 1', 'pwd']);
      ctx.t.equal(count, 1, 'the relay replayed one frame');
      checkRefused(ctx, run, 'replayed frame');
      const ran = await readFile(path.join(files.work, 'count.txt'), 'utf8').catch(() => '');
      // Once, or not at all when closing the session stopped it first: never twice.
      ctx.t.ok(ran.split('\n').filter(Boolean).length <= 1, `the command did not run a second time (count.txt: ${JSON.stringify(ran)})`);
      await checkLogged(ctx.t, server.proc, /replay/i, 'the server says the frame was replayed');
    },
  },
  {
    id: 'garbage',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay', 'format:project-frames'],
    title: 'garbage and an oversized frame announcement are cut off; other clients are unaffected',
    roles: ['server', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      const files = await setup(ctx);
      const server = await startServer(ctx, files);
      for (const [what, bytes] of [
        ['a 4 GiB length prefix', Buffer.from([0xff, 0xff, 0xff, 0xff])],
        ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
        ['random bytes', randomBytes(4096)],
      ] as const) {
        const socket = await tcpConnect(server.host, server.port);
        const closed = new Promise<boolean>((resolve) => {
          socket.on('end', () => resolve(true));
          socket.on('close', () => resolve(true));
          socket.on('error', () => {});
          setTimeout(() => resolve(false), 12_000);
        });
        socket.write(bytes);
        ctx.t.ok(await closed, `${what}: the server closes the connection`);
        socket.destroy();
      }
      const run = await session(ctx, files, server.port, ['pwd']);
      ctx.t.equal(run.exit.code, 0, `a proper client is served afterwards (${describe(run)})`);
    },
  },
  {
    // Credentials unseen in a capture is the assignment's, but a session needs this project's users file; see the report.
    id: 'capture',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay'],
    title: 'a capture of a whole session shows neither the user name, the password, a command nor an output',
    roles: ['server', 'client'],
    peers: [PEERS.tcpdump, PEERS.tshark],
    root: true,
    timeoutMs: 60_000,
    async run(ctx) {
      const files = await setup(ctx);
      const server = await startServer(ctx, files);
      const capture = await startCapture(ctx.supervisor, [server.port], path.join(files.dir, 'session.pcap'));
      const command = 'echo SECRET-OUTPUT-$((6*7))';
      const run = await session(ctx, files, server.port, [command, 'ls -la']);
      const packets = await readPackets(await capture.stop());
      ctx.t.equal(run.exit.code, 0, `the session worked (${describe(run)})`);
      ctx.t.match(run.stdout, /SECRET-OUTPUT-42/, 'the client did receive the output');
      const toServer = Buffer.concat(packets.filter((p) => p.dstPort === server.port).map((p) => p.payload));
      const fromServer = Buffer.concat(packets.filter((p) => p.srcPort === server.port).map((p) => p.payload));
      ctx.t.ok(toServer.length > 100 && fromServer.length > 100, `the capture holds the session (${packets.length} packets, ${toServer.length} B to the server, ${fromServer.length} B back)`);
      const all = Buffer.concat([toServer, fromServer]);
      for (const [what, secret] of [
        ['the user name', USER],
        ['the password', PASSWORD],
        ['the command', 'SECRET-OUTPUT-$'],
        ['the output', 'SECRET-OUTPUT-42'],
        ['the second command', 'ls -la'],
        ['the working directory (an output)', files.work],
      ] as const) {
        ctx.t.equal(all.indexOf(secret), -1, `${what} (${JSON.stringify(secret)}) does not appear in the captured bytes`);
      }
    },
  },
  {
    id: 'interactive',
    tier: 'beyond',
    features: ['--add-user', '--users', '--host-key', '--workdir', '--known-hosts', '--fail-delay'],
    title: 'in a terminal (tmux): password not echoed, ">>> " prompt, streamed output, Ctrl-C interrupts a long command',
    roles: ['server', 'client'],
    peers: [PEERS.tmux],
    timeoutMs: 90_000,
    async run(ctx) {
      const files = await setup(ctx);
      const server = await startServer(ctx, files);
      const tmux = await TmuxSession.start(ctx, [...ctx.command('client'), '--host', ctx.host, '--port', String(server.port), '--known-hosts', files.knownHosts]);
      try {
        const first = await tmux.waitFor(/user|continue connecting/i, 20_000);
        if (/continue connecting/i.test(first) && !/user/i.test(first)) {
          // A first use asked about, as ssh asks: it must show the key's fingerprint.
          const fingerprint = /ED25519 (SHA256:\S+)/.exec(server.proc.stderr)?.[1];
          if (fingerprint) ctx.t.ok(first.includes(fingerprint), `the host-key question shows the server's fingerprint ${fingerprint}`);
          await tmux.line('yes');
          await tmux.waitFor(/user/i, 20_000);
        }
        await tmux.line(USER);
        await tmux.waitFor(/password/i);
        await tmux.line(PASSWORD);
        let screen = await tmux.waitFor(/>>>$/);
        ctx.t.notOk(screen.includes(PASSWORD), 'the password was not echoed on the screen');
        await tmux.line('pwd');
        screen = await tmux.waitFor(new RegExp(`^${files.work}$`, 'm'));
        ctx.t.pass('pwd shows the working directory');
        await tmux.line('for i in 1 2 3 4 5 6; do echo tick-$i; sleep 1; done');
        screen = await tmux.waitFor(/tick-2/);
        ctx.t.notMatch(screen, /tick-6/, 'output streams: tick-2 is on screen while tick-6 is not yet');
        await tmux.waitFor(/tick-6[\s\S]*>>>$/, 15_000);
        await tmux.line('sleep 60; echo not-interrupted');
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const before = Date.now();
        await tmux.send(['C-c']);
        screen = await tmux.waitFor(/sleep 60[^\n]*\n[\s\S]*>>>$/, 10_000);
        ctx.t.notMatch(screen, /^not-interrupted$/m, `Ctrl-C interrupted the remote command (prompt back after ${((Date.now() - before) / 1000).toFixed(1)} s)`);
        await tmux.line('echo still-alive');
        await tmux.waitFor(/^still-alive$/m);
        ctx.t.pass('the session goes on after the interrupt');
        await tmux.line('exit');
        const deadline = Date.now() + 10_000;
        while (!(await tmux.dead()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
        ctx.t.ok(await tmux.dead(), '"exit" ends the client');
      } finally {
        await tmux.kill();
      }
    },
  },
]);
