/**
 * Exercise 12: a replicated directory. Roles: master (`--root DIR`), slave
 * (`--root DIR --master HOST:PORT`), client (the master's `--host`/`--port`,
 * commands on stdin).
 *
 * Every root is a fresh temporary folder. Replication is judged by the
 * harness's own reading of the folders: each replica's tree (directories,
 * and every file's SHA-256) must equal the master's, after a scripted
 * session, after a slave is SIGKILLed and restarted, and for a slave that
 * arrives late. Confinement is judged by the files that exist afterwards:
 * nothing anywhere outside the roots. The raw-PDU checks speak the
 * documented PDU (ej12/README.md: u32 id_nodo, u32 accion, u32 bytes_path,
 * path, u32 bytes, data, big-endian) from the harness's own socket.
 *
 * `replication-channel` holds a submission to what a replicated directory
 * must promise to be one at all: a slave's files change only through its
 * master. A stranger's COPIAR, AGREGAR_ARCHIVO or ELIMINAR_ARCHIVO is refused
 * and a stranger's REGISTRAR neither sends the master to another address nor
 * drops a live slave. `secret` is this project's extra (`--secret-file`,
 * skipped for a target without it): the same with an HMAC on every PDU.
 *
 * Tiers. The assignment fixes the three command lines (each node's own
 * `--host`/`--port`, the client's the master's), the synchronised folder
 * (`/SERVIDOR`) and the PDU; it leaves how a slave finds its master and where
 * a slave keeps its copy to the student. Every requirement here places the
 * roots with `--root` and points a slave with `--master` (this project's), so
 * all but `cli` are beyond; `session` and `malformed` also read this
 * project's `ls` listing (`format:project-listing`).
 *
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Context, cliRequirement, defineScenario, type Server, TRACEBACK } from '../scenario.ts';
import { tcpConnect } from '../wire.ts';

/** A folder's tree as the harness sees it: wire path → "dir", "link" or the file's SHA-256. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, prefix: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const full = path.join(dir, name);
      const rel = prefix ? `${prefix}/${name}` : name;
      const st = await lstat(full);
      if (st.isSymbolicLink()) out.set(rel, 'link');
      else if (st.isDirectory()) {
        out.set(rel, 'dir');
        await walk(full, rel);
      } else out.set(rel, createHash('sha256').update(await readFile(full)).digest('hex'));
    }
  };
  await walk(root, '');
  return out;
}

/** What differs between two snapshots, in a few words ('' when identical). */
function difference(want: Map<string, string>, got: Map<string, string>): string {
  const missing = [...want.keys()].filter((k) => !got.has(k));
  const extra = [...got.keys()].filter((k) => !want.has(k));
  const changed = [...want.keys()].filter((k) => got.has(k) && got.get(k) !== want.get(k));
  const parts = [missing.length && `missing ${missing.slice(0, 5).join(', ')}`, extra.length && `extra ${extra.slice(0, 5).join(', ')}`, changed.length && `different ${changed.slice(0, 5).join(', ')}`];
  return parts.filter(Boolean).join('; ');
}

