/**
 * `--port 0`: the server binds UDP on a port the kernel picks, then TCP on
 * the same number, which may be taken for TCP (a CI run beside a fuzz
 * campaign failed two ej11 tests with "cannot listen: 127.0.0.1:43870 is
 * already in use"). Then it tries another free port. The test makes that
 * collision likely: in a network namespace of its own, the kernel may pick
 * only two ports, and the first is taken for TCP.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT, TSX } from '../lib/fixtures/spawn.ts';

const root = process.getuid?.() === 0;
const hasIp = spawnSync('ip', ['-V']).status === 0;

t.test('--port 0 finds a port free for both UDP and TCP when the first pick is taken for TCP', { skip: (!root && 'needs root (a network namespace)') || (!hasIp && 'needs ip (Debian package iproute2)') }, async (t) => {
  const ns = `ej11pair${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => void spawnSync('ip', ['netns', 'del', ns]));
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=40000 40001']);
  const dir = mkdtempSync(path.join(tmpdir(), 'ej11-pair-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // One process in the namespace holds TCP 40000 and starts the server five times: each must come up.
  const script = `
    const net = require('node:net');
    const { spawn } = require('node:child_process');
    const start = () => new Promise((resolve) => {
      const child = spawn(${JSON.stringify(TSX)}, ['ej11/server.ts', '--port', '0', '--dir', ${JSON.stringify(dir)}], { cwd: ${JSON.stringify(ROOT)} });
      let out = '', err = '';
      const timer = setTimeout(() => child.kill('SIGINT'), 60000);
      child.stdout.on('data', (d) => { out += d; if (/\\(tcp\\)/.test(out)) child.kill('SIGINT'); });
      child.stderr.on('data', (d) => { err += d; });
      child.on('close', () => { clearTimeout(timer); resolve(/\\(tcp\\)/.test(out) ? 'up' : 'DOWN ' + (err.split('\\n').find((l) => /cannot listen/.test(l)) ?? err.slice(0, 200))); });
    });
    const holder = net.createServer().listen(40000, '127.0.0.1', async () => {
      const out = [];
      for (let i = 0; i < 5; i++) out.push(await start());
      console.log(JSON.stringify(out));
      holder.close();
    });`;
  const ran = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { encoding: 'utf8', timeout: 280_000 });
  const starts = JSON.parse(ran.stdout.trim().split('\n').pop() ?? '[]') as string[];
  t.equal(starts.length, 5, `five starts (stderr: ${ran.stderr.slice(0, 300)})`);
  t.same(starts.filter((s) => !s.startsWith('up')), [], 'each came up on 40001, the port free for both');
});
