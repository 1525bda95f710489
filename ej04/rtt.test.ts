import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeProbe, encodeProbe, formatBlock, measureTcp, measureTcpEcho, measureUdp, probeCount, type HostResult } from './rtt.ts';
import { summarize } from './stats.ts';
import { Child, tsx } from '../lib/fixtures/spawn.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TSX = path.join(HERE, '..', 'node_modules', '.bin', 'tsx');

function run(args: string[], cwd = HERE): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(TSX, [path.join(HERE, 'rtt.ts'), ...args], { cwd, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function udpEcho(t: Test, { dropEvery = 0, duplicate = false } = {}): Promise<number> {
  const socket = dgram.createSocket('udp4');
  let n = 0;
  socket.on('message', (m, from) => {
    if (dropEvery && ++n % dropEvery === 0) return;
    socket.send(m, from.port, from.address);
    if (duplicate) socket.send(m, from.port, from.address);
  });
  await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
  t.teardown(() => socket.close());
  return socket.address().port;
}

t.test('encodeProbe() and decodeProbe() round-trip; other datagrams are not probes', async (t) => {
  t.same(decodeProbe(encodeProbe(0xdeadbeef, 4_000_000_000)), { session: 0xdeadbeef, seq: 4_000_000_000 });
  t.equal(decodeProbe(Buffer.alloc(16)), undefined, 'wrong magic');
  t.equal(decodeProbe(encodeProbe(1, 1).subarray(0, 15)), undefined, 'short');
});

t.test('probeCount() is seconds / interval, at least one', async (t) => {
  t.equal(probeCount(10, 1000), 10);
  t.equal(probeCount(1, 50), 20);
  t.equal(probeCount(0.1, 1000), 1);
});

t.test('measureUdp() counts every third probe lost, and duplicates apart', async (t) => {
  const port = await udpEcho(t, { dropEvery: 3, duplicate: true });
  const result = await measureUdp({ label: 'x', host: '127.0.0.1', port }, { seconds: 0.6, intervalMs: 20, timeoutMs: 200 });
  t.equal(result.stats.sent, 30);
  t.equal(result.stats.lost, 10, 'every third probe lost');
  t.equal(result.duplicates, 20, 'each answered probe answered twice: one duplicate each');
  t.ok(result.probes.filter((p) => p.rtt === undefined).every((p) => p.error === 'timeout'));
});

t.test('measureUdp() counts a reply after the timeout as late, not received', async (t) => {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (m, from) => setTimeout(() => socket.send(m, from.port, from.address), 80));
  await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
  t.teardown(() => socket.close());
  const result = await measureUdp({ label: 'x', host: '127.0.0.1', port: socket.address().port }, { seconds: 0.1, intervalMs: 50, timeoutMs: 60 });
  t.equal(result.stats.received, 0);
  t.equal(result.late, 2, 'both replies came late');
});

t.test('measureTcp() times connects to an open port and reports a closed one as refused', async (t) => {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => server.close());
  const open = await measureTcp({ label: 'open', host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, { seconds: 0.1, intervalMs: 20, timeoutMs: 1000 });
  t.equal(open.stats.received, 5);
  t.ok((open.stats.max ?? Infinity) < 1000);
  const closedPort = await new Promise<number>((ok) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => ok(p));
    });
  });
  const closed = await measureTcp({ label: 'closed', host: '127.0.0.1', port: closedPort }, { seconds: 0.1, intervalMs: 20, timeoutMs: 1000 });
  t.equal(closed.stats.lost, 5);
  t.ok(closed.probes.every((p) => p.error === 'refused'));
});

t.test('measureTcpEcho() times messages over one connection', async (t) => {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.pipe(s);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  t.teardown(() => server.close());
  const result = await measureTcpEcho({ label: 'e', host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, { seconds: 0.2, intervalMs: 20, timeoutMs: 1000 });
  t.equal(result.stats.received, 10);
  t.equal(connections, 1, 'one connection for every probe');
});

t.test("formatBlock() prints the assignment's block and undefined delays with no reply", async (t) => {
  const result: HostResult = {
    method: 'udp',
    target: { label: '195.46.39.40', host: '195.46.39.40', port: 7 },
    probes: [{ seq: 0, t: 0, rtt: 239.4 }, { seq: 1, t: 1000, error: 'timeout' }],
    late: 1,
    duplicates: 0,
    stats: summarize([239.4], 2),
  };
  const block = formatBlock(result);
  t.match(block, /^\*\*\*\*\*\nEstadísticas IP: 195\.46\.39\.40\nPaquetes: enviados=2, Recibido=1, Perdido=1\nPromedio=239 ms\nRTT: min=239\.400 ms, mediana=239\.400 ms/);
  t.match(block, /Tardíos=1, Duplicados=0/);
  t.match(block, /Errores: timeout=1/);
  t.match(formatBlock({ ...result, stats: summarize([], 2) }), /Promedio=indefinido/);
});

t.test('rtt.ts names the file and line of a bad host entry, exit 2', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ej04-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'IPsUDP.txt'), '127.0.0.1;\n127.0.0.1:7;no such:host\n');
  const bad = await run(['--udp', '--segundos', '0.1'], dir);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /IPsUDP\.txt, line 2: .*'no such:host'/);
  t.notMatch(bad.stderr, /\bat .*:\d+:\d+/, 'no stack trace');
});