/** Waits until `replica`'s tree equals `master`'s (or `timeoutMs`); returns the last difference ('' when equal). */
async function converge(master: string, replica: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const diff = difference(await snapshot(master), await snapshot(replica));
    if (diff === '' || Date.now() > deadline) return diff;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface Cluster {
  base: string;
  local: string;
  masterRoot: string;
  master: Server;
  slaveRoots: string[];
  slaves: Server[];
}

/** The target's help text of `role`, to see whether it has the options this scenario drives. */
async function needOptions(ctx: Context): Promise<void> {
  const master = (await ctx.client('master', ['-h'])).stdout;
  const slave = (await ctx.client('slave', ['-h'])).stdout;
  if (!master.includes('--root')) ctx.skip("the target's master has no --root option: its synchronised folder cannot be placed in a temporary folder");
  if (!slave.includes('--root') || !slave.includes('--master')) ctx.skip("the target's slave lacks --root or --master: it cannot be pointed at a temporary folder and the master");
}

function startSlave(ctx: Context, master: Server, root: string, extra: string[] = []): Promise<Server> {
  return ctx.server('slave', 'tcp', ['--root', root, '--master', `${master.host}:${master.port}`, ...extra]);
}

/** A master and `n` slaves, each on its own temporary root, below `base/x/y/` so that `../../` from a root is still inside `base`. */
async function cluster(ctx: Context, n: number, extra: string[] = []): Promise<Cluster> {
  await needOptions(ctx);
  const base = await mkdtemp(path.join(tmpdir(), 'ej12-'));
  ctx.t.teardown(() => rm(base, { recursive: true, force: true }));
  const roots = path.join(base, 'x', 'y');
  const local = path.join(base, 'local');
  await mkdir(local, { recursive: true });
  const masterRoot = path.join(roots, 'master');
  await mkdir(masterRoot, { recursive: true });
  const slaveRoots = Array.from({ length: n }, (_, i) => path.join(roots, `slave${i + 1}`));
  for (const r of slaveRoots) await mkdir(r);
  const master = await ctx.server('master', 'tcp', ['--root', masterRoot, ...extra]);
  const slaves: Server[] = [];
  for (const r of slaveRoots) slaves.push(await startSlave(ctx, master, r, extra));
  return { base, local, masterRoot, master, slaveRoots, slaves };
}

function session(ctx: Context, master: Server, script: string, timeoutMs = 60_000) {
  return ctx.client('client', ['--host', master.host, '--port', String(master.port)], { input: script, timeoutMs });
}

async function checkReplicas(ctx: Context, c: Cluster, what: string, roots = c.slaveRoots): Promise<void> {
  for (const [i, r] of roots.entries()) {
    const diff = await converge(c.masterRoot, r);
    ctx.t.equal(diff, '', `${what}: replica ${i + 1}'s tree is byte-identical to the master's${diff ? ` (${diff})` : ''}`);
  }
}

/** Every file under `base` that is not inside one of `allowed`. */
async function filesOutside(base: string, allowed: string[]): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for (const name of await readdir(dir)) {
      const full = path.join(dir, name);
      if (allowed.includes(full)) continue;
      const st = await lstat(full);
      if (st.isDirectory()) await walk(full);
      else found.push(path.relative(base, full));
    }
  };
  await walk(base);
  return found;
}

/** One PDU as documented: id_nodo, accion, bytes_path, path, bytes, data (u32 big-endian). */
function pdu(action: number, wirePath: string, data: Uint8Array = new Uint8Array(0), id = 0): Buffer {
  const p = Buffer.from(wirePath, 'utf8');
  const head = Buffer.alloc(12);
  head.writeUInt32BE(id, 0);
  head.writeUInt32BE(action, 4);
  head.writeUInt32BE(p.length, 8);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length, 0);
  return Buffer.concat([head, p, len, data]);
}

