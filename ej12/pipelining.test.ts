/**
 * A client that pipelines PDUs: the master answers them in order, stops the
 * work of a connection that went away, and answers a client that has shut
 * down its sending side (what `nc -N` and `shutdown(SHUT_WR)` do).
 *
 * Found by the fuzz campaign (seed 1, ej12-master batch 15): connections
 * that had each sent thousands of PDUs in a few writes, and closed, kept the
 * master busy for seconds after they were gone (all of them queued behind
 * one lock), so a new client's `ls` went unanswered for over 5 s.
 */
import t from 'tap';
import { mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listenTcp } from '../lib/server.ts';
import { createMaster } from './master.ts';
import { Message, messageReader, message, REMOTO, dataText } from './protocol.ts';

const encode = (argv: string[]) => Message.encode(message(REMOTO, '', JSON.stringify(argv)));

async function startMaster(t: Tap.Test) {
  const root = await realpath(await mkdtemp(path.join(tmpdir(), 'ej12-pipe-')));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const master = createMaster({ root });
  const { port } = await listenTcp(master.server, '127.0.0.1', 0);
  t.teardown(() => master.close());
  return { root, port };
}

/** Connects, writes `bytes`, and collects the answers until `count` arrived or the socket closed. */
function exchange(port: number, bytes: Uint8Array, { count, halfClose = false }: { count: number; halfClose?: boolean }): Promise<Message[]> {
  return new Promise((resolve, reject) => {
    const answers: Message[] = [];
    const reader = messageReader();
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(bytes);
      if (halfClose) socket.end();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(answers);
    }, 10_000);
    socket.on('data', (chunk) => {
      answers.push(...reader.push(chunk));
      if (answers.length >= count) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answers);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answers);
    });
    socket.on('error', reject);
  });
}

t.test('pipelined PDUs are answered one by one, in order', async (t) => {
  const { port } = await startMaster(t);
  const argvs = [['mkdir', 'a'], ['ls', ''], ['cd', 'a'], ['mkdir', 'a'], ['ls', '']];
  const answers = await exchange(port, Buffer.concat(argvs.map(encode)), { count: argvs.length });
  t.same(answers.map((a) => [a.action, dataText(a)]), [
    [REMOTO, ''],
    [REMOTO, 'a/\n'],
    [REMOTO, ''],
    [6, '/a: File exists'],
    [REMOTO, 'a/\n'],
  ]);
});

t.test('a client that sends its command and shuts down its sending side still gets the answer', async (t) => {
  const { port } = await startMaster(t);
  const answers = await exchange(port, encode(['mkdir', 'x']), { count: 1, halfClose: true });
  t.same(answers.map((a) => [a.action, dataText(a)]), [[REMOTO, '']], 'the answer came before the master closed');
});

t.test('the work a connection queued stops when it goes away', async (t) => {
  const { root, port } = await startMaster(t);
  const n = 5_000;
  const burst = Buffer.concat(Array.from({ length: n }, (_, i) => encode(['mkdir', `d${i}`])));
  // Send the whole burst, wait for the first answer, then reset the connection.
  await new Promise<void>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(burst));
    socket.once('data', () => {
      socket.resetAndDestroy();
      resolve();
    });
    socket.on('error', () => resolve());
  });
  // Another client is answered, and once the master has nothing left to do, count what it made.
  const after = await exchange(port, encode(['cd', '']), { count: 1 });
  t.same(after.map((a) => [a.action, dataText(a)]), [[REMOTO, '']], 'another client is answered');
  let made = -1;
  const deadline = Date.now() + 60_000;
  for (let stable = 0; stable < 5 && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const now = (await readdir(root)).length;
    stable = now === made ? stable + 1 : 0;
    made = now;
  }
  t.ok(made < n / 2, `the master stopped the work of the connection that went away (made ${made} of ${n} directories)`);
});
