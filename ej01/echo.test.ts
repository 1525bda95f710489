/**
 * The echo functions of ej01, in process: servers from createTcpEchoServer
 * and createUdpEchoServer on port 0, clients through tcpEcho and udpEcho, and
 * raw sockets where a test needs a misbehaving peer.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import t from 'tap';
import { CliError } from '../lib/main.ts';
import { bindUdp, listenTcp, MAX_UDP_PAYLOAD } from '../lib/server.ts';
import { tcpEcho } from './tcp-client.ts';
import { createTcpEchoServer, type TcpEchoOptions } from './tcp-server.ts';
import { udpEcho } from './udp-client.ts';
import { createUdpEchoServer } from './udp-server.ts';

type Test = Parameters<Parameters<typeof t.test>[1]>[0];

const HOST = '127.0.0.1';
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

/** Starts a TCP echo server on a free port, closed (with its clients) at the end of the test. */
async function tcpServer(t: Test, options: TcpEchoOptions = {}): Promise<{ server: net.Server; port: number; log: string[] }> {
  const log: string[] = [];
  const server = createTcpEchoServer({ ...options, log: (line) => log.push(line) });
  const { port } = await listenTcp(server, HOST, 0);
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  }));
  return { server, port, log };
}

/** Starts a UDP echo server on a free port, closed at the end of the test. */
async function udpServer(t: Test): Promise<{ port: number; log: string[] }> {
  const log: string[] = [];
  const socket = createUdpEchoServer(HOST, { log: (line) => log.push(line) });
  const { port } = await bindUdp(socket, HOST, 0);
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { port, log };
}

/** A raw TCP connection, with everything it receives collected. */
class RawClient {
  readonly socket: net.Socket;
  received = Buffer.alloc(0);
  ended = false;
  readonly closed: Promise<void>;
  #waiters = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.#notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#notify();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: HOST, port, allowHalfOpen: true }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  #notify() {
    for (const waiter of this.#waiters) waiter();
  }

  /** Resolves once `n` bytes have arrived (or the server ended the stream). */
  until(n: number): Promise<Buffer> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.received.length >= n || this.ended) {
          this.#waiters.delete(check);
          resolve(this.received);
        }
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Resolves when the server has ended the stream. */
  untilEnd(): Promise<Buffer> {
    return this.until(Number.POSITIVE_INFINITY);
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds or `timeoutMs` passes (a generous bound: the machine is shared). */
async function eventually(condition: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await delay(20);
  }
  return true;
}

