/**
 * The segment helper: three hosts on one bridge, a broadcast from one reaches
 * the two others (and not loopback alone), and destroy() leaves no namespace.
 */
import { execFile } from 'node:child_process';
import t from 'tap';
import { run } from './netns.ts';
import { createSegment, segmentSupport } from './segment.ts';

const reason = await segmentSupport();

/** Runs a small Node program inside host `i`'s namespace. */
function inHost(command: string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command[0] as string, command.slice(1), { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

const RECEIVE = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => { console.log(r.address + ' ' + m); s.close(); });
s.bind(47815, '0.0.0.0', () => console.error('bound'));
setTimeout(() => { console.log('nothing'); process.exit(0); }, 8000).unref();
`;
/** Sends 'hola' to port 47815 of `process.argv[1]` 20 times; prints `error CODE` if a send fails (as Python's sendto raises). */
const SEND = `
const s = require('node:dgram').createSocket('udp4');
const to = process.argv[1];
s.bind(0, () => { s.setBroadcast(true); let n = 0;
  const tick = () => s.send('hola', 47815, to, (error) => {
    if (error) { console.log('error ' + error.code); s.close(); return; }
    if (++n < 20) setTimeout(tick, 200); else s.close(); });
  tick(); });
`;

t.test('createSegment(3): a broadcast from host 0 reaches hosts 1 and 2; destroy() removes every namespace', { skip: reason ?? false }, async (t) => {
  const segment = await createSegment(3);
  try {
    t.same(segment.hosts.map((h) => h.address), ['10.78.0.1', '10.78.0.2', '10.78.0.3']);
    const listing = await run('ip', ['netns', 'list']);
    for (const host of segment.hosts) t.match(listing, host.ns, `namespace ${host.ns} exists`);
    const receivers = [1, 2].map((i) => inHost(segment.exec(i, [process.execPath, '-e', RECEIVE])));
    t.equal((await inHost(segment.exec(0, [process.execPath, '-e', SEND, '10.78.0.255']))).trim(), '', 'every send to 10.78.0.255 succeeded');
    const got = await Promise.all(receivers);
    for (const line of got) t.equal(line.trim(), '10.78.0.1 hola', 'the broadcast arrived, from 10.78.0.1');
  } finally {
    await segment.destroy();
    await segment.destroy();
  }
  const after = await run('ip', ['netns', 'list']);
  for (const host of [...segment.hosts.map((h) => h.ns), segment.switchNs]) t.notMatch(after, host, `namespace ${host} is gone`);
});

t.test("createSegment(3): a send to 255.255.255.255 (Python's '<broadcast>') from an unbound socket leaves by the segment and reaches hosts 1 and 2", { skip: reason ?? false }, async (t) => {
  const segment = await createSegment(3);
  try {
    const receivers = [1, 2].map((i) => inHost(segment.exec(i, [process.execPath, '-e', RECEIVE])));
    const sent = await inHost(segment.exec(0, [process.execPath, '-e', SEND, '255.255.255.255']));
    t.equal(sent.trim(), '', 'every send to 255.255.255.255 succeeded');
    const got = await Promise.all(receivers);
    for (const line of got) t.equal(line.trim(), '10.78.0.1 hola', 'the limited broadcast arrived, from 10.78.0.1');
    // The default route is the segment's own device: nothing is routed anywhere else.
    const routes = await run('ip', ['-n', segment.hosts[0]?.ns ?? '', 'route', 'show', 'default']);
    t.match(routes, new RegExp(`^default dev ${segment.hosts[0]?.device}`, 'm'), 'the default route is the segment device, with no gateway');
  } finally {
    await segment.destroy();
  }
});

t.test('createSegment() refuses a count out of range', async (t) => {
  await t.rejects(createSegment(0), { name: 'RangeError', message: /expected 1-200 hosts, got 0/ });
});
