import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatAddress } from '../lib/cli.ts';
import { listenTcp } from '../lib/server.ts';
import { Session, splitWords } from './client.ts';
import { createMaster } from './master.ts';
import { AGREGAR_ARCHIVO, COPIAR, ELIMINAR_ARCHIVO, ERROR, Message, message, type Message as Pdu, messageReader, REGISTRAR, REMOTO } from './protocol.ts';
import { createSlave } from './slave.ts';
import { diff, manifest } from './tree.ts';
import { Link } from './link.ts';

/** Waits until `replica` has the master's manifest (or 10 s), returning the remaining difference. */
async function converge(master: string, replica: string): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = diff(await manifest(master), await manifest(replica)).length;
    if (left === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A raw attacker socket speaking plain PDUs: sends one, returns the answer, or undefined if the connection closes first (10 s bound). */
async function rawExchange(port: number, m: Pdu, host = '127.0.0.1'): Promise<Pdu | undefined> {
  const socket = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return new Promise((resolve) => {
    const reader = messageReader();
    const timer = setTimeout(() => done(undefined), 10_000);
    const done = (v: Pdu | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        const [first] = reader.push(chunk);
        if (first) done(first);
      } catch {
        done(undefined);
      }
    });
    socket.on('close', () => done(undefined));
    socket.on('error', () => done(undefined));
    socket.write(Message.encode(m));
  });
}

interface ClusterOptions {
  secret?: Uint8Array;
  slaves?: number;
}

/** A master and slaves in this process, each on its own temporary root, and a client session. */
async function cluster(t: Tap.Test, { secret, slaves = 1 }: ClusterOptions = {}) {
  const base = await realpath(await mkdtemp(path.join(tmpdir(), 'ej12-repl-')));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const mRoot = path.join(base, 'm');
  await mkdir(mRoot);
  const master = createMaster({ root: mRoot, ...(secret ? { secret } : {}) });
  const m = await listenTcp(master.server, '127.0.0.1', 0);
  t.teardown(() => master.close());
  const slaveRoots: string[] = [];
  const slavePorts: number[] = [];
  for (let i = 0; i < slaves; i++) {
    const root = path.join(base, `s${i + 1}`);
    await mkdir(root);
    const slave = createSlave({ root, master: { host: '127.0.0.1', port: m.port }, retryMs: 100, ...(secret ? { secret } : {}) });
    const a: AddressInfo = await listenTcp(slave.server, '127.0.0.1', 0);
    slave.start(formatAddress(a.address, a.port));
    t.teardown(() => slave.close());
    slaveRoots.push(root);
    slavePorts.push(a.port);
  }
  const link = await Link.connect('127.0.0.1', m.port);
  t.teardown(() => link.close());
  const session = new Session(link, () => {});
  const run = async (line: string) => session.run(splitWords(line));
  return { base, mRoot, master, masterPort: m.port, slaveRoots, slavePorts, run };
}

/** Waits until the master has `n` live replicas (10 s bound). */
async function replicasLive(master: ReturnType<typeof createMaster>, n: number): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ([...master.replicas.values()].filter((r) => !r.failed).length >= n) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

t.test('a slave refuses a forged COPIAR, AGREGAR_ARCHIVO and ELIMINAR_ARCHIVO from a raw socket, and the master\'s changes still replicate', async (t) => {
  const c = await cluster(t);
  await c.run('mkdir docs');
  await writeFile(path.join(c.base, 'a.txt'), 'real\n');
  await c.run(`put ${path.join(c.base, 'a.txt')} docs/`);
  const slaveRoot = c.slaveRoots[0] as string;
  t.equal(await converge(c.mRoot, slaveRoot), 0, 'the replica has the master\'s tree');
  const before = await manifest(slaveRoot);
  const port = c.slavePorts[0] as number;
  // The ids a forger might guess: none, and the small ones a master hands out first.
  for (const id of [0, 1, 2]) {
    const reply = await rawExchange(port, message(COPIAR, '', '', id));
    t.not(reply?.action, COPIAR, `COPIAR with id_nodo ${id} from a stranger is not answered with the manifest`);
  }
  for (const [what, m] of [
    ['AGREGAR_ARCHIVO evil.txt', message(AGREGAR_ARCHIVO, 'evil.txt', 'EVIL', 1)],
    ['AGREGAR_ARCHIVO docs/a.txt (overwrite)', message(AGREGAR_ARCHIVO, 'docs/a.txt', 'EVIL', 1)],
    ['ELIMINAR_ARCHIVO docs/', message(ELIMINAR_ARCHIVO, 'docs/', '', 1)],
  ] as const) {
    // A forger that opens its channel with COPIAR first, then sends the change on the same connection.
    const socket = net.connect({ host: '127.0.0.1', port });
    const reader = messageReader();
    const answers: Pdu[] = [];
    const closed = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        try {
          answers.push(...reader.push(chunk));
        } catch {
          socket.destroy();
        }
        if (answers.length >= 2) socket.destroy();
      });
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    const timer = setTimeout(() => socket.destroy(), 10_000);
    socket.write(Message.encode(message(COPIAR, '', '', 1)));
    socket.write(Message.encode(m));
    await closed;
    clearTimeout(timer);
    t.not(answers[1]?.action, m.action, `${what}: not acknowledged (${answers.map((a) => a.action).join(',')})`);
  }
  t.same(await manifest(slaveRoot), before, 'the replica is unchanged');
  await c.run('mkdir after');
  t.equal(await converge(c.mRoot, slaveRoot), 0, 'a real change of the master still reaches the replica');
});

