/**
 * Two figures behind ej05's README: how fast the sealed channel carries bytes
 * over loopback (tweetnacl is pure JavaScript), and how long one password
 * check takes for a known and an unknown user (they should not differ, or a
 * stopwatch would tell which user names exist).
 *
 * ```sh
 * npx tsx ej05/bench-channel.ts            # or: deno run -A ej05/bench-channel.ts
 * npx tsx ej05/bench-channel.ts --json
 * ```
 *
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { defineCommand, parsePositive } from '../lib/cli.ts';
import { isMain, runMain } from '../lib/main.ts';
import { MAX_PLAINTEXT, secureClient, secureServer } from '../lib/secure-channel.ts';
import { addUser, verifyPassword } from './keys.ts';

/** Seconds to carry `bytes` from a client to a server through the channel on loopback. */
export async function channelSeconds(bytes: number): Promise<number> {
  const hostKey = nacl.sign.keyPair();
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const received = new Promise<number>((resolve) => {
      server.once('connection', (socket) => {
        void secureServer(socket, hostKey).then((channel) => {
          let got = 0;
          const started = performance.now();
          channel.on('message', (message) => {
            got += message.length;
            if (got >= bytes) {
              resolve((performance.now() - started) / 1000);
              channel.socket.destroy();
            }
          });
        });
      });
    });
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const channel = await secureClient(socket, () => {});
    const chunk = new Uint8Array(MAX_PLAINTEXT);
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!channel.send(chunk)) return void channel.once('drain', pump);
      }
    };
    pump();
    const seconds = await received;
    socket.destroy();
    return seconds;
  } finally {
    server.close();
  }
}

/** Median milliseconds of `rounds` password checks for a known and an unknown user, interleaved at random. */
export async function loginMillis(rounds: number): Promise<{ known: number; unknown: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej05-bench-'));
  try {
    const users = path.join(dir, 'users');
    await addUser(users, 'ana', 'clave');
    const times: Record<'known' | 'unknown', number[]> = { known: [], unknown: [] };
    for (let i = 0; i < rounds; i++) {
      const order = Math.random() < 0.5 ? (['known', 'unknown'] as const) : (['unknown', 'known'] as const);
      for (const which of order) {
        const started = performance.now();
        await verifyPassword(users, which === 'known' ? 'ana' : 'nadie', 'wrong');
        times[which].push(performance.now() - started);
      }
    }
    const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
    return { known: median(times.known), unknown: median(times.unknown) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const command = defineCommand({
  name: 'bench-channel.ts',
  summary: "Measures ej05's sealed channel throughput and password-check time.",
  options: {
    mib: { type: 'string', default: '64', metavar: 'MIB', help: 'mebibytes to send through the channel' },
    rounds: { type: 'string', default: '30', metavar: 'N', help: 'password checks per kind of user' },
    json: { type: 'boolean', help: 'print the figures as JSON' },
  },
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const mib = parsePositive(opts.mib, 'mib', { integer: true });
  const rounds = parsePositive(opts.rounds, 'rounds', { integer: true });
  const seconds = await channelSeconds(mib * 1024 * 1024);
  const login = await loginMillis(rounds);
  const figures = { mib, seconds: Number(seconds.toFixed(3)), mibPerSecond: Number((mib / seconds).toFixed(1)), loginMsKnown: Number(login.known.toFixed(1)), loginMsUnknown: Number(login.unknown.toFixed(1)) };
  if (opts.json) console.log(JSON.stringify(figures));
  else {
    console.log(`sealed channel: ${mib} MiB in ${figures.seconds} s = ${figures.mibPerSecond} MiB/s`);
    console.log(`password check (scrypt N=16384 r=8 p=1), median of ${rounds}: known user ${figures.loginMsKnown} ms, unknown user ${figures.loginMsUnknown} ms`);
  }
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
