/**
 * Every script's `-h` says what its exit statuses mean, in one line that
 * starts `Exit status`, as a user of ping, wget or curl expects to find in
 * the manual. Seven servers' help lacked it (issue 13).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import t from 'tap';
import { ROOT, run, tsx } from './fixtures/spawn.ts';

/** Every role's script, from the Node target's manifest. */
const scripts = [...new Set(
  readFileSync(path.join(ROOT, 'harness', 'targets', 'node.ini'), 'utf8')
    .split('\n')
    .map((line) => /^\S+\s*=\s*tsx\s+(ej\d\d\/\S+\.ts)/.exec(line)?.[1])
    .filter((file): file is string => file !== undefined),
)].sort();

t.test('the list of scripts is read from the manifest', async (t) => {
  t.ok(scripts.length >= 25, `found ${scripts.length} scripts`);
});

const limit = pLimit(4);
t.test('every script\'s -h has an "Exit status" paragraph that names the status of bad usage (2)', async (t) => {
  const helps = await Promise.all(scripts.map((file) => limit(async () => [file, await run(tsx(file, '-h'))] as const)));
  for (const [file, help] of helps) {
    t.equal(help.code, 0, `${file} -h exits 0`);
    t.match(help.stdout, /^Exit status[^]*?\b2 (a )?bad\b/m, `${file} -h lists its exit statuses`);
  }
});
