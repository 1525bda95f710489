/** ej09 (the chat server, a line protocol) and ej10 (Cristian's time server, 16-byte PDUs over UDP). @module */
import { datagramCaseFor, streamCaseFor } from '../cases.ts';
import { udpRequest } from '../net.ts';
import type { Rng } from '../prng.ts';
import type { FuzzTarget } from '../types.ts';
import { HOST, LineClient, startWatched, token, utf8 } from './common.ts';

function chatScript(rng: Rng): Uint8Array {
  const lines = [`NAME ${token(rng, rng.int(1, 12))}`];
  for (let i = rng.int(0, 4); i > 0; i--) lines.push(`MSG ${rng.pick(['hola', 'qué tal \\n dos líneas', 'a\\\\b', token(rng, rng.int(1, 200))])}`);
  if (rng.chance(0.5)) lines.push('QUIT');
  return utf8(lines.map((l) => `${l}${rng.chance(0.2) ? '\r' : ''}\n`).join(''));
}

export const ej09: FuzzTarget = {
  name: 'ej09',
  title: 'ej09 chat server',
  async setup(env) {
    const { proc, port } = await startWatched(env, 'ej09', 'server', (p) => ['--host', HOST, '--port', String(p)]);
    return { proc, port, state: undefined };
  },
  generate: (rng, index) => streamCaseFor(rng, `ej09#${index}`, { label: 'tcp', port: (r) => r.port, valid: chatScript }),
  async check(running) {
    const a = await LineClient.connect(running.port);
    const b = await LineClient.connect(running.port).catch((error) => {
      a.close();
      throw error;
    });
    try {
      const na = `chkA${token(undefined, 6)}`;
      const nb = `chkB${token(undefined, 6)}`;
      a.write(`NAME ${na}\n`);
      await a.line(/^WAIT$/);
      b.write(`NAME ${nb}\n`);
      const pa = await a.line(/^PAIRED /);
      const pb = await b.line(/^PAIRED /);
      if (pa !== `PAIRED ${nb}` || pb !== `PAIRED ${na}`) throw new Error(`pairing: ${na} got "${pa}", ${nb} got "${pb}" (each expected the other)`);
      const text = `hola ${token(undefined, 10)}`;
      a.write(`MSG ${text}\n`);
      const got = await b.line(/^MSG /);
      if (got !== `MSG ${text}`) throw new Error(`relay: sent "MSG ${text}", partner received "${got}"`);
      a.write('QUIT\n');
      b.write('QUIT\n');
    } finally {
      a.close();
      b.close();
    }
  },
};

/** A 16-byte request: magic "CR", version 1, kind 1, id, 8 reserved zero bytes. */
export function timeRequest(id: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint16(0, 0x4352);
  out[2] = 1;
  out[3] = 1;
  view.setUint32(4, id >>> 0);
  return out;
}

export const ej10: FuzzTarget = {
  name: 'ej10',
  title: 'ej10 UTC time server (UDP)',
  checkAttempts: 3,
  async setup(env) {
    const { proc, port } = await startWatched(env, 'ej10', 'server', (p) => ['--host', HOST, '--port', String(p)], 'udp');
    return { proc, port, state: undefined };
  },
  generate: (rng, index) => datagramCaseFor(rng, `ej10#${index}`, { label: 'udp', port: (r) => r.port, valid: (g) => timeRequest(g.int(0, 0xffffffff)) }),
  async check(running, attempt) {
    const id = (Math.random() * 0xffffffff) >>> 0;
    const reply = await udpRequest(HOST, running.port, timeRequest(id), (b) => b.length === 16 && b.readUInt32BE(4) === id);
    if (!reply) throw new Error(`time request ${id}: no 16-byte reply within 2 s (attempt ${attempt + 1})`);
    if (reply.readUInt16BE(0) !== 0x4352 || reply[2] !== 1 || reply[3] !== 2) throw new Error(`time reply: header ${reply.subarray(0, 4).toString('hex')}, expected 43520102`);
    const us = Number(reply.readBigUInt64BE(8));
    if (Math.abs(us / 1000 - Date.now()) > 10_000) throw new Error(`time reply: server_time ${us} µs is ${Math.round((us / 1000 - Date.now()) / 1000)} s from now`);
  },
};