/** A port where nothing listens (bound, read back, released). */
async function closedPort(protocol: 'tcp' | 'udp'): Promise<number> {
  if (protocol === 'tcp') {
    const server = net.createServer();
    const { port } = await listenTcp(server, HOST, 0);
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
  const socket = dgram.createSocket('udp4');
  const { port } = await bindUdp(socket, HOST, 0);
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

t.test('TCP echo returns all 256 byte values unchanged', async (t) => {
  const { port } = await tcpServer(t);
  const echo = await tcpEcho(HOST, port, ALL_BYTES);
  t.same(Buffer.from(echo), Buffer.from(ALL_BYTES));
});

t.test('TCP echo returns 1 MiB of random bytes unchanged', async (t) => {
  const { port } = await tcpServer(t);
  const data = randomBytes(1 << 20);
  const echo = await tcpEcho(HOST, port, data, { timeoutMs: 30_000 });
  t.equal(echo.length, data.length, 'as many bytes as were sent');
  t.ok(data.equals(echo), 'byte-identical');
});

t.test('TCP echo of nothing is nothing, and the connection closes', async (t) => {
  const { port } = await tcpServer(t);
  t.equal((await tcpEcho(HOST, port, new Uint8Array(0))).length, 0);
});

t.test('UDP echo returns a 65507-byte datagram unchanged', async (t) => {
  const { port } = await udpServer(t);
  const data = randomBytes(MAX_UDP_PAYLOAD);
  const { reply, tries } = await udpEcho(HOST, port, data, { timeoutMs: 5000, retries: 2 });
  t.equal(reply.length, MAX_UDP_PAYLOAD);
  t.ok(data.equals(reply), 'byte-identical');
  t.ok(tries >= 1 && tries <= 3, `answered on try ${tries}`);
});

t.test('UDP echo returns all 256 byte values unchanged', async (t) => {
  const { port, log } = await udpServer(t);
  const { reply } = await udpEcho(HOST, port, ALL_BYTES, { timeoutMs: 5000 });
  t.same(Buffer.from(reply), Buffer.from(ALL_BYTES));
  t.match(log[0], /^127\.0\.0\.1:\d+ 256 bytes$/, 'the server logs each datagram');
});

t.test('the UDP server answers each sender its own datagrams', async (t) => {
  const { port } = await udpServer(t);
  const payloads = Array.from({ length: 20 }, (_, i) => Buffer.from(`client ${i} `.repeat(i + 1)));
  const results = await Promise.all(payloads.map((data) => udpEcho(HOST, port, data, { timeoutMs: 5000 })));
  t.same(results.map((r) => Buffer.from(r.reply).toString()), payloads.map((p) => p.toString()));
});

t.test('udpEcho refuses data larger than one datagram, before sending', async (t) => {
  await t.rejects(
    udpEcho(HOST, 9, new Uint8Array(MAX_UDP_PAYLOAD + 1)),
    new CliError(`the data is ${MAX_UDP_PAYLOAD + 1} bytes; one UDP datagram carries at most ${MAX_UDP_PAYLOAD}`),
  );
});

t.test('the default TCP server serves a second client while the first stays connected', async (t) => {
  const { port } = await tcpServer(t);
  const first = await RawClient.connect(port);
  t.teardown(() => first.socket.destroy());
  first.socket.write('first');
  t.equal((await first.until(5)).toString(), 'first', 'the first client is echoed and stays connected');
  const echo = await tcpEcho(HOST, port, Buffer.from('second'), { timeoutMs: 30_000 });
  t.equal(Buffer.from(echo).toString(), 'second', 'the second is served meanwhile');
  t.equal(first.ended, false, 'the first is still connected');
  first.socket.end('!');
  t.equal((await first.untilEnd()).toString(), 'first!', 'and is served to its end');
});

t.test('the --iterative TCP server serves the second client only after the first closes', async (t) => {
  const { port, log } = await tcpServer(t, { iterative: true });
  const first = await RawClient.connect(port);
  t.teardown(() => first.socket.destroy());
  first.socket.write('first');
  t.equal((await first.until(5)).toString(), 'first', 'the first client is being served');

  const second = await RawClient.connect(port);
  t.teardown(() => second.socket.destroy());
  second.socket.end('second');
  // While the first is connected nothing may come back, however long we wait.
  await delay(500);
  t.equal(second.received.length, 0, 'the second gets nothing while the first is connected');
  t.ok(log.some((line) => /waiting: another client is being served/.test(line)), 'the server logs that it waits');

  let firstClosedAt = 0;
  void first.closed.then(() => (firstClosedAt = performance.now()));
  first.socket.end();
  t.equal((await first.untilEnd()).toString(), 'first');
  t.equal((await second.untilEnd()).toString(), 'second', 'then the second is echoed in full');
  await first.closed;
  t.ok(firstClosedAt > 0, 'after the first had closed');
});

t.test('a client that resets mid-stream does not stop the TCP server', async (t) => {
  const { port, log } = await tcpServer(t);
  const rude = await RawClient.connect(port);
  rude.socket.write(randomBytes(256 * 1024));
  await rude.until(1);
  rude.socket.resetAndDestroy();
  await rude.closed;
  const echo = await tcpEcho(HOST, port, Buffer.from('still here'), { timeoutMs: 30_000 });
  t.equal(Buffer.from(echo).toString(), 'still here', 'the next client is served');
  // The reset reaches the server's socket as an error or a plain close; either is logged, never thrown.
  t.ok(await eventually(() => log.some((line) => /closed after \d+ bytes echoed/.test(line))), 'the server logged the reset connection closing');
});

t.test('the --iterative server moves on when the client it serves resets, skipping one that gave up waiting', async (t) => {
  const { port } = await tcpServer(t, { iterative: true });
  const served = await RawClient.connect(port);
  served.socket.write('x');
  await served.until(1);
  const quitter = await RawClient.connect(port);
  quitter.socket.write('never echoed');
  const patient = await RawClient.connect(port);
  t.teardown(() => patient.socket.destroy());
  patient.socket.end('patient');
  quitter.socket.resetAndDestroy();
  await quitter.closed;
  served.socket.resetAndDestroy();
  t.equal((await patient.untilEnd()).toString(), 'patient', 'the third client is served');
  const echo = await tcpEcho(HOST, port, Buffer.from('and the next'), { timeoutMs: 30_000 });
  t.equal(Buffer.from(echo).toString(), 'and the next', 'and the server goes on');
});

t.test('the TCP server closes a connection silent for idleTimeoutMs', async (t) => {
  const { port, log } = await tcpServer(t, { idleTimeoutMs: 200 });
  const silent = await RawClient.connect(port);
  t.teardown(() => silent.socket.destroy());
  await silent.untilEnd();
  t.ok(silent.ended, 'the silent client was disconnected');
  t.ok(log.some((line) => /idle for 0\.2 s: closing/.test(line)), 'the server says why');
});

t.test('tcpEcho against a server that never answers fails with a clear timeout', async (t) => {
  // allowHalfOpen: the client's FIN must not make this server close in turn.
  const mute = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.resume(); // reads everything, answers nothing, never closes
  });
  const { port } = await listenTcp(mute, HOST, 0);
  t.teardown(() => {
    mute.closeAllConnections?.();
    mute.close();
  });
  await t.rejects(
    tcpEcho(HOST, port, Buffer.from('hola'), { timeoutMs: 1000 }),
    new CliError(`no echo from 127.0.0.1:${port} for 1 s (received 0 of 4 bytes)`),
  );
});

