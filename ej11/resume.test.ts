/**
 * Ctrl-C during a download, and -c (issue 13): the client keeps what arrived
 * as OUT.part (never under OUT), says how much and how to resume, and `-c`
 * resumes it as wget's does, to a file whose bytes equal the original. The
 * client is one node process (no tsx launcher), so the SIGINT reaches it as
 * a terminal's Ctrl-C would.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startRelay } from '../harness/relay.ts';
import { Child, ROOT } from '../lib/fixtures/spawn.ts';
import { delay, MiB, startServer } from './test-peers.ts';

const TRACE = /\n\s+at /;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function client(...args: string[]): Child {
  return new Child([process.execPath, '--import', 'tsx', path.join(ROOT, 'ej11', 'client.ts'), ...args]);
}

function partSize(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.size ?? 0;
}

/** Waits until `file` holds at least `bytes` (or the child ends, or 60 s pass). */
async function waitForPart(file: string, bytes: number, child: Child): Promise<void> {
  const started = performance.now();
  while (partSize(file) < bytes && child.process.exitCode === null && performance.now() - started < 60_000) await delay(20);
}

function outFolder(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ej11-resume-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('Ctrl-C during a UDP download keeps OUT.part, says how much and how to resume; -c resumes it to the same bytes', async (t) => {
  const data = randomBytes(24 * MiB);
  const s = await startServer(t, { 'big.bin': data });
  // 20 ms each way: the transfer surely runs when the SIGINT comes.
  const relay = await startRelay({ target: { host: '127.0.0.1', port: s.port }, forward: { delayMs: 20 }, backward: { delayMs: 20 } });
  t.teardown(() => relay.close());
  const out = path.join(outFolder(t), 'big.bin');
  const first = client('--get', 'big.bin', '-o', out, '--host', relay.host, '--port', String(relay.port));
  t.teardown(() => first.kill());
  await waitForPart(`${out}.part`, 2 * MiB, first);
  t.ok(partSize(`${out}.part`) >= 2 * MiB, `the download was under way (${partSize(`${out}.part`)} bytes in OUT.part)`);
  first.signal('SIGINT');
  const ended = await first.exited;
  t.equal(ended.code, 130, `exit 130 after Ctrl-C (was ${ended.code ?? ended.signal}; stderr: ${ended.stderr.trim().slice(-300) || 'empty'})`);
  t.notMatch(ended.stderr, TRACE, 'no stack trace');
  const said = /interrupted: kept (\d+) of (\d+) bytes in (\S+)\.part; the same command with -c \(--continue\) resumes it/.exec(ended.stderr);
  t.ok(said, `it says what it kept and how to resume: ${ended.stderr.trim().split('\n').slice(-1)[0]}`);
  t.notOk(existsSync(out), 'nothing under the final name');
  const kept = partSize(`${out}.part`);
  t.equal(Number(said?.[1]), kept, `the count it gave is the .part's size (${kept})`);
  t.ok(kept > 0 && kept < data.length, 'the part is partial');
  t.ok(readFileSync(`${out}.part`).equals(data.subarray(0, kept)), 'the .part is the file\'s first bytes');

  const second = client('--get', 'big.bin', '-o', out, '-c', '--port', String(s.port));
  t.teardown(() => second.kill());
  const resumed = await second.exited;
  t.equal(resumed.code, 0, `-c: exit 0 (stderr: ${resumed.stderr.trim().slice(-300) || 'empty'})`);
  t.match(resumed.stderr, new RegExp(`resuming ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.part at byte ${kept}`), 'it says where it resumes');
  t.match(resumed.stdout, new RegExp(`received big\\.bin over UDP: ${data.length - kept} bytes`), 'only the rest was sent');
  t.equal(existsSync(out) ? sha(readFileSync(out)) : 'no file', sha(data), 'the resumed file\'s SHA-256 is the original\'s');
  t.notOk(existsSync(`${out}.part`), 'the .part is gone');
  t.match(s.child.stderr, new RegExp(`GET big\\.bin from byte ${kept}`), 'the server logged a GET from that byte');
});

t.test('Ctrl-C during a TCP download keeps OUT.part; -c --tcp resumes it to the same bytes', async (t) => {
  const data = randomBytes(4 * MiB);
  // A TCP server that sends the header and the first MiB, and then nothing: the client waits, mid-file.
  const stalled = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      const head = Buffer.alloc(9);
      head.writeBigUInt64BE(BigInt(data.length), 1);
      socket.write(Buffer.concat([head, data.subarray(0, MiB)]));
    });
  });
  await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<net.Socket>();
  stalled.on('connection', (socket) => sockets.add(socket));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => stalled.close(() => resolve()));
  });
  const stalledPort = (stalled.address() as net.AddressInfo).port;
  const out = path.join(outFolder(t), 'big.bin');
  const first = client('--get', 'big.bin', '-o', out, '--tcp', '--port', String(stalledPort), '--timeout', '120');
  t.teardown(() => first.kill());
  await waitForPart(`${out}.part`, MiB, first);
  first.signal('SIGINT');
  const ended = await first.exited;
  t.equal(ended.code, 130, `exit 130 (stderr: ${ended.stderr.trim().slice(-300) || 'empty'})`);
  t.match(ended.stderr, new RegExp(`interrupted: kept ${MiB} of ${data.length} bytes in .*\\.part; the same command with -c \\(--continue\\) resumes it`));
  t.notOk(existsSync(out), 'nothing under the final name');
  t.equal(partSize(`${out}.part`), MiB, 'the part holds what arrived');

  const s = await startServer(t, { 'big.bin': data });
  const resumed = await client('--get', 'big.bin', '-o', out, '-c', '--tcp', '--port', String(s.port)).exited;
  t.equal(resumed.code, 0, `-c --tcp: exit 0 (stderr: ${resumed.stderr.trim().slice(-300) || 'empty'})`);
  t.match(resumed.stdout, new RegExp(`received big\\.bin over TCP: ${data.length - MiB} bytes`), 'only the rest was sent');
  t.equal(existsSync(out) ? sha(readFileSync(out)) : 'no file', sha(data), 'the resumed file\'s SHA-256 is the original\'s');
  t.notOk(existsSync(`${out}.part`), 'the .part is gone');
});

