import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { createNetnsPair, lossRuleset, namespaceSupport, NETNS_PREFIX, run } from './netns.ts';

t.test('lossRuleset() drops on the input hook of the veth, and refuses a bad percent', async (t) => {
  const rules = lossRuleset('sv1234abcdb', 7);
  t.match(rules, /type filter hook input priority 0;/);
  t.match(rules, /iifname "sv1234abcdb" numgen random mod 100 < 7 counter drop/);
  t.throws(() => lossRuleset('x', 101), RangeError);
  t.throws(() => lossRuleset('x', 2.5), RangeError);
});

// The receiver says when it is bound, then its count each time it changes (at most every 50 ms).
const RECEIVER = `
const s = require('node:dgram').createSocket('udp4');
let n = 0, said = -1;
s.on('message', () => n++);
s.bind(9999, '10.77.0.2', () => console.log('ready'));
setInterval(() => { if (n !== said) { said = n; console.log('count ' + n); } }, 50);
`;
const SENDER = `
const s = require('node:dgram').createSocket('udp4');
let i = 0, done = 0;
// Closed once every send has gone out (its callback), not after a pause.
const sent = () => { if (++done === 2000) s.close(); };
const tick = () => {
  for (let k = 0; k < 50 && i < 2000; k++, i++) s.send(Buffer.alloc(64), 9999, '10.77.0.2', sent);
  if (i < 2000) setTimeout(tick, 5);
};
tick();
`;

/**
 * Starts the receiver in `b`, and once it is bound runs the sender in `a` to
 * its end; then takes the receiver's count once it has not changed for
 * 500 ms. Before, both started at once and the receiver counted for a fixed
 * 2.5 s: on a loaded machine the sender's start outlasted that, and 400 of
 * 2000 had arrived when it stopped counting.
 */
function countThrough(receiverIn: string[], senderIn: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const receiver = spawn(receiverIn[0] as string, [...receiverIn.slice(1), process.execPath, '-e', RECEIVER], { stdio: ['ignore', 'pipe', 'pipe'] });
    const deadline = setTimeout(() => finish(new Error(`no steady count within 60 s (output: ${out.slice(-200)})`)), 60_000);
    let out = '';
    let sent = false;
    let last = -1;
    let steady: ReturnType<typeof setTimeout> | undefined;
    const finish = (outcome: number | Error) => {
      clearTimeout(deadline);
      clearTimeout(steady);
      receiver.kill();
      if (typeof outcome === 'number') resolve(outcome);
      else reject(outcome);
    };
    const settle = () => {
      clearTimeout(steady);
      if (sent) steady = setTimeout(() => finish(Math.max(last, 0)), 500);
    };
    receiver.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (!sent && /^ready$/m.test(out) && !out.includes('sending')) {
        out += 'sending\n';
        execFile(senderIn[0] as string, [...senderIn.slice(1), process.execPath, '-e', SENDER], { timeout: 30_000 }, (error, _stdout, stderr) => {
          if (error) return finish(new Error(`${stderr}${error.message}`));
          sent = true;
          settle();
        });
      }
      const counts = [...out.matchAll(/^count (\d+)$/gm)];
      const now = Number(counts.at(-1)?.[1] ?? -1);
      if (now !== last) {
        last = now;
        settle();
      }
    });
    receiver.on('error', (error) => finish(error));
  });
}

const reason = await namespaceSupport();
const skip = reason === undefined ? false : `network namespaces: ${reason}`;

t.test('two namespaces joined by a veth: UDP passes, the nft rule drops about N %, and all is removed', { skip }, async (t) => {
  const path = await createNetnsPair();
  t.teardown(() => path.destroy());
  t.match(path.a, new RegExp(`^${NETNS_PREFIX}${process.pid}x[0-9a-f]{6}a$`), 'the name carries this run’s PID');
  t.ok((await run('ip', ['netns', 'list'])).includes(path.b), 'both namespaces exist');

  const count = () => countThrough(path.exec('b', []), path.exec('a', []));
  const clean = await count();
  t.equal(clean, 2000, `with no rule every datagram of 2000 arrives (${clean})`);
  await path.setLoss('b', 20);
  const ruleset = await run('ip', ['netns', 'exec', path.b, 'nft', 'list', 'ruleset']);
  t.match(ruleset, /numgen random mod 100 < 20/, 'the rule is in b’s ruleset');
  const lossy = await count();
  t.ok(lossy > 2000 * 0.72 && lossy < 2000 * 0.88, `with 20 % loss about 1600 of 2000 arrive (${lossy})`);
  await path.setLoss('b', 0);
  t.equal(await count(), 2000, 'loss 0 removes the rule');

  await path.destroy();
  await path.destroy(); // twice is safe
  const left = await run('ip', ['netns', 'list']);
  t.notOk(left.includes(path.a) || left.includes(path.b), 'both namespaces are gone');
});
