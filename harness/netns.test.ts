import t from 'tap';
import { execFile } from 'node:child_process';
import { createNetnsPair, lossRuleset, namespaceSupport, NETNS_PREFIX, run } from './netns.ts';

t.test('lossRuleset() drops on the input hook of the veth, and refuses a bad percent', async (t) => {
  const rules = lossRuleset('sv1234abcdb', 7);
  t.match(rules, /type filter hook input priority 0;/);
  t.match(rules, /iifname "sv1234abcdb" numgen random mod 100 < 7 counter drop/);
  t.throws(() => lossRuleset('x', 101), RangeError);
  t.throws(() => lossRuleset('x', 2.5), RangeError);
});

/** Runs `node -e script` inside a namespace and resolves with its stdout. */
function nodeIn(prefix: string[], script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(prefix[0] as string, [...prefix.slice(1), process.execPath, '-e', script], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${stderr}${error.message}`));
      else resolve(stdout);
    });
  });
}

const RECEIVER = `
const s = require('node:dgram').createSocket('udp4');
let n = 0;
s.on('message', () => n++);
s.bind(9999, '10.77.0.2', () => console.log('ready'));
setTimeout(() => { console.log(n); s.close(); }, 2500);
`;
const SENDER = `
const s = require('node:dgram').createSocket('udp4');
let i = 0;
const tick = () => {
  for (let k = 0; k < 50 && i < 2000; k++, i++) s.send(Buffer.alloc(64), 9999, '10.77.0.2');
  if (i < 2000) setTimeout(tick, 5); else setTimeout(() => s.close(), 100);
};
setTimeout(tick, 500);
`;

const reason = await namespaceSupport();
const skip = reason === undefined ? false : `network namespaces: ${reason}`;

t.test('two namespaces joined by a veth: UDP passes, the nft rule drops about N %, and all is removed', { skip }, async (t) => {
  const path = await createNetnsPair();
  t.teardown(() => path.destroy());
  t.match(path.a, new RegExp(`^${NETNS_PREFIX}${process.pid}x[0-9a-f]{6}a$`), 'the name carries this run’s PID');
  t.ok((await run('ip', ['netns', 'list'])).includes(path.b), 'both namespaces exist');

  const count = async () => {
    const [received] = await Promise.all([nodeIn(path.exec('b', []), RECEIVER), nodeIn(path.exec('a', []), SENDER)]);
    return Number(received.trim().split('\n').at(-1));
  };
  t.equal(await count(), 2000, 'with no rule every datagram of 2000 arrives');
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
