import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Child, deno, hasDeno, tsx } from '../lib/fixtures/spawn.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const host = '127.0.0.1';

/** The process that runs the script: tsx starts it as a child of its own, so the deepest descendant naming it. */
async function scriptPid(pid: number, script: string): Promise<number> {
  const children = async (p: number) =>
    (await readFile(`/proc/${p}/task/${p}/children`, 'utf8').catch(() => ''))
      .split(' ')
      .filter(Boolean)
      .map(Number);
  let found = pid;
  for (let queue = [pid]; queue.length > 0; ) {
    const p = queue.shift() as number;
    const cmdline = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(script)) found = p;
    queue.push(...(await children(p)));
  }
  return found;
}

const openFds = async (pid: number) => (await readdir(`/proc/${pid}/fd`)).length;

/** A client that sends one byte, reads the daytime line, and then neither closes nor sends anything. */
function lingeringClient(port: number): Promise<{ socket: net.Socket; line: string; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true }, () => socket.write('x'));
    let line = '';
    let closed!: () => void;
    const ended = new Promise<void>((r) => (closed = r));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      line += chunk.toString('utf8');
      if (line.endsWith('\r\n')) resolve({ socket, line, ended });
    });
    socket.once('end', () => closed());
    socket.once('close', () => closed());
    socket.setTimeout(20_000, () => reject(new Error('no daytime line within 20 s')));
  });
}

for (const [runtime, command] of [['tsx', tsx], ['deno', deno]] as const) {
  t.test(`the TCP daytime server (${runtime}) releases every connection, also of clients that send a byte and never close`, { skip: process.platform !== 'linux' ? 'counts /proc/PID/fd' : runtime === 'deno' && !hasDeno ? 'no deno' : false }, async (t) => {
    const child = new Child(command(path.join(HERE, 'server.ts'), '--port', '0', '--no-ntp', '-q', '--tz', 'UTC', '--locale', 'en-US'));
    t.teardown(() => child.kill());
    const port = Number((await child.waitFor(/:(\d+) \(tcp\)$/m))[1]);
    const pid = await scriptPid(child.process.pid as number, 'ej02/server.ts');
    const before = await openFds(pid);

    const clients = 100;
    const sockets: net.Socket[] = [];
    t.teardown(() => {
      for (const socket of sockets) socket.destroy();
    });
    const answers = [];
    for (let i = 0; i < clients; i += 20) {
      answers.push(...(await Promise.all(Array.from({ length: Math.min(20, clients - i) }, () => lingeringClient(port)))));
      sockets.push(...answers.slice(-20).map((a) => a.socket));
    }
    t.ok(answers.every((a) => /\d:\d\d:\d\d/.test(a.line)), `each of ${clients} clients got the daytime line`);
    const during = await openFds(pid);

    // The clients stay connected and silent: the server must end and let go of each connection by itself.
    const until = Date.now() + 15_000;
    let after = await openFds(pid);
    while (after > before + 5 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      after = await openFds(pid);
    }
    t.ok(after <= before + 5, `descriptors of the server: ${before} before, ${during} with ${clients} clients connected, ${after} after (bound: ${before + 5} within 15 s)`);
    const ended = await Promise.race([Promise.all(answers.map((a) => a.ended)).then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 5000))]);
    t.ok(ended, 'every client saw the server close its connection');
    const again = await lingeringClient(port);
    sockets.push(again.socket);
    t.match(again.line, /\d:\d\d:\d\d/, 'and the server still answers a new client');
  });
}
