/** ej12: the replicated directory's master (clients' port) and a slave (the port its master connects to). @module */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { streamCaseFor } from '../cases.ts';
import { tcpRequest } from '../net.ts';
import type { Rng } from '../prng.ts';
import type { FixedCase, FuzzTarget } from '../types.ts';
import { freePort } from '../../proc.ts';
import { HOST, startHelper, startWatched, token } from './common.ts';

/** A PDU: id_nodo u32 | accion u32 | bytes_path u32 | path | bytes u32 | data (ej12/protocol.ts). */
export function pdu(action: number, pathText: string, data: string | Uint8Array, id = 0): Buffer {
  const p = Buffer.from(pathText, 'utf8');
  const d = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const out = Buffer.alloc(16 + p.length + d.length);
  out.writeUInt32BE(id, 0);
  out.writeUInt32BE(action, 4);
  out.writeUInt32BE(p.length, 8);
  p.copy(out, 12);
  out.writeUInt32BE(d.length, 12 + p.length);
  d.copy(out, 16 + p.length);
  return out;
}

/** Offsets of the two length fields of a PDU. */
const lengthFields = (b: Uint8Array): number[] => {
  if (b.length < 12) return [];
  const p = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(8);
  return p + 16 <= b.length ? [8, 12 + p] : [8];
};

/** Reads one whole PDU from `b`, or undefined. */
function whole(b: Buffer): { action: number; path: string; data: Buffer } | undefined {
  if (b.length < 16) return undefined;
  const p = b.readUInt32BE(8);
  if (b.length < 16 + p) return undefined;
  const d = b.readUInt32BE(12 + p);
  if (b.length < 16 + p + d) return undefined;
  return { action: b.readUInt32BE(4), path: b.subarray(12, 12 + p).toString('utf8'), data: b.subarray(16 + p, 16 + p + d) };
}

const NAMES = ['a.txt', 'dir/', 'dir/b.txt', '../escape', '/abs', 'x/../y', 'a\u0000b', ''];

function masterRequest(rng: Rng): Uint8Array {
  const r = rng.next();
  if (r < 0.5) {
    const cmd = rng.pick([['ls', ''], ['ls', 'dir'], ['pwd'], ['cat', 'a.txt'], ['mkdir', `d${rng.int(0, 9)}`], ['cp', 'a.txt', `c${rng.int(0, 9)}.txt`], ['rm', `c${rng.int(0, 9)}.txt`], ['frobnicate'], []]);
    return pdu(1, rng.pick(['', 'dir']), JSON.stringify(cmd));
  }
  if (r < 0.8) return pdu(rng.pick([3, 5]), rng.pick(NAMES), token(rng, rng.int(0, 300)));
  // Never REGISTRAR (0) to the master: its data names a host the master connects to, and only loopback may be reached.
  return pdu(rng.int(1, 7), rng.pick(NAMES), rng.bytes(rng.int(0, 64)), rng.int(0, 5));
}

function slaveRequest(rng: Rng): Uint8Array {
  const r = rng.next();
  if (r < 0.3) return pdu(2, '', '');
  if (r < 0.7) return pdu(rng.pick([3, 4, 5]), rng.pick(NAMES), token(rng, rng.int(0, 300)));
  return pdu(rng.int(0, 7), rng.pick(NAMES), rng.bytes(rng.int(0, 64)), rng.int(0, 5));
}

async function seedRoot(dir: string): Promise<string> {
  await mkdir(path.join(dir, 'dir'), { recursive: true });
  await writeFile(path.join(dir, 'a.txt'), 'file a\n');
  return dir;
}

/**
 * Found by this campaign (seed 1, ej12-master batch 15 of 1000, with forged
 * REGISTRARs): a REGISTRAR from loopback naming a port that accepts and never
 * answers (a silent slave) leaves every later mutating command unanswered.
 */
