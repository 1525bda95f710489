import t from 'tap';
import net from 'node:net';
import { type LoadOptions, measureRoundTrips, measureThroughput } from './load.ts';
import { median, quantile } from './stats.ts';

// In-process echo servers, right and deliberately wrong: a benchmark that
// reports a figure for a wrong echo would be worse than none.

type Handler = (socket: net.Socket) => void;

async function serve(t: { teardown: (fn: () => void) => void }, handler: Handler): Promise<LoadOptions> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    handler(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.teardown(() => {
    server.close();
    // The load generator closes its own connections; anything left is cut here.
    server.unref();
  });
  const { port } = server.address() as net.AddressInfo;
  return { host: '127.0.0.1', port, connections: 3, seconds: 0.3, warmupSeconds: 0 };
}

const echo: Handler = (socket) => socket.pipe(socket);

/** Every connection starts with a 16-byte greeting; the byte offsets in errors count from after it. */
const GREETING = 16;

/** Echoes, but flips one byte once `after` bytes have gone by. */
const corruptAfter =
  (after: number): Handler =>
  (socket) => {
    let seen = 0;
    socket.on('data', (data: Buffer) => {
      const copy = Buffer.from(data);
      if (seen <= after && after < seen + copy.length) copy[after - seen]! ^= 0x01;
      seen += copy.length;
      socket.write(copy);
    });
    socket.on('end', () => socket.end());
  };

const throughput = { chunkBytes: 64 * 1024, windowBytes: 256 * 1024 };

t.test('measureThroughput() reports MiB/s and no errors for a correct echo', async (t) => {
  const options = await serve(t, echo);
  const result = await measureThroughput({ ...options, ...throughput });
  t.same(result.errors, []);
  t.ok(result.bytes > 0 && result.mibPerSecond > 0, `${result.mibPerSecond} MiB/s`);
  t.equal(result.connections, 3);
});

t.test('measureThroughput() reports a byte flipped by the server', async (t) => {
  const options = await serve(t, corruptAfter(GREETING + 100_000));
  const result = await measureThroughput({ ...options, ...throughput });
  t.match(result.errors.join('\n'), /echo differs from what was sent at byte 100000/);
});

t.test('measureThroughput() reports bytes the server leaves out', async (t) => {
  // Echoes everything but bytes 100000-100009 of each connection: the rest arrives shifted.
  const options = await serve(t, (socket) => {
    let seen = 0;
    socket.on('data', (data: Buffer) => {
      const kept = Buffer.concat([data.subarray(0, Math.max(0, GREETING + 100_000 - seen)), data.subarray(Math.max(0, GREETING + 100_010 - seen))]);
      seen += data.length;
      socket.write(kept);
    });
  });
  const result = await measureThroughput({ ...options, ...throughput });
  // The payload is random, so the first shifted byte can equal the one it replaces (1 in 256):
  // the difference is found at byte 100000 or a few bytes later, on every connection.
  const report = result.errors.join('\n');
  const connections = new Set<number>();
  // One line per distinct message: "connection 2: …" or "2 connections (0, 1): …".
  for (const match of report.matchAll(/(?:connection (\d+)|\d+ connections \(([\d, ]+)\)): echo differs from what was sent at byte (\d+)/g)) {
    const offset = Number(match[3]);
    t.ok(offset >= 100_000 && offset < 100_010, `difference reported at byte ${offset}`);
    for (const id of (match[1] ?? match[2] ?? '').split(',')) connections.add(Number(id.trim()));
  }
  t.same([...connections].sort(), [0, 1, 2], report);
});

t.test('measureRoundTrips() reports round trips and their median for a correct echo', async (t) => {
  const options = await serve(t, echo);
  const result = await measureRoundTrips({ ...options, messageBytes: 64 });
  t.same(result.errors, []);
  t.ok(result.roundTrips > 0 && result.roundTripsPerSecond > 0);
  t.ok(result.medianUs !== null && result.medianUs > 0 && result.p99Us !== null && result.p99Us >= result.medianUs);
});

t.test('measureRoundTrips() reports a server that echoes twice', async (t) => {
  const options = await serve(t, (socket) => {
    socket.on('data', (data: Buffer) => socket.write(Buffer.concat([data, data])));
  });
  const result = await measureRoundTrips({ ...options, messageBytes: 64, connectTimeoutMs: 1000 });
  t.match(result.errors.join('\n'), /more than were sent|greeting echoed wrong/);
});

t.test('measureRoundTrips() reports a corrupted message', async (t) => {
  const options = await serve(t, corruptAfter(GREETING + 5));
  const result = await measureRoundTrips({ ...options, messageBytes: 64 });
  t.match(result.errors.join('\n'), /echo differs from what was sent at byte 5/);
});

t.test('median() and quantile() of run figures', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median([]), undefined);
  t.equal(quantile([5, 1, 4, 2, 3], 0.5), 3);
  t.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10);
  t.throws(() => quantile([1], 2), RangeError);
});
