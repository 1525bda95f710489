/**
 * Ctrl-C typed in a real terminal (tmux) under `npx tsx`, where the signal
 * reaches the script twice (from the terminal and relayed by tsx): one
 * Ctrl-C, the part kept, the sentence on the screen, status 130 (issue 13).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startRelay } from '../harness/relay.ts';
import { ROOT } from '../lib/fixtures/spawn.ts';
import { delay, MiB, outFolder, partSize, startServer } from './test-peers.ts';


t.test('Ctrl-C typed in a terminal (tmux) under npx tsx is one Ctrl-C: the part is kept and the sentence printed', { skip: !existsSync('/usr/bin/tmux') && 'no tmux' }, async (t) => {
  const data = randomBytes(24 * MiB);
  const s = await startServer(t, { 'big.bin': data });
  const relay = await startRelay({ target: { host: '127.0.0.1', port: s.port }, forward: { delayMs: 20 }, backward: { delayMs: 20 } });
  t.teardown(() => relay.close());
  const dir = outFolder(t);
  const out = path.join(dir, 'big.bin');
  const socket = `ej11-test-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const command = `npx tsx ej11/client.ts --get big.bin -o ${out} --host ${relay.host} --port ${relay.port}`;
  // An interactive shell, as a terminal has: Ctrl-C goes to the foreground command only.
  tmux('new-session', '-d', '-s', 'main', '-x', '160', '-y', '30', '-c', ROOT, 'bash', '--norc', '--noprofile');
  tmux('send-keys', '-t', 'main', '-l', command);
  tmux('send-keys', '-t', 'main', 'Enter');
  t.teardown(() => {
    try {
      tmux('kill-server');
    } catch {
      // already gone
    }
  });
  const started = performance.now();
  while (partSize(`${out}.part`) < 2 * MiB && performance.now() - started < 60_000) await delay(50);
  t.ok(partSize(`${out}.part`) >= 2 * MiB, `the download was under way (${((performance.now() - started) / 1000).toFixed(1)} s after the command was typed)`);
  tmux('send-keys', '-t', 'main', 'C-c');
  const prompt = /resumes it[\s\S]*[$#] $/;
  const interruptedAt = performance.now();
  let screen = '';
  while (!prompt.test((screen = tmux('capture-pane', '-p', '-J', '-t', 'main').trimEnd() + ' ')) && performance.now() - started < 90_000) await delay(100);
  // The status as the user's next command sees it (a shell sees npx's).
  tmux('send-keys', '-t', 'main', '-l', `echo $? > ${dir}/status`);
  tmux('send-keys', '-t', 'main', 'Enter');
  while (!existsSync(`${dir}/status`) && performance.now() - started < 90_000) await delay(100);
  t.equal(existsSync(`${dir}/status`) ? readFileSync(`${dir}/status`, 'utf8').trim() : 'still running', '130', `exit 130 (the prompt was back ${((performance.now() - interruptedAt) / 1000).toFixed(1)} s after Ctrl-C)`);
  t.match(screen, /interrupted: kept \d+ of 25165824 bytes in .*big\.bin\.part; the same command with -c \(--continue\) resumes it/, 'the sentence is on the screen');
  t.notMatch(screen, /SIGINT again|at .*\.ts:\d+/, 'no second Ctrl-C, no stack trace');
  t.notOk(existsSync(out), 'nothing under the final name');
});