/** Reads PDUs from a socket of the harness's own, whatever the chunking. */
class PduReader {
  #buffer = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake?.();
    });
    const end = () => {
      this.#closed = true;
      this.#wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** The next PDU (its action, path and data), or undefined if the connection closes or 10 s pass first. */
  async next(): Promise<{ action: number; path: string; data: Buffer } | undefined> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const b = this.#buffer;
      if (b.length >= 12) {
        const p = b.readUInt32BE(8);
        if (b.length >= 16 + p) {
          const d = b.readUInt32BE(12 + p);
          if (b.length >= 16 + p + d) {
            this.#buffer = b.subarray(16 + p + d);
            return { action: b.readUInt32BE(4), path: b.subarray(12, 12 + p).toString('utf8'), data: b.subarray(16 + p, 16 + p + d) };
          }
        }
      }
      if (this.#closed || Date.now() > deadline) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  }
}

const REGISTRAR = 0;
const REMOTO = 1;
const COPIAR = 2;
const AGREGAR_ARCHIVO = 3;
const ELIMINAR_ARCHIVO = 4;
const ERROR = 6;

/** Sends `frames` on one new connection from the harness's own socket, and returns the answers (up to one per frame; fewer if it closes). */
async function exchange(host: string, port: number, frames: Buffer[]): Promise<{ action: number; path: string; data: Buffer }[]> {
  const socket = await tcpConnect(host, port);
  const reader = new PduReader(socket);
  const answers: { action: number; path: string; data: Buffer }[] = [];
  try {
    for (const frame of frames) {
      socket.write(frame);
      const reply = await reader.next();
      if (!reply) break;
      answers.push(reply);
    }
  } finally {
    socket.destroy();
  }
  return answers;
}

/** Forged replication from a stranger's socket: each attempt opens with COPIAR (ids a forger might guess), then a change. */
async function forgeReplication(ctx: Context, slave: Server, what: string): Promise<void> {
  for (const id of [0, 1, 2]) {
    const [reply] = await exchange(slave.host, slave.port, [pdu(COPIAR, '', undefined, id)]);
    ctx.t.not(reply?.action, COPIAR, `${what}: a stranger's COPIAR (id_nodo ${id}) gets no manifest (${reply ? `answer ${reply.action}: ${reply.data.toString('utf8').slice(0, 120)}` : 'connection closed'})`);
  }
  for (const [name, change] of [
    ['AGREGAR_ARCHIVO evil.txt', pdu(AGREGAR_ARCHIVO, 'evil.txt', Buffer.from('EVIL\n'), 1)],
    ['AGREGAR_ARCHIVO keep/real.txt (an overwrite)', pdu(AGREGAR_ARCHIVO, 'keep/real.txt', Buffer.from('EVIL\n'), 1)],
    ['ELIMINAR_ARCHIVO keep/', pdu(ELIMINAR_ARCHIVO, 'keep/', undefined, 1)],
  ] as const) {
    const answers = await exchange(slave.host, slave.port, [pdu(COPIAR, '', undefined, 1), change]);
    const ack = answers[1];
    ctx.t.ok(ack === undefined || ack.action !== change.readUInt32BE(4), `${what}: a stranger's ${name} is not acknowledged (${ack ? `answer ${ack.action}: ${ack.data.toString('utf8').slice(0, 120)}` : 'connection closed'})`);
  }
}

export default defineScenario('ej12', 'Replicated directory: a master, slaves and a terminal client', [
  { ...cliRequirement({ master: [/--host HOST/, /--port PORT/], slave: [/--host HOST/, /--port PORT/], client: [/--host HOST/, /--port PORT/] }), tier: 'assignment' },
  {
    id: 'session',
    tier: 'beyond',
    features: ['--root', '--master', 'format:project-listing'],
    title: 'a scripted client session (mkdir, put, cp, mv, rm, cat, ls, cd, pwd, get) prints the expected output and both replicas end byte-identical to the master',
    roles: ['master', 'slave', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      const c = await cluster(ctx, 2);
      const text = Buffer.from('hola, réplica\nsegunda línea\n');
      const binary = randomBytes(300_000);
      await writeFile(path.join(c.local, 'a.txt'), text);
      await writeFile(path.join(c.local, 'b.bin'), binary);
      const back = path.join(c.local, 'back.bin');
      const script = [
        'mkdir docs',
        `put ${path.join(c.local, 'a.txt')} docs/`,
        `put ${path.join(c.local, 'b.bin')} docs/data.bin`,
        'ls docs',
        'cp docs/a.txt docs/a-copy.txt',
        'mv docs/a-copy.txt moved.txt',
        'mkdir docs/sub',
        'cp moved.txt docs/sub',
        'ls /',
        'cat moved.txt',
        'rm docs/a.txt',
        'cd docs',
        'pwd',
        'ls',
        `get data.bin ${back}`,
        'exit',
        '',
      ].join('\n');
      const run = await session(ctx, c.master, script);
      ctx.t.notOk(run.timedOut, 'the session ends by itself after exit');
      ctx.t.equal(run.exit.code, 0, `the client exits 0 (stderr: ${run.stderr.trim().slice(-300) || 'empty'})`);
      ctx.t.equal(run.stdout, `a.txt\ndata.bin\ndocs/\nmoved.txt\n${text.toString()}/docs\ndata.bin\nsub/\n`, 'the output is what each command prints, in order');
      const got = existsSync(back) ? await readFile(back) : undefined;
      ctx.t.ok(got?.equals(binary), `expected get to bring the uploaded 300 kB binary file back byte for byte; observed ${got ? `${got.length} bytes, different` : 'no file'}`);
      const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
      const want = new Map([
        ['docs', 'dir'],
        ['docs/data.bin', hash(binary)],
        ['docs/sub', 'dir'],
        ['docs/sub/moved.txt', hash(text)],
        ['moved.txt', hash(text)],
      ]);
      ctx.t.equal(difference(want, await snapshot(c.masterRoot)), '', "the master's tree is exactly what the session made");
      await checkReplicas(ctx, c, 'after the session');
    },
  },
  {
    id: 'slave-crash',
    tier: 'beyond',
    features: ['--root', '--master'],
    title: 'a slave SIGKILLed misses changes, the master keeps serving, and the restarted slave converges; a late slave gets a full copy',
    roles: ['master', 'slave', 'client'],
    timeoutMs: 150_000,
    async run(ctx) {
      const c = await cluster(ctx, 2);
      const files = Array.from({ length: 5 }, (_, i) => ({ name: `f${i}.bin`, data: randomBytes(1000 + i * 20_000) }));
      for (const f of files) await writeFile(path.join(c.local, f.name), f.data);
      const first = await session(ctx, c.master, ['mkdir keep', 'mkdir gone', ...files.slice(0, 3).map((f) => `put ${path.join(c.local, f.name)} keep/`), `put ${path.join(c.local, files[0]!.name)} gone/x.bin`, ''].join('\n'));
      ctx.t.equal(first.exit.code, 0, `the first session succeeds (stderr: ${first.stderr.trim().slice(-200) || 'empty'})`);
      await checkReplicas(ctx, c, 'before the crash');

      c.slaves[0]!.proc.signal('SIGKILL');
      await c.slaves[0]!.proc.waitForExit(10_000).catch(() => undefined);
      ctx.t.ok(c.slaves[0]!.proc.exit, `expected slave 1 dead after SIGKILL; observed ${c.slaves[0]!.proc.exit ? 'dead' : 'still running'}`);
      const during = await session(
        ctx,
        c.master,
        [...files.slice(3).map((f) => `put ${path.join(c.local, f.name)} keep/`), `put ${path.join(c.local, files[4]!.name)} keep/f0.bin`, 'rm -r gone', 'mv keep/f1.bin renamed.bin', 'mkdir new', 'ls keep', ''].join('\n'),
      );
      ctx.t.notOk(during.timedOut, 'the master answers while a slave is down');
      ctx.t.equal(during.exit.code, 0, `the session during the outage succeeds (stderr: ${during.stderr.trim().slice(-200) || 'empty'})`);
      ctx.t.equal(during.stdout, 'f0.bin\nf2.bin\nf3.bin\nf4.bin\n', 'its output reflects the changes');
      await checkReplicas(ctx, c, 'while slave 1 is down', [c.slaveRoots[1]!]);
      const stale = difference(await snapshot(c.masterRoot), await snapshot(c.slaveRoots[0]!));
      ctx.t.not(stale, '', `slave 1's folder did miss the changes while dead (${stale})`);

      await startSlave(ctx, c.master, c.slaveRoots[0]!);
      await checkReplicas(ctx, c, 'after slave 1 restarted');

      const lateRoot = path.join(path.dirname(c.masterRoot), 'late');
      await mkdir(lateRoot);
      await startSlave(ctx, c.master, lateRoot);
      await checkReplicas(ctx, c, 'a slave started late', [lateRoot]);

      const after = await session(ctx, c.master, ['rm renamed.bin', 'cat keep/f2.bin', ''].join('\n'));
      ctx.t.equal(after.exit.code, 0, 'a later session succeeds');
      ctx.t.ok(after.stdoutBytes.equals(files[2]!.data), `expected cat to print a binary file byte for byte; observed ${after.stdoutBytes.length} bytes for ${files[2]!.data.length}`);
      await checkReplicas(ctx, c, 'after a change with three slaves', [...c.slaveRoots, lateRoot]);
    },
  },
  {
    id: 'confinement',
    tier: 'beyond',
    features: ['--root', '--master'],
    title: 'no path leaves the roots: `..`, absolute paths and symlinks are refused, by the client and in raw PDUs, and nothing is written outside',
    roles: ['master', 'slave', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      const c = await cluster(ctx, 1);
      const outside = path.join(c.base, 'outside');
      await mkdir(outside);
      await writeFile(path.join(outside, 'secret.txt'), 'SECRET-CONTENTS\n');
      await symlink(outside, path.join(c.masterRoot, 'link'));
      await writeFile(path.join(c.local, 'x'), 'EVIL\n');
      const x = path.join(c.local, 'x');
      const attempts = [`put ${x} ../../etc/evil`, 'cat ../../etc/passwd', `put ${x} ../../../evil`, 'cd ../..', 'ls ../../..', 'cat link/secret.txt', `put ${x} link/evil`, 'ls link', 'mkdir ../../made'];
      // One session: the client goes on after a failed command, as a shell does.
      const run = await session(ctx, c.master, `${attempts.join('\n')}\n`);
      ctx.t.equal(run.exit.code, 1, 'the session exits 1: commands failed');
      const errors = run.stderr.trim().split('\n').filter(Boolean);
      ctx.t.equal(errors.length, attempts.length, `each of the ${attempts.length} attempts is refused with one line on stderr`);
      for (const [i, attempt] of attempts.entries()) ctx.t.ok(errors[i]?.startsWith(attempt.split(' ')[0]!), `"${attempt}": ${errors[i] ?? 'no message'}`);
      ctx.t.notMatch(run.stderr, TRACEBACK, 'no stack trace');
      ctx.t.notMatch(run.stdout, /root:|SECRET-CONTENTS/, 'nothing from outside the root is printed');

      // The master must refuse such paths itself, not trust the client to.
      const socket = await tcpConnect(c.master.host, c.master.port);
      const reader = new PduReader(socket);
      try {
        const absolute = path.join(c.base, 'abs-evil');
        for (const [what, frame] of [
          ['AGREGAR_ARCHIVO "../../etc/evil"', pdu(AGREGAR_ARCHIVO, '../../etc/evil', Buffer.from('EVIL'))],
          [`AGREGAR_ARCHIVO "${absolute}"`, pdu(AGREGAR_ARCHIVO, absolute, Buffer.from('EVIL'))],
          ['AGREGAR_ARCHIVO "link/evil"', pdu(AGREGAR_ARCHIVO, 'link/evil', Buffer.from('EVIL'))],
          ['REMOTO cat "../../etc/passwd"', pdu(REMOTO, '', Buffer.from(JSON.stringify(['cat', '../../etc/passwd'])))],
          ['REMOTO cat "/etc/passwd"', pdu(REMOTO, '', Buffer.from(JSON.stringify(['cat', '/etc/passwd'])))],
        ] as const) {
          socket.write(frame);
          const reply = await reader.next();
          ctx.t.ok(reply, `${what}: the master answers`);
          ctx.t.equal(reply?.action, 6, `${what}: the answer is ERROR (${reply?.data.toString('utf8').slice(0, 120)})`);
          ctx.t.notMatch(reply?.data.toString('utf8') ?? '', /root:x:0/, `${what}: nothing of /etc/passwd comes back`);
        }
      } finally {
        socket.destroy();
      }
      const stray = await filesOutside(c.base, [c.masterRoot, ...c.slaveRoots, c.local, path.join(outside, 'secret.txt')]);
      ctx.t.same(stray, [], 'no file was written outside the roots');
      ctx.t.notOk(existsSync('/etc/evil'), 'no /etc/evil');
      ctx.t.notOk(existsSync(path.join(outside, 'evil')), 'nothing written through the symlink');

      const ok = await session(ctx, c.master, 'mkdir fine\nls\n');
      ctx.t.equal(ok.exit.code, 0, 'the master still serves a well-behaved client');
      ctx.t.match(ok.stdout, /^fine\/$/m, 'and its changes are applied');
      const replica = await snapshot(c.slaveRoots[0]!);
      ctx.t.notOk(replica.has('link'), 'the symlink was not replicated');
      ctx.t.equal(replica.get('fine'), 'dir', 'the slave got the new directory');
    },
  },
  {
    id: 'malformed',
    tier: 'beyond',
    features: ['--root', '--master', 'format:project-listing'],
    title: 'a PDU declaring a 4 GiB path is refused and the master serves on',
    roles: ['master', 'slave', 'client'],
    timeoutMs: 60_000,
    async run(ctx) {
      const c = await cluster(ctx, 1);
      const socket = await tcpConnect(c.master.host, c.master.port);
      // The header and a few bytes of the "path": a reader that trusted the length would wait for 4 GiB.
      const head = Buffer.alloc(24);
      head.writeUInt32BE(REMOTO, 4);
      head.writeUInt32BE(0xffff_ffff, 8);
      socket.write(head);
      const closed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 10_000);
        const done = () => {
          clearTimeout(timer);
          resolve(true);
        };
        socket.on('end', done);
        socket.on('close', done);
        socket.on('error', () => {});
        socket.resume();
      });
      ctx.t.ok(closed, 'expected the master to close the connection of a frame over the limit within 10 s; observed it still open');
      const ok = await session(ctx, c.master, 'mkdir still\nls\n');
      ctx.t.equal(ok.exit.code, 0, 'the master serves the next client');
      ctx.t.match(ok.stdout, /^still\/$/m, 'and runs its commands');
      await checkReplicas(ctx, c, 'after the malformed frame');
    },
  },
  {
    id: 'replication-channel',
    tier: 'beyond',
    features: ['--root', '--master'],
    title: "a slave's files change only through its master: a stranger's COPIAR, AGREGAR_ARCHIVO and ELIMINAR_ARCHIVO are refused, and a stranger's REGISTRAR neither sends the master elsewhere nor drops a live slave",
    roles: ['master', 'slave', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      const c = await cluster(ctx, 1);
      await writeFile(path.join(c.local, 'real.txt'), 'real\n');
      const first = await session(ctx, c.master, `mkdir keep\nput ${path.join(c.local, 'real.txt')} keep/\n`);
      ctx.t.equal(first.exit.code, 0, `the session succeeds (stderr: ${first.stderr.trim().slice(-200) || 'empty'})`);
      await checkReplicas(ctx, c, 'before the forgeries');
      const before = await snapshot(c.slaveRoots[0]!);
      await forgeReplication(ctx, c.slaves[0]!, 'the slave');
      ctx.t.equal(difference(before, await snapshot(c.slaveRoots[0]!)), '', 'the replica is exactly as the master left it');

      // A trap on another loopback address: a REGISTRAR naming it must not make the master connect there.
      let trapped = 0;
      const trap = net.createServer((s) => {
        trapped++;
        s.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        trap.once('error', reject);
        trap.listen(0, '127.0.0.2', () => resolve());
      });
      ctx.t.teardown(() => trap.close());
      const trapPort = (trap.address() as net.AddressInfo).port;
      const [elsewhere] = await exchange(c.master.host, c.master.port, [pdu(REGISTRAR, '', Buffer.from(`127.0.0.2:${trapPort}`))]);
      ctx.t.equal(elsewhere?.action, ERROR, `a REGISTRAR from ${c.master.host} naming 127.0.0.2 is refused (${elsewhere?.data.toString('utf8').slice(0, 160) ?? 'no answer'})`);
      const [steal] = await exchange(c.master.host, c.master.port, [pdu(REGISTRAR, '', Buffer.from(`${c.slaves[0]!.host}:${c.slaves[0]!.port}`))]);
      ctx.t.not(steal?.action, undefined, `a REGISTRAR naming the live slave's address is answered (${steal?.data.toString('utf8').slice(0, 160) ?? 'no answer'})`);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      ctx.t.equal(trapped, 0, 'the master never connected to the address a stranger named');

      const after = await session(ctx, c.master, `mkdir after\nput ${path.join(c.local, 'real.txt')} after/again.txt\n`);
      ctx.t.equal(after.exit.code, 0, 'the master serves on');
      await checkReplicas(ctx, c, "the live slave still gets the master's changes");
    },
  },
  {
    id: 'secret',
    tier: 'beyond',
    features: ['--root', '--master', '--secret-file'],
    title: 'with --secret-file on master and slaves, replication works; a slave without the secret gets nothing, and unauthenticated COPIAR, changes and REGISTRAR are refused',
    roles: ['master', 'slave', 'client'],
    timeoutMs: 120_000,
    async run(ctx) {
      const master = (await ctx.client('master', ['-h'])).stdout;
      const slave = (await ctx.client('slave', ['-h'])).stdout;
      if (!master.includes('--secret-file') || !slave.includes('--secret-file')) ctx.skip("the target has no --secret-file (this project's extra, not the assignment's)");
      const dir = await mkdtemp(path.join(tmpdir(), 'ej12-secret-'));
      ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
      const secretFile = path.join(dir, 'secret');
      await writeFile(secretFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
      const c = await cluster(ctx, 1, ['--secret-file', secretFile]);
      const outsider = path.join(path.dirname(c.masterRoot), 'outsider');
      await mkdir(outsider);
      await startSlave(ctx, c.master, outsider);
      await writeFile(path.join(c.local, 'real.txt'), 'real\n');
      const run = await session(ctx, c.master, `mkdir keep\nput ${path.join(c.local, 'real.txt')} keep/\nls keep\n`);
      ctx.t.equal(run.exit.code, 0, `a client (no secret needed) works (stderr: ${run.stderr.trim().slice(-200) || 'empty'})`);
      ctx.t.equal(run.stdout, 'real.txt\n');
      await checkReplicas(ctx, c, 'with the shared secret');
      ctx.t.same([...(await snapshot(outsider)).keys()], [], 'the slave without the secret got nothing');
      const before = await snapshot(c.slaveRoots[0]!);
      await forgeReplication(ctx, c.slaves[0]!, 'without a MAC');
      ctx.t.equal(difference(before, await snapshot(c.slaveRoots[0]!)), '', 'the replica is unchanged');
      const [registration] = await exchange(c.master.host, c.master.port, [pdu(REGISTRAR, '', Buffer.from(`${c.master.host}:9`))]);
      ctx.t.equal(registration?.action, ERROR, `a REGISTRAR without a MAC is refused (${registration?.data.toString('utf8').slice(0, 160) ?? 'no answer'})`);
      const after = await session(ctx, c.master, 'mkdir after\n');
      ctx.t.equal(after.exit.code, 0, 'the master serves on');
      await checkReplicas(ctx, c, 'after the forgeries');
    },
  },
]);
