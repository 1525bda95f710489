import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { CliError } from './main.ts';
import { bindUdp, closeGracefully, closeKeepAlive, listenTcp, MAX_UDP_PAYLOAD, READY_LINE, readyLine, SIGNAL_ECHO_MS, trackConnections, udpType } from './server.ts';
import { Child, tsx } from './fixtures/spawn.ts';

const v4 = (port: number): AddressInfo => ({ address: '127.0.0.1', family: 'IPv4', port });
const v6 = (port: number): AddressInfo => ({ address: '::1', family: 'IPv6', port });

/** Whether this machine can bind ::1 (containers sometimes have IPv6 off). */
async function hasIpv6Loopback(): Promise<boolean> {
  const server = net.createServer();
  try {
    await listenTcp(server, '::1', 0);
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

t.test('readyLine names the bound address in the form READY_LINE matches', async (t) => {
  t.equal(readyLine(v4(40123), 'tcp'), 'listening on 127.0.0.1:40123 (tcp)');
  t.equal(readyLine(v4(7), 'udp'), 'listening on 127.0.0.1:7 (udp)');
  t.equal(readyLine(v6(7007), 'tcp'), 'listening on [::1]:7007 (tcp)', 'an IPv6 address is bracketed');
  for (const [address, protocol, host, port] of [
    [v4(40123), 'tcp', '127.0.0.1', '40123'],
    [v4(1), 'udp', '127.0.0.1', '1'],
    [v6(65535), 'udp', '[::1]', '65535'],
    [{ address: '::', family: 'IPv6', port: 80 }, 'tcp', '[::]', '80'],
  ] as const) {
    const match = READY_LINE.exec(readyLine(address, protocol));
    t.same(match?.slice(1), [host, port, protocol], `READY_LINE reads back ${host}:${port} ${protocol}`);
  }
});

t.test('READY_LINE finds the line among other output and refuses look-alikes', async (t) => {
  t.match('starting\nlistening on 127.0.0.1:5 (tcp)\nmore\n', READY_LINE);
  t.notMatch('listening on 127.0.0.1:5 (sctp)', READY_LINE);
  t.notMatch('listening on 127.0.0.1 (tcp)', READY_LINE, 'no port');
  t.notMatch('now listening on 127.0.0.1:5 (tcp)', READY_LINE, 'not at the start of a line');
  t.notMatch('listening on ::1:5 (tcp)', READY_LINE, 'an unbracketed IPv6 address is ambiguous');
});

t.test('readyLine refuses a server that is not bound to an IP address', async (t) => {
  t.throws(() => readyLine(null, 'tcp'), new TypeError('Cannot announce a tcp server: it is not bound to an IP address'));
  t.throws(() => readyLine('/tmp/echo.sock', 'tcp'), TypeError);
});

t.test('listenTcp on port 0 resolves with the port really bound', async (t) => {
  const server = net.createServer((socket) => socket.end('hi'));
  const address = await listenTcp(server, '127.0.0.1', 0);
  t.teardown(() => server.close());
  t.equal(address.address, '127.0.0.1');
  t.ok(address.port > 0 && address.port <= 65535, `port ${address.port}`);
  t.equal((server.address() as AddressInfo).port, address.port);
  const socket = await connect(address.port);
  const reply = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    socket.on('end', () => resolve(text));
  });
  t.equal(reply, 'hi', 'a client reaches it on that port');
  t.equal(server.listenerCount('error'), 0, 'no error listener is left behind');
});

const ipv6 = await hasIpv6Loopback();

t.test('listenTcp binds IPv6 ::1 and the ready line brackets it', { skip: ipv6 ? false : 'this machine cannot bind ::1' }, async (t) => {
  const server = net.createServer();
  const address = await listenTcp(server, '::1', 0);
  t.teardown(() => server.close());
  t.match(readyLine(address, 'tcp'), /^listening on \[::1\]:\d+ \(tcp\)$/);
});

t.test('bindUdp on port 0 resolves with the port really bound', async (t) => {
  const socket = dgram.createSocket('udp4');
  const address = await bindUdp(socket, '127.0.0.1', 0);
  t.teardown(() => closeUdp(socket));
  t.equal(address.address, '127.0.0.1');
  t.ok(address.port > 0, `port ${address.port}`);
  t.equal(socket.address().port, address.port);
  t.equal(readyLine(address, 'udp'), `listening on 127.0.0.1:${address.port} (udp)`);
  t.equal(socket.listenerCount('error'), 0, 'no error listener is left behind');
});