const silentSlave: FixedCase<string> = {
  id: 'ej12-master:silent-slave',
  finding: 'fuzz campaign, 2026-12-01',
  kind: 'fixed',
  detail: 'tcp: REGISTRAR "127.0.0.1:P" where P accepts and never answers, then REMOTO ["mkdir","fz"] must be answered within 10 s',
  async run(running) {
    const silent = net.createServer((socket) => socket.on('error', () => {}));
    const port = await freePort();
    await new Promise<void>((resolve) => silent.listen(port, HOST, resolve));
    try {
      await tcpRequest(HOST, running.port, pdu(0, '', `${HOST}:${port}`), (b) => whole(b) !== undefined, 5000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
      const dir = `fz${Math.random().toString(36).slice(2, 8)}`;
      await tcpRequest(HOST, running.port, pdu(1, '', JSON.stringify(['mkdir', dir])), (b) => whole(b) !== undefined, 10_000).catch((error: Error) => {
        throw new Error(`REMOTO ["mkdir","${dir}"] after a REGISTRAR for a silent slave at ${HOST}:${port}: ${error.message}`);
      });
    } finally {
      silent.close();
    }
  },
};

/**
 * Found by this campaign (seed 1, ej12-master batch 15 of 1000): connections
 * that had each pipelined thousands of PDUs and gone kept the master running
 * their PDUs for seconds after, so the next client's `ls` went unanswered
 * for over 5 s. The master must drop the queued work of a connection that
 * went away: its tree stops changing once they are gone.
 */
const pipelinedThenGone: FixedCase<string> = {
  id: 'ej12-master:pipelined-then-gone',
  finding: 'fuzz campaign, 2026-12-01',
  kind: 'fixed',
  detail: 'tcp: 40 connections each pipeline 500 REMOTO ["mkdir",…] in one write and reset at the first answer; 2 s later the tree must have stopped growing',
  async run(running) {
    const prefix = `p${Math.random().toString(36).slice(2, 8)}`;
    const burst = (c: number) => Buffer.concat(Array.from({ length: 500 }, (_, i) => pdu(1, '', JSON.stringify(['mkdir', `${prefix}-${c}-${i}`]))));
    await Promise.all(
      Array.from({ length: 40 }, (_, c) =>
        new Promise<void>((resolve) => {
          const socket = net.connect(running.port, HOST, () => socket.write(burst(c)));
          const timer = setTimeout(() => socket.destroy(), 5000);
          socket.once('data', () => socket.resetAndDestroy());
          socket.on('close', () => {
            clearTimeout(timer);
            resolve();
          });
          socket.on('error', () => {});
        }),
      ),
    );
    const count = async () => (await readdir(running.state)).filter((name) => name.startsWith(prefix)).length;
    await new Promise((r) => setTimeout(r, 2000));
    const before = await count();
    await new Promise((r) => setTimeout(r, 2000));
    const after = await count();
    if (after > before) throw new Error(`the master kept running the PDUs of 40 connections that had gone: ${after - before} more directories 2 to 4 s after they went (${after} of 20000 in all)`);
  },
};

export const ej12master: FuzzTarget<string> = {
  name: 'ej12-master',
  title: 'ej12 master (clients and slaves connect to it)',
  async setup(env) {
    const root = await seedRoot(path.join(env.dir, 'master'));
    const { proc, port } = await startWatched(env, 'ej12', 'master', (p) => ['--host', HOST, '--port', String(p), '--root', root]);
    return { proc, port, state: root };
  },
  generate: (rng, index) => streamCaseFor(rng, `ej12-master#${index}`, { label: 'tcp', port: (r) => r.port, valid: masterRequest, lengthFields }),
  fixed: [silentSlave, pipelinedThenGone],
  async check(running) {
    const got = await tcpRequest(HOST, running.port, pdu(1, '', JSON.stringify(['ls', ''])), (b) => whole(b) !== undefined);
    const m = whole(got);
    if (!m || m.action !== 1 || !m.data.toString('utf8').includes('a.txt')) throw new Error(`REMOTO ["ls",""]: expected a REMOTO answer listing a.txt, received action ${m?.action} ${JSON.stringify(m?.data.subarray(0, 120).toString('utf8'))}`);
  },
};

export const ej12slave: FuzzTarget = {
  name: 'ej12-slave',
  title: 'ej12 slave (its master, a real one, connects to it)',
  checkAttempts: 5,
  async setup(env) {
    const masterRoot = await seedRoot(path.join(env.dir, 'master'));
    const master = await startHelper(env, 'ej12', 'master', (p) => ['--host', HOST, '--port', String(p), '--root', masterRoot]);
    const { proc, port } = await startWatched(env, 'ej12', 'slave', (p) => ['--host', HOST, '--port', String(p), '--root', path.join(env.dir, 'replica'), '--master', `${HOST}:${master.port}`]);
    return { proc, port, state: undefined };
  },
  generate: (rng, index) => streamCaseFor(rng, `ej12-slave#${index}`, { label: 'tcp', port: (r) => r.port, valid: slaveRequest, lengthFields }),
  async check(running) {
    // What its master asks first: the manifest (COPIAR), a JSON list of entries.
    const got = await tcpRequest(HOST, running.port, pdu(1, '', JSON.stringify(['ls', ''])), (b) => whole(b) !== undefined);
    const m = whole(got);
    if (!m || (m.action !== 1 && m.action !== 6)) throw new Error(`REMOTO ["ls",""] to the slave: expected an answer PDU, received action ${m?.action}`);
    if (m.action === 1 && !m.data.toString('utf8').includes('a.txt')) throw new Error(`REMOTO ["ls",""] to the slave: the replica does not list a.txt: ${JSON.stringify(m.data.subarray(0, 120).toString('utf8'))}`);
  },
};
