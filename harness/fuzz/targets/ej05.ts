/** ej05: the remote shell server's sealed channel (handshake frames, then sealed frames). @module */
import net from 'node:net';
import path from 'node:path';
import nacl from 'tweetnacl';
import { clientHello, encodeFrame, secureClient, type SecureSocket } from '../../../lib/secure-channel.ts';
import { streamCaseFor } from '../cases.ts';
import { mutate, preview } from '../mutate.ts';
import type { Rng } from '../prng.ts';
import type { Case, FuzzTarget } from '../types.ts';
import { HOST, startWatched } from './common.ts';

const USER = 'fuzz';
const PASSWORD = 'fuzz-campaign-password';

function validHello(rng: Rng): Uint8Array {
  // A ClientHello frame from the seeded generator (a fixed key pair per seed: deterministic).
  const seed = rng.bytes(32);
  const ephemeral = nacl.box.keyPair.fromSecretKey(seed);
  return encodeFrame(clientHello(ephemeral).hello);
}

function connectSecure(port: number): Promise<SecureSocket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    socket.once('error', reject);
    socket.once('connect', () => secureClient(socket, () => {}, { timeoutMs: 5000 }).then(resolve, reject));
  });
}

/** After a real handshake: raw mutated bytes where the sealed LOGIN should be. */
function afterHandshake(rng: Rng, id: string): Case {
  const sealedLike = encodeFrame(new Uint8Array(8 + 16 + rng.int(1, 200)));
  const m = mutate(rng, sealedLike, { max: 256 * 1024, lengthFields: [0] });
  return {
    id,
    kind: `sealed-${m.kind}`,
    detail: `after a real handshake, instead of a sealed frame: ${m.kind} ${preview(m.bytes)}`,
    async run(running) {
      const channel = await connectSecure(running.port).catch(() => undefined);
      if (!channel) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 1500);
        function done() {
          clearTimeout(timer);
          channel?.socket.destroy();
          resolve();
        }
        channel.socket.write(m.bytes, () => setTimeout(done, 300));
        channel.socket.once('close', done);
      });
    },
  };
}

export const ej05: FuzzTarget = {
  name: 'ej05',
  title: 'ej05 remote shell server (sealed channel)',
  async setup(env) {
    const keyFile = path.join(env.dir, 'host_key');
    const users = path.join(env.dir, 'users');
    const add = env.start('ej05 add-user', 'ej05', 'server', ['--host-key', keyFile, '--users', users, '--add-user', USER], { stdin: true });
    add.write(`${PASSWORD}\n`);
    const exit = await add.waitForExit(60_000);
    if (exit.code !== 0) throw new Error(`ej05 --add-user failed: ${add.stderr.slice(-300)}`);
    const { proc, port } = await startWatched(env, 'ej05', 'server', (p) => [
      '--host', HOST, '--port', String(p), '--host-key', keyFile, '--users', users, '--workdir', env.dir,
      '--fail-delay', '0.05', '--max-failures', '1000000',
    ]);
    return { proc, port, state: undefined };
  },
  generate(rng, index) {
    const id = `ej05#${index}`;
    if (rng.chance(0.3)) return afterHandshake(rng, id);
    return streamCaseFor(rng, id, { label: 'tcp', port: (r) => r.port, valid: validHello, lengthFields: () => [0] });
  },
  async check(running) {
    const channel = await connectSecure(running.port);
    try {
      const want = `ok-${Math.random().toString(36).slice(2, 10)}`;
      const out = await new Promise<string>((resolve, reject) => {
        let stdout = '';
        const timer = setTimeout(() => reject(new Error(`login and "echo ${want}": no EXIT within 10 s (stdout so far ${JSON.stringify(stdout)})`)), 10_000);
        channel.on('message', (message: Uint8Array) => {
          const type = message[0];
          const payload = Buffer.from(message.subarray(1)).toString('utf8');
          if (type === 0x11) channel.send(Uint8Array.of(0x02, ...Buffer.from(`echo ${want}`)));
          else if (type === 0x12 || type === 0x16 || type === 0x17) {
            clearTimeout(timer);
            reject(new Error(`login as ${USER}: the server answered 0x${(type ?? 0).toString(16)} ${payload.slice(0, 200)}`));
          } else if (type === 0x13) stdout += payload;
          else if (type === 0x15) {
            clearTimeout(timer);
            resolve(stdout);
          }
        });
        channel.on('close', (error?: Error) => {
          clearTimeout(timer);
          reject(new Error(`channel closed before EXIT${error ? `: ${error.message}` : ''}`));
        });
        channel.send(Uint8Array.from(Buffer.concat([Buffer.from([0x01]), Buffer.from(JSON.stringify({ user: USER, password: PASSWORD }))])));
      });
      if (out.trim() !== want) throw new Error(`"echo ${want}" printed ${JSON.stringify(out)}`);
    } finally {
      channel.socket.destroy();
    }
  },
};
