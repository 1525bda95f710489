/**
 * Ctrl-C during a download, and -c (issue 13): the client keeps what arrived
 * as OUT.part (never under OUT), says how much and how to resume, and `-c`
 * resumes it as wget's does, to a file whose bytes equal the original. The
 * client is one node process (no tsx launcher), so the SIGINT reaches it as
 * a terminal's Ctrl-C would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startRelay } from '../harness/relay.ts';
import { client, MiB, outFolder, partSize, startServer, waitForPart } from './test-peers.ts';

const TRACE = /\n\s+at /;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('Ctrl-C during a UDP download keeps OUT.part, says how much and how to resume; -c resumes it to the same bytes', async (t) => {
  const data = randomBytes(12 * MiB);
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
