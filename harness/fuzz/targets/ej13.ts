/**
 * ej13: a node of the token ring. The campaign plays its successor (a
 * listener of its own, node 0 of the config.ini it writes) and fuzzes the
 * node's listening port (what a predecessor sends). The ring's ids are 0
 * (the campaign's listener), 5 (the source of the check's message) and 6
 * (the node). A finalisation from node 0 ends a node by design, so no case
 * carries one (see {@link carriesFin}).
 *
 * @module
 */
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../../proc.ts';
import { streamCaseFor } from '../cases.ts';
import type { Rng } from '../prng.ts';
import type { FuzzTarget } from '../types.ts';
import { HOST, startWatched, token } from './common.ts';

const SUCCESSOR = 0;
const ME = 5;
const NODE = 6;

/** A frame: ID_SRC u32 | ID_DST u32 | flags u8 | LEN_DAT u32 | DATA. */
export function ringFrame(src: number, dst: number, flags: number, data: string | Uint8Array = ''): Buffer {
  const d = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const out = Buffer.alloc(13 + d.length);
  out.writeUInt32BE(src >>> 0, 0);
  out.writeUInt32BE(dst >>> 0, 4);
  out[8] = flags;
  out.writeUInt32BE(d.length, 9);
  d.copy(out, 13);
  return out;
}

function validFrame(rng: Rng): Uint8Array {
  const ids = [ME, NODE, SUCCESSOR, 99];
  const r = rng.next();
  if (r < 0.5) return ringFrame(rng.pick([ME, ME, 99]), rng.pick([NODE, NODE, ME, 99]), rng.pick([0, 0, 2]), `hola ${token(rng, rng.int(0, 100))}`);
  if (r < 0.7) return ringFrame(rng.pick(ids), NODE, 1);
  if (r < 0.8) return ringFrame(rng.pick([ME, NODE, 99]), rng.pick(ids), 4);
  return ringFrame(rng.pick(ids), rng.pick(ids), rng.int(0, 255), rng.bytes(rng.int(0, 40)));
}

/** Whether `b` holds, at any offset, a finalisation frame from node 0 (src 0, flags F, LEN_DAT 0): a legitimate end of the node. */
export function carriesFin(b: Uint8Array): boolean {
  for (let i = b.indexOf(4, 8); i >= 8 && i + 5 <= b.length; i = b.indexOf(4, i + 1)) {
    if (b[i - 8] === 0 && b[i - 7] === 0 && b[i - 6] === 0 && b[i - 5] === 0 && b[i + 1] === 0 && b[i + 2] === 0 && b[i + 3] === 0 && b[i + 4] === 0) return true;
  }
  return false;
}

interface RingState {
  /** Data of every ACK frame the node forwarded to the campaign (its successor). */
  acks: Set<string>;
  server: net.Server;
  sockets: Set<net.Socket>;
}

export const ej13: FuzzTarget<RingState> = {
  name: 'ej13',
  title: 'ej13 token-ring node (the campaign is its successor)',
  async setup(env) {
    const acks = new Set<string>();
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      let buf = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 13 && buf.length >= 13 + buf.readUInt32BE(9)) {
          const n = buf.readUInt32BE(9);
          if (buf[8] === 2) acks.add(buf.subarray(13, 13 + n).toString('utf8'));
          buf = buf.subarray(13 + n);
        }
      });
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    });
    const mine = await freePort();
    await new Promise<void>((resolve) => server.listen(mine, HOST, resolve));
    const nodePort = await freePort();
    await writeFile(path.join(env.dir, 'none.txt'), '');
    const config = path.join(env.dir, 'config.ini');
    await writeFile(config, `[nodo${SUCCESSOR}]\nhost = ${HOST}\nport = ${mine}\n\n[nodo${ME}]\nhost = ${HOST}\nport = ${await freePort()}\n\n[nodo${NODE}]\nhost = ${HOST}\nport = ${nodePort}\n`);
    const { proc, port } = await startWatched(env, 'ej13', 'node', () => ['--id', String(NODE), '--id_dst', String(SUCCESSOR), '--config', config, '--messages', path.join(env.dir, 'none.txt'), '--wait', '30'], 'tcp', { port: nodePort }).catch(async (error) => {
      server.close();
      throw error;
    });
    return {
      proc,
      port,
      state: { acks, server, sockets },
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  },
  generate: (rng, index) =>
    streamCaseFor(rng, `ej13#${index}`, {
      label: 'tcp',
      port: (r) => r.port,
      valid: validFrame,
      lengthFields: () => [9],
      reject: carriesFin,
    }),
  async check(running) {
    const text = `fuzz check ${token(undefined, 10)}`;
    const socket = net.connect({ host: HOST, port: running.port });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('error', reject);
      });
      socket.on('error', () => {});
      socket.write(ringFrame(ME, NODE, 0, text));
      const deadline = Date.now() + 5000;
      while (!running.state.acks.has(text)) {
        if (Date.now() > deadline) throw new Error(`a message from ${ME} to ${NODE} ("${text}") did not come back acknowledged within 5 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      running.state.acks.delete(text);
      if (!running.proc.stdout.includes(`from ${ME}: ${text}`)) {
        await new Promise((r) => setTimeout(r, 500));
        if (!running.proc.stdout.includes(`from ${ME}: ${text}`)) throw new Error(`the node acknowledged "${text}" but did not print "from ${ME}: ${text}"`);
      }
    } finally {
      socket.destroy();
    }
  },
};
