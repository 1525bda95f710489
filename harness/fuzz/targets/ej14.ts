/**
 * ej14: the reducer (fuzzed as a master and as mappers would talk to it)
 * and a mapper (fuzzed on the port its master talks to, and in what its
 * reducer answers: the campaign is the mapper's reducer, a fake one that
 * answers each OFFER as the case says).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../../proc.ts';
import { mixed, streamCaseFor } from '../cases.ts';
import { mutate, preview } from '../mutate.ts';
import type { Rng } from '../prng.ts';
import type { Case, FixedCase, FuzzTarget, Running } from '../types.ts';
import { HOST, startWatched, token } from './common.ts';

export const T = { ASSIGN: 0x01, BEAT: 0x02, DONE: 0x03, JOB: 0x10, JOB_OK: 0x11, PIECE_STORED: 0x12, RESULT: 0x13, OFFER: 0x20, GRANT: 0x21, DENY: 0x22, TABLE: 0x23, STORED: 0x24, ERROR: 0x7f } as const;

/** A frame: len u32 (after itself) | type u8 | job (16) | piece u32 | payload. */
export function frame(type: number, job: Uint8Array, piece: number, payload: Uint8Array | string = new Uint8Array(0)): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const out = Buffer.alloc(25 + p.length);
  out.writeUInt32BE(21 + p.length, 0);
  out[4] = type;
  Buffer.from(job).copy(out, 5);
  out.writeUInt32BE(piece >>> 0, 21);
  p.copy(out, 25);
  return out;
}

/** A table: u32 entries, then u32 count, u32 term length, term. */
export function table(entries: [string, number][]): Buffer {
  const parts = [Buffer.alloc(4)];
  parts[0]?.writeUInt32BE(entries.length, 0);
  for (const [term, count] of entries) {
    const t = Buffer.from(term, 'utf8');
    const h = Buffer.alloc(8);
    h.writeUInt32BE(count, 0);
    h.writeUInt32BE(t.length, 4);
    parts.push(h, t);
  }
  return Buffer.concat(parts);
}

function decodeTable(b: Buffer): Map<string, number> {
  const out = new Map<string, number>();
  const n = b.readUInt32BE(0);
  let at = 4;
  for (let i = 0; i < n; i++) {
    const count = b.readUInt32BE(at);
    const len = b.readUInt32BE(at + 4);
    out.set(b.subarray(at + 8, at + 8 + len).toString('utf8'), count);
    at += 8 + len;
  }
  return out;
}

