/**
 * ej15: a node of the document index, on loopback: UDP discovery (JSON
 * datagrams) and the TCP list port. Its hellos go to 127.255.255.255 on its
 * own port only (--discovery-ports), so they stay on loopback and reach no
 * other node.
 *
 * @module
 */
import { writeFile, mkdir } from 'node:fs/promises';
import dgram from 'node:dgram';
import path from 'node:path';
import { datagramCaseFor, mixed, streamCaseFor } from '../cases.ts';
import { streamCase, tcpRequest } from '../net.ts';
import type { Rng } from '../prng.ts';
import type { FixedCase, FuzzTarget } from '../types.ts';
import { HOST, startWatched, utf8 } from './common.ts';

const DOC = 'fuzz-doc.txt';

const hex16 = (rng: Rng) => Buffer.from(rng.bytes(8)).toString('hex');

function datagram(rng: Rng): Uint8Array {
  const type = rng.pick(['hello', 'hello', 'bye', 'query', 'list', 'other']);
  const message: Record<string, unknown> = { v: rng.chance(0.9) ? 1 : rng.pick([0, 2, '1', null]), type, id: rng.chance(0.9) ? hex16(rng) : rng.pick(['', 'XYZ', 42]), port: rng.pick([1, 9, 65535, 0, -1, 70000, 'x']) };
  if (type === 'hello') Object.assign(message, { gen: rng.pick([0, 1, 2 ** 53, -1, 1.5]), count: rng.pick([0, 3, 1e9]) });
  return utf8(JSON.stringify(message));
}

const issue21: FixedCase = {
  id: 'ej15:issue-21-list-3-bytes',
  finding: 'issue 11 #21',
  kind: 'fixed',
  detail: 'tcp list port: 40 clients each send 3 bytes ("abc"), read the list and close',
  async run(running) {
    for (let i = 0; i < 40; i++) await streamCase(HOST, running.port, utf8('abc'), { mode: 'end', quietMs: 300, timeoutMs: 2000 });
  },
};

/** Sends a query from a socket of our own and waits for the node's unicast hello. */
function query(port: number, timeoutMs = 2000): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const done = (v: Record<string, unknown> | undefined) => {
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // closed
      }
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.on('message', (msg) => {
      try {
        const m = JSON.parse(msg.toString('utf8')) as Record<string, unknown>;
        if (m.type === 'hello') done(m);
      } catch {
        // not JSON: not the answer
      }
    });
    socket.bind(0, HOST, () => {
      const id = Buffer.from(Array.from({ length: 8 }, () => Math.floor(Math.random() * 256))).toString('hex');
      socket.send(JSON.stringify({ v: 1, type: 'query', id, port: socket.address().port }), port, HOST);
    });
  });
}

export const ej15: FuzzTarget = {
  name: 'ej15',
  title: 'ej15 document-index node (UDP discovery and TCP list port, loopback)',
  checkAttempts: 3,
  async setup(env) {
    const folder = path.join(env.dir, 'docs');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, DOC), 'a document\n');
    const { proc, port } = await startWatched(env, 'ej15', 'node', (p) => ['--host', HOST, '--port', String(p), '--discovery-ports', String(p), '--broadcast', '127.255.255.255', '--folder', folder, '--interval', '2']);
    return { proc, port, state: undefined };
  },
  generate: mixed('ej15', [
    { weight: 2, make: (rng, id) => datagramCaseFor(rng, id, { label: 'udp', port: (r) => r.port, valid: datagram, max: 4096 }) },
    { weight: 1, make: (rng, id) => streamCaseFor(rng, id, { label: 'tcp-list', port: (r) => r.port, valid: (g) => g.bytes(g.int(0, 8)), timeoutMs: 2000 }) },
  ]),
  fixed: [issue21],
  async check(running, attempt) {
    const raw = await tcpRequest(HOST, running.port, '', (_b, ended) => ended, 5000);
    let list: { type?: string; docs?: unknown };
    try {
      list = JSON.parse(raw.toString('utf8')) as typeof list;
    } catch {
      throw new Error(`list port: not one JSON line: ${JSON.stringify(raw.subarray(0, 120).toString('utf8'))}`);
    }
    if (list.type !== 'list' || !Array.isArray(list.docs) || !list.docs.includes(DOC)) throw new Error(`list port: expected a list with ${DOC}, received ${JSON.stringify(list).slice(0, 200)}`);
    const hello = await query(running.port);
    if (!hello) throw new Error(`query: no hello within 2 s (attempt ${attempt + 1})`);
    if (hello.port !== running.port || hello.count !== 1) throw new Error(`query: hello ${JSON.stringify(hello)}, expected port ${running.port} and count 1`);
  },
};
