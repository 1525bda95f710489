/** ej11: the file server, reliable UDP and TCP on one port. @module */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { datagramCaseFor, mixed, streamCaseFor } from '../cases.ts';
import { datagramCase, streamCase, tcpRequest } from '../net.ts';
import { Rng } from '../prng.ts';
import type { Case, FixedCase, FuzzTarget, Running } from '../types.ts';
import { mutate, preview } from '../mutate.ts';
import { HOST, startWatched, utf8 } from './common.ts';

const SMALL = 'small.txt';
const BIG = 'big.bin';
const SMALL_TEXT = 'the small file of the fuzz campaign\n'.repeat(20);
const BIG_SIZE = 4 * 1024 * 1024;

/** A packet: sequence, ack, ack_bitfield, type, flags, window, connection, through, data (ej11/protocol.ts). */
export function packet(fields: { sequence?: number; ack?: number; bits?: number; type: number; flags?: number; window?: number; connection: number; through?: number }, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(24 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, (fields.sequence ?? 1000) >>> 0);
  v.setUint32(4, (fields.ack ?? 0) >>> 0);
  v.setUint32(8, (fields.bits ?? 0) >>> 0);
  out[12] = fields.type;
  out[13] = fields.flags ?? 0;
  v.setUint16(14, fields.window ?? 1024);
  v.setUint32(16, fields.connection >>> 0);
  v.setUint32(20, (fields.through ?? 0) >>> 0);
  out.set(data, 24);
  return out;
}

/** A GET (type 1, SYN) for `name`. */
export const getPacket = (name: Uint8Array, connection: number): Uint8Array => packet({ type: 1, flags: 1, connection }, name);

/** RETRY (type 9) and the TOKEN flag: the server's address validation, since 4bcb096. */
const RETRY = 9;
const TOKEN_FLAG = 4;

/**
 * From one socket: sends `first`; if the server answers RETRY (a token for
 * this address and port), sends `withToken(token)` too. Resolves with every
 * reply. A server without RETRY just answers the first.
 */
export function udpWithToken(port: number, first: Uint8Array, withToken: (token: Buffer) => Uint8Array[], { quietMs = 300, timeoutMs = 2500 } = {}): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const replies: Buffer[] = [];
    let quiet: ReturnType<typeof setTimeout> | undefined;
    let retried = false;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(quiet);
      try {
        socket.close();
      } catch {
        // closed
      }
      resolve(replies);
    };
    const timer = setTimeout(done, timeoutMs);
    const arm = () => {
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    };
    socket.on('error', done);
    socket.on('message', (msg) => {
      replies.push(msg);
      if (msg.length >= 40 && msg[12] === RETRY && !retried) {
        retried = true;
        for (const d of withToken(msg.subarray(24, 40))) socket.send(d, port, HOST);
      }
      arm();
    });
    socket.bind(0, HOST, () => {
      socket.send(first, port, HOST);
      arm();
    });
  });
}

/** A GET with the TOKEN flag: token, then the name. */
export const tokenGet = (token: Uint8Array, name: Uint8Array, connection: number): Uint8Array => packet({ type: 1, flags: 1 | TOKEN_FLAG, connection }, Buffer.concat([token, name]));

function validUdp(rng: Rng): Uint8Array {
  const connection = rng.int(0, 0xffffffff);
  const r = rng.next();
  if (r < 0.5) return getPacket(utf8(rng.pick([SMALL, BIG, 'missing.txt', '../etc/passwd', 'sub/../small.txt', ''])), connection);
  if (r < 0.65) {
    const data = new Uint8Array(8 + 8);
    new DataView(data.buffer).setBigUint64(0, BigInt(rng.int(0, 5000)));
    data.set(utf8(`up${rng.int(0, 99)}.bin`), 8);
    return packet({ type: 2, flags: 1, connection }, data);
  }
  return packet({ type: rng.int(3, 8), flags: rng.int(0, 3), connection, sequence: rng.int(0, 0xffffffff), ack: rng.int(0, 0xffffffff), bits: rng.int(0, 0xffffffff) }, rng.bytes(rng.int(0, 64)));
}