t.test('rtt.ts refuses to run with neither --udp nor --tcp, and --plot writes an SVG', async (t) => {
  const none = await run(['--segundos', '1']);
  t.equal(none.code, 2);
  t.match(none.stderr, /--udp, --tcp or both/);
  const port = await udpEcho(t);
  const dir = await mkdtemp(path.join(tmpdir(), 'ej04-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const svg = path.join(dir, 'rtt.svg');
  const ok = await run(['--udp', '--hosts', `127.0.0.1:${port}`, '--segundos', '0.3', '--intervalo', '0.1', '--plot', svg]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^UDP\n\*\*\*\*\*\nEstadísticas IP: 127\.0\.0\.1:\d+\nPaquetes: enviados=3, Recibido=3, Perdido=0\n/);
  t.match(await readFile(svg, 'utf8'), /<polyline /);
});

// What a user sees: a closed UDP port, a host that never answers, a bad
// --plot, Ctrl-C half-way, and progress while it measures.

/** A UDP port on loopback with nothing bound to it (bound, then closed). */
async function closedUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
  const { port } = socket.address();
  await new Promise<void>((ok) => socket.close(() => ok()));
  return port;
}

t.test('measureUdp() reports a closed port as refused at once (ICMP port unreachable), not as timeouts', async (t) => {
  const port = await closedUdpPort();
  const started = performance.now();
  const result = await measureUdp({ host: '127.0.0.1', port, label: `127.0.0.1:${port}` }, { seconds: 0.6, intervalMs: 200, timeoutMs: 20_000 });
  const took = performance.now() - started;
  t.same(result.probes.map((p) => p.error), ['refused', 'refused', 'refused'], 'every probe refused');
  t.ok(took < 15_000, `it did not wait out the 20 s timeouts (took ${Math.round(took)} ms)`);
});

t.test('rtt.ts refuses --puerto-udp 0 in one sentence, exit 2', async (t) => {
  const { code, stderr } = await new Child(tsx('ej04/rtt.ts', '--udp', '--hosts', '127.0.0.1', '--puerto-udp', '0')).exited;
  t.equal(code, 2);
  t.match(stderr, /argument --puerto-udp: port 0 cannot be connected to/);
});

t.test('rtt.ts exits 1 and names the host when a host never answered', async (t) => {
  const port = await closedUdpPort();
  const child = new Child(tsx('ej04/rtt.ts', '--udp', '--hosts', `127.0.0.1:${port}`, '--segundos', '0.4', '--intervalo', '0.2'));
  t.teardown(() => child.kill());
  const { code, stdout, stderr } = await child.exited;
  t.match(stdout, /Estadísticas IP: 127\.0\.0\.1:\d+/, 'the block is printed');
  t.equal(code, 1, 'exit 1 at 100 % loss');
  t.match(stderr, new RegExp(`^rtt: UDP 127\\.0\\.0\\.1:${port} never answered \\(2 probes: refused\\)$`, 'm'), 'one sentence naming the host and why');
});

t.test('rtt.ts checks --plot before measuring: a missing folder is told at once, nothing is sent', async (t) => {
  const echo = dgram.createSocket('udp4');
  let received = 0;
  echo.on('message', (m, from) => {
    received++;
    echo.send(m, from.port, from.address);
  });
  await new Promise<void>((ok) => echo.bind(0, '127.0.0.1', ok));
  t.teardown(() => echo.close());
  const plot = path.join(tmpdir(), 'ej04-no-such-folder', 'x.svg');
  const { code, stdout, stderr } = await new Child(tsx('ej04/rtt.ts', '--udp', '--hosts', `127.0.0.1:${echo.address().port}`, '--segundos', '2', '--intervalo', '0.2', '--plot', plot)).exited;
  t.equal(code, 2);
  t.equal(stdout, '');
  t.match(stderr, plot, 'names the path');
  t.match(stderr, /does not exist/, 'says what is wrong');
  t.equal(received, 0, 'nothing was measured');
});

t.test('rtt.ts on Ctrl-C prints the statistics so far and shows progress while it measures', async (t) => {
  const echo = dgram.createSocket('udp4');
  let received = 0;
  echo.on('message', (m, from) => {
    received++;
    echo.send(m, from.port, from.address);
  });
  await new Promise<void>((ok) => echo.bind(0, '127.0.0.1', ok));
  t.teardown(() => echo.close());
  const child = new Child(tsx('ej04/rtt.ts', '--udp', '--hosts', `127.0.0.1:${echo.address().port}`, '--segundos', '600', '--intervalo', '0.1'));
  t.teardown(() => child.kill());
  await child.waitFor(/ronda 3\//, 90_000, 'stderr');
  t.pass('a progress line per round on stderr');
  // As a terminal does: the whole process group (tsx and the script) gets it.
  process.kill(-(child.process.pid as number), 'SIGINT');
  const { code, stdout } = await child.exited;
  const sent = Number(/enviados=(\d+)/.exec(stdout)?.[1]);
  const got = Number(/Recibido=(\d+)/.exec(stdout)?.[1]);
  t.ok(sent >= 3, `the block of the probes so far (enviados=${sent})`);
  t.ok(got >= 3 && got <= received, `with their replies (Recibido=${got})`);
  t.equal(code, 0, 'every host answered: exit 0, as ping');
});