t.test('tcpEcho reports a server that closes early with what it got', async (t) => {
  const truncating = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.once('data', (chunk: Buffer) => socket.end(chunk.subarray(0, 3)));
  });
  const { port } = await listenTcp(truncating, HOST, 0);
  t.teardown(() => truncating.close());
  const echo = await tcpEcho(HOST, port, Buffer.from('hola mundo'));
  t.equal(Buffer.from(echo).toString(), 'hol', 'the client returns what came; main compares it');
});

t.test('tcpEcho to a closed port says the connection was refused', async (t) => {
  const port = await closedPort('tcp');
  await t.rejects(
    tcpEcho(HOST, port, Buffer.from('hola')),
    new CliError(`cannot connect to 127.0.0.1:${port}: connection refused (is the server running?)`),
  );
});

t.test('tcpEcho stops when its signal aborts', async (t) => {
  const mute = net.createServer({ allowHalfOpen: true }, (socket) => socket.on('error', () => {}));
  const { port } = await listenTcp(mute, HOST, 0);
  t.teardown(() => {
    mute.closeAllConnections?.();
    mute.close();
  });
  const controller = new AbortController();
  const echo = tcpEcho(HOST, port, Buffer.from('x'), { timeoutMs: 60_000, signal: controller.signal });
  setTimeout(() => controller.abort(new Error('test over')), 100);
  await t.rejects(echo, new Error('test over'));
});

t.test('udpEcho retries and then fails clearly when nothing answers', async (t) => {
  const sink = dgram.createSocket('udp4');
  let received = 0;
  sink.on('message', () => (received += 1));
  const { port } = await bindUdp(sink, HOST, 0);
  t.teardown(() => new Promise<void>((resolve) => sink.close(() => resolve())));
  const retries: number[] = [];
  await t.rejects(
    udpEcho(HOST, port, Buffer.from('hola'), { timeoutMs: 200, retries: 2, onRetry: (attempt) => retries.push(attempt) }),
    new CliError(`no echo from 127.0.0.1:${port} after 3 tries (0.2 s each)`),
  );
  t.same(retries, [2, 3], 'told before each retry');
  t.ok(await eventually(() => received >= 3), 'three datagrams were sent');
  t.equal(received, 3, 'and no more');
});

t.test('udpEcho with no retries gives up after one try', async (t) => {
  const sink = dgram.createSocket('udp4');
  const { port } = await bindUdp(sink, HOST, 0);
  t.teardown(() => new Promise<void>((resolve) => sink.close(() => resolve())));
  await t.rejects(udpEcho(HOST, port, Buffer.from('x'), { timeoutMs: 100, retries: 0 }), new CliError(`no echo from 127.0.0.1:${port} after 1 try (0.1 s each)`));
});

t.test('udpEcho reports a reply that differs from what was sent', async (t) => {
  const liar = dgram.createSocket('udp4');
  liar.on('message', (message, peer) => liar.send(Buffer.from(message).reverse(), peer.port, peer.address));
  const { port } = await bindUdp(liar, HOST, 0);
  t.teardown(() => new Promise<void>((resolve) => liar.close(() => resolve())));
  await t.rejects(
    udpEcho(HOST, port, Buffer.from('abc'), { timeoutMs: 2000, retries: 0 }),
    new CliError(`only a different reply from 127.0.0.1:${port} (the echo differs from what was sent at byte 0 (sent 3 bytes, got 3))`),
  );
});

t.test('udpEcho to a port where nothing listens says so', async (t) => {
  const port = await closedPort('udp');
  // Loopback answers ICMP port unreachable, which the connected socket reports at once.
  await t.rejects(
    udpEcho(HOST, port, Buffer.from('hola'), { timeoutMs: 2000, retries: 3 }),
    new CliError(`nothing listens on 127.0.0.1:${port} (the host answered ICMP port unreachable)`),
  );
});