t.test('listenTcp on a port in use rejects with a clear sentence', async (t) => {
  const first = net.createServer();
  const { port } = await listenTcp(first, '127.0.0.1', 0);
  t.teardown(() => first.close());
  const second = net.createServer();
  const error = await listenTcp(second, '127.0.0.1', port).then(
    () => undefined,
    (error: unknown) => error,
  );
  t.type(error, CliError);
  t.equal((error as CliError).message, `cannot listen: 127.0.0.1:${port} is already in use (another server? try --port 0)`);
  t.equal((error as CliError).exitCode, 1);
  t.equal(((error as CliError).cause as NodeJS.ErrnoException).code, 'EADDRINUSE', 'the system error is kept as the cause');
});

t.test('bindUdp on a port in use rejects with a clear sentence', async (t) => {
  const first = dgram.createSocket('udp4');
  const { port } = await bindUdp(first, '127.0.0.1', 0);
  t.teardown(() => closeUdp(first));
  const second = dgram.createSocket('udp4');
  await t.rejects(bindUdp(second, '127.0.0.1', port), new CliError(`cannot listen: 127.0.0.1:${port} is already in use (another server? try --port 0)`));
});

t.test('listenTcp on an address this machine does not have says so', async (t) => {
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a real machine.
  const server = net.createServer();
  await t.rejects(listenTcp(server, '192.0.2.1', 0), new CliError('cannot listen: 192.0.2.1 is not an address of this machine'));
});

t.test('udpType picks the socket family of the host', async (t) => {
  t.equal(udpType('127.0.0.1'), 'udp4');
  t.equal(udpType('::1'), 'udp6');
  t.equal(udpType('localhost'), 'udp4');
  t.equal(MAX_UDP_PAYLOAD, 65535 - 8 - 20);
});

t.test('closeGracefully resolves at once when no client is connected', async (t) => {
  const server = trackConnections(net.createServer());
  await listenTcp(server, '127.0.0.1', 0);
  await closeGracefully(server, 60_000);
  t.equal(server.listening, false);
});

t.test('closeGracefully destroys idle connections once the grace period is over', async (t) => {
  const server = trackConnections(net.createServer((socket) => socket.on('error', () => {})));
  const { port } = await listenTcp(server, '127.0.0.1', 0);
  const idle = [await connect(port), await connect(port)];
  const closed = idle.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
  for (const socket of idle) socket.on('error', () => {});
  // Wait until the server has accepted both, so they are tracked.
  while ((await new Promise<number>((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))))) < 2) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await closeGracefully(server, 200);
  await Promise.all(closed);
  t.equal(server.listening, false, 'the server is closed');
  t.ok(idle.every((socket) => socket.destroyed), 'both idle clients were disconnected');
  await t.rejects(connect(port), { code: 'ECONNREFUSED' }, 'nothing new is accepted');
});