t.test('-c of a part that is not a prefix of the file ends in a SHA-256 mismatch, and the part is dropped', async (t) => {
  const data = randomBytes(300_000);
  const s = await startServer(t, { 'f.bin': data });
  const out = path.join(outFolder(t), 'f.bin');
  writeFileSync(`${out}.part`, randomBytes(1000));
  const ran = await client('--get', 'f.bin', '-o', out, '-c', '--port', String(s.port)).exited;
  t.equal(ran.code, 1, 'exit 1');
  t.match(ran.stderr, /SHA-256 mismatch.*run it again without -c/, ran.stderr.trim());
  t.notOk(existsSync(out), 'no file under the final name');
  t.notOk(existsSync(`${out}.part`), 'the damaged part is removed');
  writeFileSync(`${out}.part`, randomBytes(400_000));
  const longer = await client('--get', 'f.bin', '-o', out, '-c', '--port', String(s.port)).exited;
  t.equal(longer.code, 1, 'a part longer than the file: exit 1');
  t.match(longer.stderr, /cannot resume .* from byte 400000: it has 300000 bytes/, longer.stderr.trim());
  t.equal(partSize(`${out}.part`), 400_000, 'that part is left as it was');
});

t.test('-c against a server without resume support is refused clearly, and the part is left as it was', { skip: !existsSync(path.join(ROOT, '.git')) && 'not a git checkout (the old server comes from its history)' }, async (t) => {
  // The server as it was before -c existed (this project's commit f48e007), with today's node_modules.
  const old = mkdtempSync(path.join(tmpdir(), 'ej11-old-'));
  t.teardown(() => rmSync(old, { recursive: true, force: true }));
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive f48e007 ej11 lib | tar -x -C "${old}"`]);
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(old, 'node_modules'));
  const served = path.join(old, 'served');
  mkdirSync(served);
  const data = randomBytes(200_000);
  writeFileSync(path.join(served, 'f.bin'), data);
  const server = new Child([process.execPath, '--import', 'tsx', path.join(old, 'ej11', 'server.ts'), '--port', '0', '--dir', served]);
  t.teardown(() => server.kill());
  const port = await server.ready();
  const out = path.join(outFolder(t), 'f.bin');
  writeFileSync(`${out}.part`, data.subarray(0, 5000));
  for (const transport of [[], ['--tcp']]) {
    const ran = await client('--get', 'f.bin', '-o', out, '-c', '--port', String(port), ...transport).exited;
    t.equal(ran.code, 1, `${transport.join('') || 'udp'}: exit 1`);
    t.match(ran.stderr, /^client\.ts: the server 127\.0\.0\.1:\d+ cannot resume \(it is older than -c\): run it again without -c to fetch the whole file$/m, ran.stderr.trim());
    t.equal(partSize(`${out}.part`), 5000, 'the part is left as it was');
  }
  const whole = await client('--get', 'f.bin', '-o', out, '--port', String(port)).exited;
  t.equal(whole.code, 0, 'without -c the old server serves it');
  t.ok(readFileSync(out).equals(data));
});