/** Cuts frames from a stream. */
class Frames {
  #buf = Buffer.alloc(0);
  push(d: Buffer): { type: number; job: Buffer; piece: number; payload: Buffer }[] {
    this.#buf = Buffer.concat([this.#buf, d]);
    const out = [];
    while (this.#buf.length >= 4 && this.#buf.readUInt32BE(0) >= 21 && this.#buf.length >= 4 + this.#buf.readUInt32BE(0)) {
      const len = this.#buf.readUInt32BE(0);
      out.push({ type: this.#buf[4] ?? 0, job: this.#buf.subarray(5, 21), piece: this.#buf.readUInt32BE(21), payload: this.#buf.subarray(25, 4 + len) });
      this.#buf = this.#buf.subarray(4 + len);
    }
    return out;
  }
}

const lengthFields = (b: Uint8Array): number[] => {
  const out = [0];
  if (b.length >= 29 && (b[4] === T.TABLE || b[4] === T.RESULT)) out.push(25, 29, 33);
  return out;
};

/** Talks to `port`: writes `first`, hands every frame to `onFrame` until it resolves the exchange. */
function exchange<V>(port: number, first: Uint8Array, onFrame: (f: ReturnType<Frames['push']>[number], socket: net.Socket) => V | undefined, timeoutMs: number, what: string): Promise<V> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    const frames = new Frames();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${what}: no answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(first));
    socket.on('data', (d: Buffer) => {
      for (const f of frames.push(d)) {
        const v = onFrame(f, socket);
        if (v !== undefined) {
          clearTimeout(timer);
          socket.destroy();
          resolve(v);
          return;
        }
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${error.message}`));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`${what}: the connection closed first`));
    });
  });
}

// -- the reducer --------------------------------------------------------------

function reducerFrame(rng: Rng): Uint8Array {
  const job = rng.bytes(16);
  const r = rng.next();
  if (r < 0.3) return frame(T.JOB, job, rng.pick([1, 2, 3, 0, 0xffffffff]));
  if (r < 0.6) return frame(T.OFFER, job, rng.int(0, 4), `127.0.0.1:${rng.int(1, 65535)}`);
  if (r < 0.8) return frame(T.TABLE, job, rng.int(0, 4), table([['hola', rng.int(1, 9)], [token(rng, rng.int(1, 20)), rng.int(1, 1000)]]));
  return frame(rng.pick(Object.values(T)), job, rng.int(0, 4), rng.bytes(rng.int(0, 64)));
}

export const ej14reducer: FuzzTarget = {
  name: 'ej14-reducer',
  title: 'ej14 reducer (as its master and mappers talk to it)',
  async setup(env) {
    const port = await freePort();
    const config = path.join(env.dir, 'config.ini');
    await writeFile(config, `[reducer]\nhost = ${HOST}\nport = ${port}\n\n[mapper1]\nhost = ${HOST}\nport = ${await freePort()}\n`);
    const { proc } = await startWatched(env, 'ej14', 'reducer', () => ['--config', config, '--grant-timeout', '3'], 'tcp', { port });
    return { proc, port, state: undefined };
  },
  generate: (rng, index) => streamCaseFor(rng, `ej14-reducer#${index}`, { label: 'tcp', port: (r) => r.port, valid: reducerFrame, lengthFields }),
  async check(running) {
    // A whole job of one piece: JOB → JOB_OK; OFFER → GRANT; TABLE → STORED; the master gets RESULT.
    const job = randomBytes(16);
    const master = net.connect({ host: HOST, port: running.port });
    const frames = new Frames();
    try {
      const result = new Promise<Map<string, number>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('job of one piece: no RESULT within 10 s')), 10_000);
        master.on('data', (d: Buffer) => {
          for (const f of frames.push(d)) {
            if (f.type === T.RESULT) {
              clearTimeout(timer);
              resolve(decodeTable(f.payload));
            } else if (f.type === T.ERROR) {
              clearTimeout(timer);
              reject(new Error(`job: the reducer said ERROR ${f.payload.toString('utf8').slice(0, 200)}`));
            }
          }
        });
        master.on('error', (e) => reject(new Error(`master connection: ${e.message}`)));
      });
      await new Promise<void>((resolve, reject) => {
        master.once('connect', () => resolve());
        master.once('error', reject);
      });
      master.write(frame(T.JOB, job, 1));
      await new Promise((r) => setTimeout(r, 100));
      await exchange(running.port, frame(T.OFFER, job, 1, 'fuzz-check'), (f, socket) => {
        if (f.type === T.GRANT) socket.write(frame(T.TABLE, job, 1, table([['hola', 2], ['mundo', 1]])));
        else if (f.type === T.STORED) return true;
        else throw new Error(`offer: the reducer answered 0x${f.type.toString(16)} ${f.payload.toString('utf8').slice(0, 200)}`);
        return undefined;
      }, 8000, 'offer of piece 1');
      const counts = await result;
      if (counts.get('hola') !== 2 || counts.get('mundo') !== 1 || counts.size !== 2) throw new Error(`RESULT: ${JSON.stringify([...counts])}, expected hola 2, mundo 1`);
    } finally {
      master.destroy();
    }
  },
};

// -- the mapper -----------------------------------------------------------------

/** How the fake reducer answers the OFFER of a job: scripted bytes, or by default GRANT then STORED. */
interface FakeReducer {
  scripts: Map<string, { bytes: Uint8Array; then: 'end' | 'reset' | 'open' }>;
  tables: Map<string, Map<string, number>>;
  close(): Promise<void>;
}