t.test('a REGISTRAR from a stranger naming another address does not make the master connect there, and does not drop a live slave', async (t) => {
  const c = await cluster(t);
  t.ok(await replicasLive(c.master, 1), 'the slave is registered');
  const live = [...c.master.replicas.values()][0];
  // A trap on another loopback address: the master must not connect to it.
  let connections = 0;
  const trap = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  const trapAddress = await listenTcp(trap, '127.0.0.2', 0);
  t.teardown(() => trap.close());
  const toTrap = await rawExchange(c.masterPort, message(REGISTRAR, '', `127.0.0.2:${trapAddress.port}`));
  t.equal(toTrap?.action, ERROR, `REGISTRAR naming 127.0.0.2 from 127.0.0.1 is refused (${toTrap ? new TextDecoder().decode(toTrap.data) : 'no answer'})`);
  const steal = await rawExchange(c.masterPort, message(REGISTRAR, '', `127.0.0.1:${c.slavePorts[0]}`));
  t.equal(steal?.action, ERROR, `REGISTRAR naming the live slave's address is refused (${steal ? new TextDecoder().decode(steal.data) : 'no answer'})`);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.equal(connections, 0, 'the master never connected to the trap');
  t.equal([...c.master.replicas.values()][0], live, 'the live slave keeps its replica');
  t.notOk(live?.failed, 'and its channel is still open');
  await c.run('mkdir after');
  t.equal(await converge(c.mRoot, c.slaveRoots[0] as string), 0, 'the slave still gets the master\'s changes');
});

t.test('a REGISTRAR for a slave that accepts and never answers does not hold up the clients\' changes (found by the fuzz campaign)', async (t) => {
  const c = await cluster(t);
  t.ok(await replicasLive(c.master, 1), 'the real slave is registered');
  t.equal(await converge(c.mRoot, c.slaveRoots[0] as string), 0, 'and in sync');
  // A "slave" that accepts the master's connection and never says a word.
  const held: net.Socket[] = [];
  const silent = net.createServer((s) => held.push(s.on('error', () => {})));
  const silentAddress = await listenTcp(silent, '127.0.0.1', 0);
  t.teardown(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const registered = await rawExchange(c.masterPort, message(REGISTRAR, '', `127.0.0.1:${silentAddress.port}`));
  t.equal(registered?.action, REGISTRAR, 'the master takes the registration (its address is the sender\'s own)');
  t.ok(await replicasLive(c.master, 2), 'and connects to the silent one');
  const silentReplica = [...c.master.replicas.values()].find((r) => r.where.endsWith(`:${silentAddress.port}`));
  await c.run('mkdir after-silent');
  // Had the answer waited for the silent slave, it would have come only once the master gave up
  // on its manifest (REPLICA_TIMEOUT_MS) and dropped it: the answer must come while it is still held.
  t.ok(silentReplica && !silentReplica.failed, 'mkdir is answered while the slave that never synchronised is still waited on, not after it was dropped');
  t.equal(await converge(c.mRoot, c.slaveRoots[0] as string), 0, 'the real slave still gets the change');
});

/** The authenticated mode's hello, as ej12/README.md documents it: 8 bytes of magic, then a 16-byte random nonce. */
const AUTH_MAGIC = Buffer.from('EJ12HMAC');
const NONCE_LENGTH = 16;

/** Opens an authenticated connection by hand with `secret` and returns the socket and the session keys it derived. */
async function rawAuthenticated(port: number, secret: Uint8Array) {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const nonceC = randomBytes(NONCE_LENGTH);
  socket.write(Buffer.concat([AUTH_MAGIC, nonceC]));
  const hello = await new Promise<Buffer | undefined>((resolve) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= AUTH_MAGIC.length + NONCE_LENGTH) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve(undefined));
    setTimeout(() => resolve(undefined), 10_000);
  });
  const nonceS = hello?.subarray(AUTH_MAGIC.length, AUTH_MAGIC.length + NONCE_LENGTH) ?? Buffer.alloc(NONCE_LENGTH);
  const key = createHmac('sha256', secret).update('ej12 c2s').update(nonceC).update(nonceS).digest();
  return { socket, key, hello, nonceC };
}

