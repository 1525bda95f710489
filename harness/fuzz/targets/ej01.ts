/** ej01: the TCP and UDP echo servers (RFC 862). @module */
import { datagramCaseFor, streamCaseFor } from '../cases.ts';
import { tcpRequest, udpRequest } from '../net.ts';
import type { FuzzTarget } from '../types.ts';
import { HOST, startWatched, token, utf8 } from './common.ts';

export const ej01tcp: FuzzTarget = {
  name: 'ej01-tcp',
  title: 'ej01 TCP echo server',
  async setup(env) {
    const { proc, port } = await startWatched(env, 'ej01', 'tcp-server', (p) => ['--host', HOST, '--port', String(p), '--idle-timeout', '10']);
    return { proc, port, state: undefined };
  },
  generate: (rng, index) => streamCaseFor(rng, `ej01-tcp#${index}`, { label: 'tcp', port: (r) => r.port, valid: (g) => utf8(`hello ${token(g, g.int(1, 40))}\n`) }),
  async check(running) {
    const text = `fuzz check ${token(undefined, 12)}\n`;
    const got = await tcpRequest(HOST, running.port, text, (b) => b.length >= text.length);
    if (got.toString('latin1') !== text) throw new Error(`echo: sent ${JSON.stringify(text)}, received ${JSON.stringify(got.toString('latin1').slice(0, 80))}`);
  },
};

export const ej01udp: FuzzTarget = {
  name: 'ej01-udp',
  title: 'ej01 UDP echo server',
  checkAttempts: 3,
  async setup(env) {
    const { proc, port } = await startWatched(env, 'ej01', 'udp-server', (p) => ['--host', HOST, '--port', String(p)], 'udp');
    return { proc, port, state: undefined };
  },
  generate: (rng, index) => datagramCaseFor(rng, `ej01-udp#${index}`, { label: 'udp', port: (r) => r.port, valid: (g) => utf8(`hello ${token(g, g.int(1, 40))}`) }),
  async check(running) {
    const text = utf8(`fuzz check ${token(undefined, 12)}`);
    const got = await udpRequest(HOST, running.port, text, () => true);
    if (!got) throw new Error('echo: no datagram back within 2 s');
    if (!got.equals(Buffer.from(text))) throw new Error(`echo: sent ${Buffer.from(text).toString()}, received ${got.subarray(0, 80).toString('latin1')}`);
  },
};