async function fakeReducer(port: number): Promise<FakeReducer> {
  const scripts: FakeReducer['scripts'] = new Map();
  const tables = new Map<string, Map<string, number>>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const frames = new Frames();
    socket.on('data', (d: Buffer) => {
      for (const f of frames.push(d)) {
        const key = f.job.toString('hex');
        if (f.type === T.OFFER) {
          const script = scripts.get(key);
          if (script) {
            scripts.delete(key);
            socket.write(script.bytes, () => {
              if (script.then === 'end') socket.end();
              else if (script.then === 'reset') socket.resetAndDestroy();
            });
          } else socket.write(frame(T.GRANT, f.job, f.piece));
        } else if (f.type === T.TABLE) {
          try {
            tables.set(key, decodeTable(f.payload));
          } catch {
            tables.set(key, new Map([['<undecodable>', 0]]));
          }
          socket.end(frame(T.STORED, f.job, f.piece));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
  return {
    scripts,
    tables,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends ASSIGN as the master; resolves with the DONE frame's outcome and reason, or undefined after `timeoutMs`. */
function assign(port: number, job: Uint8Array, text: string, timeoutMs: number): Promise<{ outcome: number; reason: string } | undefined> {
  return exchange(port, frame(T.ASSIGN, job, 1, text), (f) => (f.type === T.DONE ? { outcome: f.payload[0] ?? -1, reason: f.payload.subarray(1).toString('utf8') } : f.type === T.ERROR ? { outcome: -1, reason: f.payload.toString('utf8') } : undefined), timeoutMs, 'ASSIGN').catch(() => undefined);
}

/** A case in the reducer's role: the mapper's OFFER of a job is answered with `bytes`. */
function reducerAnswer(id: string, kind: string, detail: string, bytesFor: (job: Uint8Array) => Uint8Array, then: 'end' | 'reset' | 'open', seedJob: Uint8Array): Case<FakeReducer> {
  return {
    id,
    kind,
    detail,
    async run(running) {
      const job = seedJob;
      running.state.scripts.set(Buffer.from(job).toString('hex'), { bytes: bytesFor(job), then });
      await assign(running.port, job, 'hola hola mundo', 4000);
      running.state.scripts.delete(Buffer.from(job).toString('hex'));
    },
  };
}

function reducerRoleCase(rng: Rng, id: string): Case<FakeReducer> {
  const job = rng.bytes(16);
  const seed = rng.bytes(4);
  const then = rng.pick(['end', 'end', 'reset', 'open'] as const);
  const r = rng.next();
  if (r < 0.25) {
    const size = rng.size(1024 * 1024);
    const type = rng.pick([T.DENY, T.ERROR]);
    return reducerAnswer(id, 'reducer-long-text', `reducer role: the OFFER answered by ${type === T.DENY ? 'DENY' : 'ERROR'} with ${size} bytes of text (${then})`, (j) => frame(type, j, 1, 'x'.repeat(size)), then, job);
  }
  // A mutation of a valid answer (GRANT, DENY, ERROR, STORED), made from the case's own seed.
  const kindRng = rng.fork(Buffer.from(seed).toString('hex'));
  const valid = frame(kindRng.pick([T.GRANT, T.DENY, T.ERROR, T.STORED]), job, 1, kindRng.chance(0.5) ? 'duplicate: piece 1 is already counted' : '');
  const m = mutate(kindRng, valid, { max: 1024 * 1024, lengthFields: [0] });
  return reducerAnswer(id, `reducer-${m.kind}`, `reducer role: the OFFER answered by ${m.kind} ${preview(m.bytes)} (${then})`, () => m.bytes, then, job);
}

const issue18 = (type: number, name: string): FixedCase<FakeReducer> => ({
  ...reducerAnswer(`ej14-mapper:issue-18-${name.toLowerCase()}`, 'fixed', `reducer role: the OFFER answered by ${name} whose text is 200 kB ("x" × 204800), then the reducer ends the connection`, (j) => frame(type, j, 1, 'x'.repeat(204_800)), 'end', Buffer.alloc(16, type)),
  finding: 'issue 11 #18',
});

export const ej14mapper: FuzzTarget<FakeReducer> = {
  name: 'ej14-mapper',
  title: 'ej14 mapper (as its master talks to it, and as its reducer answers it)',
  async setup(env) {
    const reducerPort = await freePort();
    const reducer = await fakeReducer(reducerPort);
    const port = await freePort();
    const config = path.join(env.dir, 'config.ini');
    await writeFile(config, `[reducer]\nhost = ${HOST}\nport = ${reducerPort}\n\n[mapper1]\nhost = ${HOST}\nport = ${port}\n`);
    try {
      const { proc } = await startWatched(env, 'ej14', 'mapper', () => ['--config', config, HOST, String(port)], 'tcp', { port });
      return { proc, port, state: reducer, close: () => reducer.close() };
    } catch (error) {
      await reducer.close();
      throw error;
    }
  },
  generate: mixed('ej14-mapper', [
    { weight: 1, make: (rng, id) => streamCaseFor(rng, id, { label: 'master-port', port: (r) => r.port, valid: (g) => frame(g.pick([T.ASSIGN, T.ASSIGN, T.BEAT, T.JOB]), g.bytes(16), g.int(0, 3), `hola ${token(g, g.int(0, 200))}`), lengthFields }) },
    { weight: 1, make: reducerRoleCase },
  ]),
  fixed: [issue18(T.DENY, 'DENY'), issue18(T.ERROR, 'ERROR')],
  async check(running: Running<FakeReducer>) {
    const job = randomBytes(16);
    const done = await assign(running.port, job, 'hola hola mundo', 10_000);
    if (!done) throw new Error('ASSIGN "hola hola mundo": no DONE within 10 s');
    if (done.outcome !== 0) throw new Error(`ASSIGN: DONE outcome ${done.outcome} (${done.reason.slice(0, 200)}), expected 0 (stored)`);
    const counted = running.state.tables.get(job.toString('hex'));
    running.state.tables.delete(job.toString('hex'));
    if (!counted || counted.get('hola') !== 2 || counted.get('mundo') !== 1) throw new Error(`the mapper's TABLE: ${JSON.stringify([...(counted ?? [])])}, expected hola 2, mundo 1`);
  },
};