t.test('closeGracefully lets a busy connection finish within the grace period', async (t) => {
  const server = trackConnections(net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket)));
  const { port } = await listenTcp(server, '127.0.0.1', 0);
  const client = await connect(port);
  let accepted = 0;
  while (accepted < 1) {
    accepted = await new Promise<number>((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const closing = closeGracefully(server, 60_000);
  t.equal(server.listening, false, 'it stops listening at once');
  const echo = new Promise<string>((resolve) => {
    let text = '';
    client.on('data', (chunk) => (text += chunk));
    client.on('end', () => resolve(text));
  });
  client.end('still served');
  t.equal(await echo, 'still served', 'the connection was served to its end');
  await closing;
});

/** Starts lib/fixtures/shutdown-server.ts and returns it with its port. */
async function startShutdownServer(t: { teardown: (fn: () => unknown) => void }, ...args: string[]): Promise<[Child, number]> {
  const child = new Child(tsx('lib/fixtures/shutdown-server.ts', ...args));
  t.teardown(() => child.kill());
  return [child, await child.ready()];
}

t.test('onShutdown: SIGTERM closes the server and the process exits 0', async (t) => {
  const [child, port] = await startShutdownServer(t, 'close', '300', '20000');
  const idle = await connect(port);
  idle.on('error', () => {});
  const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
  child.signal('SIGTERM');
  const { code, signal, stderr } = await child.exited;
  t.equal(code, 0, 'exit 0');
  t.equal(signal, null);
  t.match(stderr, /SIGTERM: shutting down \(20000 ms grace\)/, 'it says why it stops');
  t.notMatch(stderr, /grace period over/, 'it finished before the fallback');
  await idleClosed;
  t.pass('the idle client was disconnected');
});

t.test('onShutdown: SIGINT with no client connected exits 0', async (t) => {
  const [child] = await startShutdownServer(t, 'close', '20000', '30000');
  child.signal('SIGINT');
  const { code, stderr } = await child.exited;
  t.equal(code, 0);
  t.match(stderr, /SIGINT: shutting down/);
});

t.test('onShutdown: a stop that outlasts graceMs exits 130', async (t) => {
  const [child] = await startShutdownServer(t, 'hang', '500');
  child.signal('SIGTERM');
  const { code, stderr } = await child.exited;
  t.equal(code, 130);
  t.match(stderr, /grace period over: exiting with connections still open/);
});

t.test('onShutdown: a second signal exits 130 at once', async (t) => {
  const [child] = await startShutdownServer(t, 'hang', '600000');
  child.signal('SIGTERM');
  await child.waitFor(/shutting down/, 30_000, 'stderr');
  // A second signal within SIGNAL_ECHO_MS is taken as the echo of the first.
  await new Promise((resolve) => setTimeout(resolve, SIGNAL_ECHO_MS + 300));
  child.signal('SIGINT');
  const { code, stderr } = await child.exited;
  t.equal(code, 130);
  t.match(stderr, /SIGINT again: exiting now/);
});

t.test('onShutdown: two SIGINTs 30 ms apart are one Ctrl-C, and the grace period is kept', async (t) => {
  const [child] = await startShutdownServer(t, 'hang', '1500');
  // The script's own process (tsx runs it in a child node), as a terminal's
  // process-group signal and tsx's relayed copy both reach it.
  const script = Number(readFileSync(`/proc/${child.process.pid}/task/${child.process.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  t.ok(script > 0, 'found the script process');
  const started = Date.now();
  process.kill(script, 'SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 30));
  process.kill(script, 'SIGINT');
  const { code, stderr } = await child.exited;
  t.equal(code, 130, 'it exits when the grace period is over');
  t.notMatch(stderr, /again: exiting now/, 'the second SIGINT was not taken as a second Ctrl-C');
  t.match(stderr, /grace period over/, 'the grace period ran out, as with one Ctrl-C');
  t.ok(Date.now() - started >= 1400, 'it waited the grace period');
});

t.test('onShutdown: one SIGINT to the process group (a terminal\'s Ctrl-C under tsx) is one Ctrl-C', async (t) => {
  const [child] = await startShutdownServer(t, 'hang', '1500');
  process.kill(-(child.process.pid as number), 'SIGINT');
  const { code, stderr } = await child.exited;
  t.equal(code, 130);
  t.notMatch(stderr, /again: exiting now/, 'tsx relaying the signal the child also got is not a second Ctrl-C');
  t.match(stderr, /grace period over/);
});

t.test('closeKeepAlive() ends idle connections at once and busy ones after the grace period', async (t) => {
  const connections: { socket: net.Socket; idle: boolean }[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    connections.push({ socket, idle: connections.length === 0 }); // the first is idle, the second busy
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const clients = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')];
  const closedAt = clients.map((client) => new Promise<number>((resolve) => client.on('error', () => {}).on('close', () => resolve(performance.now()))));
  while (connections.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  const started = performance.now();
  await closeKeepAlive(server, connections, 300);
  const [idle, busy] = (await Promise.all(closedAt)).map((at) => at - started);
  t.ok((idle ?? Infinity) < (busy ?? 0), `the idle one closed first (${idle?.toFixed(0)} ms, busy ${busy?.toFixed(0)} ms)`);
  t.ok((busy ?? 0) >= 290, 'the busy one had its grace period');
  t.notOk(server.listening, 'the server no longer listens');
});
