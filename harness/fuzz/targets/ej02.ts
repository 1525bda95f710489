/** ej02: the time-zone protocol over UDP and the daytime port over TCP (one process). @module */
import { datagramCaseFor, mixed, streamCaseFor } from '../cases.ts';
import { streamCase, tcpRequest, udpRequest } from '../net.ts';
import type { Rng } from '../prng.ts';
import type { FixedCase, FuzzTarget } from '../types.ts';
import { HOST, startWatched } from './common.ts';

const ZONES = ['', 'UTC', 'Europe/Madrid', 'America/Argentina/Buenos_Aires', 'UTC-03:00', '+05:45', 'Asia/Kathmandu', 'Nowhere/Atlantis'];

/** A 56-byte request (README: magic "TZ", version 1, kind 1, nonce, 48-byte NUL-padded zone). */
export function tzRequest(zone: string, nonce: number): Uint8Array {
  const out = new Uint8Array(56);
  const view = new DataView(out.buffer);
  view.setUint16(0, 0x545a);
  out[2] = 1;
  out[3] = 1;
  view.setUint32(4, nonce >>> 0);
  out.set(new TextEncoder().encode(zone).subarray(0, 48), 8);
  return out;
}

const validTz = (rng: Rng) => tzRequest(rng.pick(ZONES), rng.int(0, 0xffffffff));

/** Issue 11 #20: clients that send one byte to the daytime port, read the line and close. */
const issue20: FixedCase = {
  id: 'ej02:issue-20-tcp-one-byte',
  finding: 'issue 11 #20',
  kind: 'fixed',
  detail: 'tcp: 40 clients each connect to the daytime port, send 1 byte ("x"), read the line and close',
  async run(running) {
    for (let i = 0; i < 40; i++) await streamCase(HOST, running.port, new Uint8Array([0x78]), { mode: 'end', quietMs: 300, timeoutMs: 2000 });
  },
};

export const ej02: FuzzTarget = {
  name: 'ej02',
  title: 'ej02 daytime (UDP and TCP) and time-zone protocol (UDP)',
  checkAttempts: 3,
  async setup(env) {
    const { proc, port } = await startWatched(env, 'ej02', 'server', (p) => ['--host', HOST, '--port', String(p), '--no-ntp', '--tz', 'UTC'], 'udp');
    return { proc, port, state: undefined };
  },
  generate: mixed('ej02', [
    { weight: 3, make: (rng, id) => datagramCaseFor(rng, id, { label: 'udp', port: (r) => r.port, valid: validTz }) },
    { weight: 1, make: (rng, id) => streamCaseFor(rng, id, { label: 'tcp', port: (r) => r.port, valid: (g) => g.bytes(g.int(0, 16)), timeoutMs: 2000 }) },
  ]),
  fixed: [issue20],
  async check(running, attempt) {
    const nonce = (Math.random() * 0xffffffff) >>> 0;
    const reply = await udpRequest(HOST, running.port, tzRequest('UTC', nonce), (b) => b.length === 104 && b.readUInt32BE(4) === nonce);
    if (!reply) throw new Error(`time-zone request (UTC, nonce ${nonce}): no 104-byte response within 2 s (attempt ${attempt + 1})`);
    if (reply.readUInt16BE(0) !== 0x545a || reply[3] !== 2 || reply[8] !== 0) throw new Error(`time-zone response: magic/kind/status ${reply.subarray(0, 9).toString('hex')}, expected 545a..02 and status 0`);
    const ms = Number(reply.readBigUInt64BE(12));
    if (Math.abs(ms - Date.now()) > 10_000) throw new Error(`time-zone response: unix_ms ${ms} is ${Math.round((ms - Date.now()) / 1000)} s from now`);
    const line = await tcpRequest(HOST, running.port, '', (b, ended) => ended && b.length > 0, 5000);
    if (!/\d/.test(line.toString('utf8')) || !line.toString('utf8').endsWith('\n')) throw new Error(`daytime over TCP: expected a line with the date, received ${JSON.stringify(line.toString('utf8').slice(0, 80))}`);
  },
};