t.test('with a secret, replication works and a PDU with a wrong or missing MAC is refused', async (t) => {
  const secret = randomBytes(32);
  const c = await cluster(t, { secret });
  await c.run('mkdir docs');
  const slaveRoot = c.slaveRoots[0] as string;
  t.equal(await converge(c.mRoot, slaveRoot), 0, 'master and slave with the same secret replicate');
  const before = await manifest(slaveRoot);
  const port = c.slavePorts[0] as number;

  const plain = await rawExchange(port, message(COPIAR, '', '', 0));
  t.not(plain?.action, COPIAR, 'a COPIAR without a MAC is refused');
  const plainRegistration = await rawExchange(c.masterPort, message(REGISTRAR, '', '127.0.0.1:9'));
  t.equal(plainRegistration?.action, ERROR, 'a REGISTRAR without a MAC is refused by the master');

  for (const [what, key] of [
    ['a wrong secret', createHmac('sha256', randomBytes(32)).digest()],
    ['a MAC of the right key over another counter', undefined],
  ] as const) {
    const raw = await rawAuthenticated(port, secret);
    t.ok(raw.hello, `${what}: the slave answers the hello`);
    const pdu = Message.encode(message(AGREGAR_ARCHIVO, 'evil.txt', 'EVIL'));
    const counter = Buffer.alloc(8);
    if (!key) counter.writeBigUInt64BE(5n);
    const mac = createHmac('sha256', key ?? raw.key).update(counter).update(pdu).digest();
    const answered = await new Promise<boolean>((resolve) => {
      raw.socket.once('data', () => resolve(true));
      raw.socket.once('close', () => resolve(false));
      setTimeout(() => resolve(true), 10_000);
      raw.socket.write(Buffer.concat([pdu, mac]));
    });
    raw.socket.destroy();
    t.notOk(answered, `${what}: the connection is closed without an answer`);
  }
  {
    // The control: the same hand-made framing with the right key and counter is answered, and its answer's MAC checks.
    const raw = await rawAuthenticated(port, secret);
    const pdu = Message.encode(message(REMOTO, '', JSON.stringify(['ls', ''])));
    const mac = createHmac('sha256', raw.key).update(Buffer.alloc(8)).update(pdu).digest();
    const reply = await new Promise<Buffer>((resolve) => {
      let got = (raw.hello as Buffer).subarray(AUTH_MAGIC.length + NONCE_LENGTH);
      const timer = setTimeout(() => resolve(got), 10_000);
      raw.socket.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length >= 16 && got.length >= 16 + got.readUInt32BE(8) + got.readUInt32BE(12 + got.readUInt32BE(8)) + 32) {
          clearTimeout(timer);
          resolve(got);
        }
      });
      raw.socket.write(Buffer.concat([pdu, mac]));
    });
    raw.socket.destroy();
    const [answer, end] = Message.decode(reply);
    t.equal(answer.action, REMOTO, 'a PDU with the right MAC is answered (a read)');
    t.equal(new TextDecoder().decode(answer.data), 'docs/\n');
    const nonceC = raw.nonceC;
    const nonceS = (raw.hello as Buffer).subarray(AUTH_MAGIC.length, AUTH_MAGIC.length + NONCE_LENGTH);
    const s2c = createHmac('sha256', secret).update('ej12 s2c').update(nonceC).update(nonceS).digest();
    const want = createHmac('sha256', s2c).update(Buffer.alloc(8)).update(reply.subarray(0, end)).digest();
    t.ok(want.equals(reply.subarray(end, end + 32)), 'and the answer carries the slave\'s MAC');
  }
  t.same(await manifest(slaveRoot), before, 'the replica is unchanged');
  await c.run('mkdir after');
  t.equal(await converge(c.mRoot, slaveRoot), 0, 'the master\'s changes still replicate');
});