/** TCP framing (ej11/tcp.ts): op u8 | name_length u16 | name | [PUT: size u64, bytes, SHA-256]. */
export function tcpGet(name: string): Uint8Array {
  const n = Buffer.from(name, 'utf8');
  const out = Buffer.alloc(3 + n.length);
  out[0] = 1;
  out.writeUInt16BE(n.length, 1);
  n.copy(out, 3);
  return out;
}

function validTcp(rng: Rng): Uint8Array {
  if (rng.chance(0.7)) return tcpGet(rng.pick([SMALL, BIG, BIG, 'missing.txt', '../x']));
  const body = rng.bytes(rng.int(0, 2000));
  const name = Buffer.from(`put${rng.int(0, 99)}.bin`);
  const out = Buffer.alloc(3 + name.length + 8 + body.length + 32);
  out[0] = 2;
  out.writeUInt16BE(name.length, 1);
  name.copy(out, 3);
  out.writeBigUInt64BE(BigInt(body.length), 3 + name.length);
  Buffer.from(body).copy(out, 11 + name.length);
  createHash('sha256').update(body).digest().copy(out, 11 + name.length + body.length);
  return out;
}

/** After the server's RETRY: a mutated request that carries the token (so it reaches the transfer code, not only address validation). */
function tokenCase(rng: Rng, id: string): Case {
  const seed = (rng.next() * 4294967296) >>> 0;
  const name = utf8(rng.pick([SMALL, BIG, 'missing.txt', `../${'€'.repeat(rng.int(1, 460))}`, '\u0000'.repeat(rng.int(1, 1300)), 'sub/../small.txt']));
  const connection = rng.int(0, 0xffffffff);
  const kind = new Rng(seed).pick(['random', 'prefix-garbage', 'truncated', 'bit-flips', 'inflated']);
  return {
    id,
    kind: `token-${kind}`,
    detail: `udp: GET, then after RETRY a mutated GET with the token (${kind}, name ${preview(name, 16)}, connection ${connection}, seed ${seed})`,
    async run(running) {
      await udpWithToken(running.port, getPacket(name, connection), (token) => {
        const g = new Rng(seed);
        const valid = tokenGet(token, name, connection);
        return [mutate(g, valid, { max: 1424 }).bytes, valid];
      });
    },
  };
}

const udpFixed = (id: string, label: string, name: Uint8Array): FixedCase => ({
  id,
  finding: 'issue 11 #17',
  kind: 'fixed',
  detail: `udp: one GET datagram whose name is ${label} (${name.length} bytes)`,
  async run(running) {
    // As the issue sent it; and, to a server that validates addresses first, with its token, as is and cut to the longest name that fits.
    const fits = name.subarray(0, 1400 - 16);
    await udpWithToken(running.port, getPacket(name, 0x11111111), (token) => [tokenGet(token, name, 0x11111112), tokenGet(token, fits, 0x11111113)], { quietMs: 500 });
  },
});

const tcpLeak = (id: string, mode: 'reset' | 'stall' | 'stop'): FixedCase => ({
  id,
  finding: 'issue 11 #19',
  kind: 'fixed',
  detail: `tcp: 30 GETs of ${BIG} (4 MiB) whose client ${mode === 'reset' ? 'reads a little, then resets' : mode === 'stall' ? 'never reads, then resets' : 'reads a little, stops reading, then closes'}`,
  async run(running) {
    for (let i = 0; i < 30; i++) {
      if (mode === 'stop') await stopMidTransfer(running.port);
      else await streamCase(HOST, running.port, tcpGet(BIG), { mode, holdMs: 150, timeoutMs: 3000 });
    }
  },
});

/** Reads 64 kB of a big GET, pauses, then closes normally (FIN, unread data left: the kernel resets). */
function stopMidTransfer(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let got = 0;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, 3000);
    socket.on('connect', () => socket.write(tcpGet(BIG)));
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got > 65536) {
        socket.pause();
        setTimeout(done, 150);
      }
    });
    socket.on('error', done);
  });
}

