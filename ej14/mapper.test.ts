import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Child, tsx } from '../lib/fixtures/spawn.ts';
import { type Frame, frame, MAX_REASON_BYTES, Outcome, readFrames, Type } from './protocol.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const host = '127.0.0.1';

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, host, resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * A raw fake reducer: each connection that OFFERs gets `answer(n)`, the n-th
 * (0-based) connection's reply frames, written as soon as the OFFER is read
 * (a GRANT is followed by STORED once the TABLE comes).
 */
async function fakeReducer(t: Test, answer: (n: number, offer: Frame) => Uint8Array): Promise<{ port: number; offers: number }> {
  const state = { port: 0, offers: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    readFrames(
      socket,
      (f) => {
        if (f.type === Type.OFFER) socket.write(answer(state.offers++, f));
        else if (f.type === Type.TABLE) socket.end(frame(Type.STORED, f.job, f.piece));
      },
      () => {},
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  state.port = (server.address() as net.AddressInfo).port;
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return state;
}

/** Plays the master: one ASSIGN on a new connection, resolves with the DONE frame (undefined if the mapper closed without one). */
function assign(port: number, job: Uint8Array, piece: number, text: string): Promise<Frame | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => socket.write(frame(Type.ASSIGN, job, piece, new TextEncoder().encode(text))));
    socket.setTimeout(20_000, () => socket.destroy());
    socket.on('error', () => {});
    socket.on('close', () => resolve(undefined));
    readFrames(
      socket,
      (f) => {
        if (f.type === Type.DONE) {
          resolve(f);
          socket.destroy();
        }
      },
      () => socket.destroy(),
    );
  });
}

t.test('a mapper survives a 200 kB DENY or ERROR reason from the reducer, reports it bounded, and goes on', async (t) => {
  const huge = 'x'.repeat(200 * 1024);
  const reducer = await fakeReducer(t, (n, offer) => {
    const reason = new TextEncoder().encode(`${n}:${huge}`);
    if (n === 0) return frame(Type.DENY, offer.job, offer.piece, reason);
    if (n === 1) return frame(Type.ERROR, offer.job, offer.piece, reason);
    return frame(Type.GRANT, offer.job, offer.piece);
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'ej14-mapper-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  await writeFile(path.join(dir, 'config.ini'), `[reducer]\nhost = ${host}\nport = ${reducer.port}\n\n[mapper1]\nhost = ${host}\nport = ${port}\n`);
  const mapper = new Child(tsx(path.join(HERE, 'mapper.ts'), '--config', path.join(dir, 'config.ini'), host, String(port)));
  t.teardown(() => mapper.kill());
  await mapper.ready();

  const job = new Uint8Array(16).fill(3);
  const denied = await assign(port, job, 1, 'uno dos tres');
  t.equal(denied?.payload[0], Outcome.DUPLICATE, `a 200 kB DENY: DONE says "duplicate" (mapper stderr: ${mapper.stderr.slice(-300)})`);
  t.ok(denied && denied.payload.length - 1 <= MAX_REASON_BYTES, `and its reason is cut to at most ${MAX_REASON_BYTES} bytes (${(denied?.payload.length ?? 1) - 1})`);
  const refused = await assign(port, job, 2, 'cuatro cinco');
  t.equal(refused?.payload[0], Outcome.FAILED, 'a 200 kB ERROR: DONE says "failed"');
  t.ok(refused && refused.payload.length - 1 <= MAX_REASON_BYTES, `and its reason is cut too (${(refused?.payload.length ?? 1) - 1} bytes)`);
  const stored = await assign(port, job, 3, 'seis siete');
  t.equal(stored?.payload[0], Outcome.STORED, 'the next piece is counted and stored as usual');
  t.equal(reducer.offers, 3, 'three offers reached the reducer');
  t.equal(mapper.process.exitCode, null, 'the mapper is still running');
  t.notMatch(mapper.stderr, /\n\s+at .*:\d+:\d+/, 'and printed no stack trace');
  t.ok(mapper.stderr.length < 20_000, `its log carries no 200 kB line (${mapper.stderr.length} bytes in all)`);
});
