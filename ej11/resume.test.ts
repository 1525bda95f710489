/**
 * Ctrl-C during a download, and -c (issue 13): the client keeps what arrived
 * as OUT.part (never under OUT), says how much and how to resume, and `-c`
 * resumes it as wget's does, to a file whose bytes equal the original. The
 * client is one node process (no tsx launcher), so the SIGINT reaches it as
 * a terminal's Ctrl-C would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { client, MiB, outFolder, partSize, startServer, waitForPart } from './test-peers.ts';

const TRACE = /\n\s+at /;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

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