export const ej11: FuzzTarget = {
  name: 'ej11',
  title: 'ej11 file server (reliable UDP and TCP)',
  checkAttempts: 3,
  fdSlack: 8,
  async setup(env) {
    await writeFile(path.join(env.dir, SMALL), SMALL_TEXT);
    await writeFile(path.join(env.dir, BIG), Buffer.alloc(BIG_SIZE, 0x5a));
    const { proc, port } = await startWatched(env, 'ej11', 'server', (p) => ['--host', HOST, '--port', String(p), '--dir', env.dir, '--timeout', '2'], 'udp');
    return { proc, port, state: undefined };
  },
  generate: mixed('ej11', [
    { weight: 2, make: (rng, id) => datagramCaseFor(rng, id, { label: 'udp', port: (r) => r.port, valid: validUdp, max: 1424 + 64 }) },
    { weight: 1, make: tokenCase },
    { weight: 2, make: (rng, id) => streamCaseFor(rng, id, { label: 'tcp', port: (r) => r.port, valid: validTcp, lengthFields: () => [1], lengthWidth: 2 }) },
    {
      weight: 1,
      make: (rng, id) =>
        streamCaseFor(rng, id, {
          label: 'tcp-put',
          port: (r) => r.port,
          valid: validTcp,
          // PUT's u64 size: its low word set hostile, high word zero (a declared length of 0xFFFFFFFF).
          lengthFields: (pdu) => (pdu[0] === 2 && pdu.length >= 3 ? [3 + ((pdu[1] ?? 0) << 8 | (pdu[2] ?? 0)) + 4] : []),
        }),
    },
  ]),
  fixed: [
    udpFixed('ej11:issue-17-euro', '"../" followed by 465 × "€"', utf8(`../${'€'.repeat(465)}`)),
    udpFixed('ej11:issue-17-nul', '700 NUL bytes', new Uint8Array(700)),
    tcpLeak('ej11:issue-19-reset', 'reset'),
    tcpLeak('ej11:issue-19-stall', 'stall'),
    tcpLeak('ej11:issue-19-stop-reading', 'stop'),
  ],
  async check(running: Running, attempt) {
    // TCP: the whole small file and its SHA-256.
    const want = Buffer.from(SMALL_TEXT);
    const total = 1 + 8 + want.length + 32;
    const got = await tcpRequest(HOST, running.port, tcpGet(SMALL), (b) => b.length >= total || (b[0] === 1 && b.length >= 3 && b.length >= 3 + b.readUInt16BE(1)));
    if (got[0] !== 0) throw new Error(`TCP GET ${SMALL}: status ${got[0]} ${got.subarray(3, 200).toString('utf8')}`);
    if (Number(got.readBigUInt64BE(1)) !== want.length || !got.subarray(9, 9 + want.length).equals(want)) throw new Error(`TCP GET ${SMALL}: wrong size or bytes`);
    if (!got.subarray(9 + want.length, total).equals(createHash('sha256').update(want).digest())) throw new Error(`TCP GET ${SMALL}: wrong SHA-256`);
    // UDP: a GET is answered by OK with the file's size; then a RESET ends the transfer.
    const connection = (Math.random() * 0xffffffff) >>> 0;
    const replies = await udpWithToken(running.port, getPacket(utf8(SMALL), connection), (token) => [tokenGet(token, utf8(SMALL), connection)], { quietMs: 400 });
    const ok = replies.find((b) => b.length >= 24 && b.readUInt32BE(16) === connection && b[12] !== RETRY);
    if (!ok) throw new Error(`UDP GET ${SMALL}: no answer within 2.5 s (attempt ${attempt + 1}; received ${replies.map((b) => `type ${b[12]}`).join(', ') || 'nothing'})`);
    if (ok[12] !== 3 || ok.length < 32 || Number(ok.readBigUInt64BE(24)) !== want.length) throw new Error(`UDP GET ${SMALL}: expected OK (type 3) with size ${want.length}, received type ${ok[12]} ${ok.subarray(24, 100).toString('latin1')}`);
    await datagramCase(HOST, running.port, [packet({ type: 8, connection })], { quietMs: 50, timeoutMs: 300 });
  },
};
