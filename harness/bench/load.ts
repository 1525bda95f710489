/**
 * Load generator for the echo benchmark: opens C connections to an echo
 * server and measures, for S seconds after a short warm-up, either how much
 * data comes back (`throughput`) or how fast one small message makes the
 * round trip (`rtt`). Every byte that comes back is compared with the byte
 * that was sent: a fast but wrong echo is reported as an error, not a figure.
 *
 * ```sh
 * npx tsx harness/bench/load.ts --port 7007 --mode throughput --connections 100 --seconds 3
 * npx tsx harness/bench/load.ts --port 7007 --mode rtt --connections 1
 * ```
 *
 * Prints one JSON line on stdout (a {@link LoadResult}) and exits 0 when
 * every connection echoed exactly what it was sent, 1 otherwise (the line
 * then lists the errors). It runs as a process of its own so that the
 * benchmark's driver, which samples the server's memory, is not measured.
 *
 * @module
 */
import { randomBytes, randomInt } from 'node:crypto';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import pLimit from 'p-limit';
import { UsageError, defineCommand, parseHost, parsePort, parsePositive } from '../../lib/cli.ts';
import { isMain, runMain } from '../../lib/main.ts';
import { median, quantile } from './stats.ts';

/** What both modes need to know. */
export interface LoadOptions {
  host: string;
  port: number;
  connections: number;
  /** Length of the measurement, after the warm-up. */
  seconds: number;
  /** Load applied but not counted, so that the measurement starts warm (JIT, buffers). */
  warmupSeconds: number;
  /** How long connecting all the connections and the first echo on each may take (default 15 s). */
  connectTimeoutMs?: number;
}

/** Options of {@link measureThroughput}. */
export interface ThroughputOptions extends LoadOptions {
  /** Bytes per write (64 KiB in the benchmark). */
  chunkBytes: number;
  /** Most bytes a connection may have sent and not yet seen echoed (a whole number of chunks). */
  windowBytes: number;
}

/** Options of {@link measureRoundTrips}. */
export interface RoundTripOptions extends LoadOptions {
  /** Size of the ping-pong message (64 bytes in the benchmark; at least 8). */
  messageBytes: number;
}

interface ResultBase {
  connections: number;
  /** Length of the measurement as it really was (timers run late under load). */
  seconds: number;
  /** Empty when every byte came back as it was sent. */
  errors: string[];
}

/** The line `load.ts --mode throughput` prints. */
export interface ThroughputResult extends ResultBase {
  mode: 'throughput';
  /** Bytes echoed and verified during the measurement, all connections together. */
  bytes: number;
  mibPerSecond: number;
}

/** The line `load.ts --mode rtt` prints. */
export interface RoundTripResult extends ResultBase {
  mode: 'rtt';
  /** Round trips completed during the measurement, all connections together. */
  roundTrips: number;
  roundTripsPerSecond: number;
  medianUs: number | null;
  p99Us: number | null;
}

/** What `load.ts` prints, in either mode. */
export type LoadResult = ThroughputResult | RoundTripResult;

/** Sent first on every connection; its echo proves the server has accepted the connection. */
const GREETING_BYTES = 16;
/**
 * Connections being set up at once. socat listens with a backlog of 5: a
 * burst of 100 SYNs overflows it, and the dropped ones are retried after 1,
 * 3, 7, 15 s, which would measure Linux's SYN back-off rather than the echo.
 */
const CONNECT_CONCURRENCY = 4;
/** How long the echo of what is in flight may take once sending stops. */
const DRAIN_TIMEOUT_MS = 10_000;
/** How long a server may take to close after the client's FIN (socat waits 0.5 s). */
const CLOSE_TIMEOUT_MS = 3_000;
/** One broken server could produce a million different lines; the first few say it all. */
const MAX_ERRORS = 20;

/**
 * The errors of one run. The same error on many connections (a timeout on
 * all hundred) is one line naming how many; at most {@link MAX_ERRORS}
 * different lines are kept, plus a count of the rest.
 */
class ErrorLog {
  readonly #connections = new Map<string, number[]>();
  #dropped = 0;
  #count = 0;

  /** Records `message`, for one `connection` or (without it) for the run as a whole. */
  add(message: string, connection?: number): void {
    this.#count++;
    let ids = this.#connections.get(message);
    if (!ids) {
      if (this.#connections.size >= MAX_ERRORS) {
        this.#dropped++;
        return;
      }
      ids = [];
      this.#connections.set(message, ids);
    }
    if (connection !== undefined) ids.push(connection);
  }

  get count(): number {
    return this.#count;
  }

  list(): string[] {
    const lines = [...this.#connections].map(([message, ids]) => {
      if (ids.length === 0) return message;
      if (ids.length === 1) return `connection ${ids[0]}: ${message}`;
      const some = ids.slice(0, 5).join(', ') + (ids.length > 5 ? ', …' : '');
      return `${ids.length} connections (${some}): ${message}`;
    });
    return this.#dropped ? [...lines, `… and ${this.#dropped} more errors`] : lines;
  }
}

function describeError(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  return code ?? (error instanceof Error ? message : String(error));
}

/** One client connection, with the listeners that turn every surprise into an error line. */
class Connection {
  readonly id: number;
  readonly socket: net.Socket;
  /** Resolves when the socket has closed, for whatever reason. */
  readonly closed: Promise<void>;
  /** Set once the client ends the connection itself, so that the close that follows is no error. */
  ending = false;
  readonly #errors: ErrorLog;

  constructor(id: number, host: string, port: number, errors: ErrorLog) {
    this.id = id;
    this.#errors = errors;
    // Small writes must leave at once: rtt mode measures latency, not Nagle's algorithm.
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('error', (error) => this.#errors.add(describeError(error), id));
    this.closed = new Promise((resolve) => {
      this.socket.once('close', () => {
        if (!this.ending) this.#errors.add('closed by the server', id);
        resolve();
      });
    });
  }

  /** Records `message` as this connection's error and drops the connection. */
  fail(message: string): void {
    this.#errors.add(message, this.id);
    this.ending = true;
    this.socket.destroy();
  }

  /**
   * Sends the greeting and waits for its echo, then pauses the socket for
   * the mode to take over. Resolves false (the error recorded) on a wrong
   * echo, a close or a timeout. Waiting for an echo rather than for
   * `connect` matters: a server with a short listen backlog (socat's is 5)
   * completes handshakes it has not accepted yet, and the time it takes to
   * catch up must not be counted as echo time.
   */
  greet(timeoutMs: number, setupSeconds: number): Promise<boolean> {
    const greeting = Buffer.from(`greeting #${this.id}`.padEnd(GREETING_BYTES, '.').slice(0, GREETING_BYTES));
    let echoed = Buffer.alloc(0);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.socket.off('data', onData);
        this.socket.pause();
        resolve(ok);
      };
      const onData = (data: Buffer) => {
        echoed = Buffer.concat([echoed, data]);
        if (echoed.length < greeting.length) return;
        if (echoed.equals(greeting)) return finish(true);
        this.fail(`greeting echoed wrong: sent ${JSON.stringify(greeting.toString('latin1'))}, got ${JSON.stringify(echoed.toString('latin1'))}`);
        finish(false);
      };
      const timer = setTimeout(() => {
        this.fail(`no echo of the greeting within the ${setupSeconds} s all connections have to get one`);
        finish(false);
      }, timeoutMs);
      void this.closed.then(() => finish(false));
      this.socket.on('data', onData);
      this.socket.write(greeting);
    });
  }

  /** Ends the connection (FIN) and waits for the server to close its side, destroying it after `timeoutMs`. */
  async end(timeoutMs: number): Promise<void> {
    this.ending = true;
    this.socket.end();
    const timer = delay(timeoutMs, undefined, { ref: false });
    await Promise.race([this.closed, timer]);
    this.socket.destroy();
  }
}

/**
 * Opens every connection, a few at a time, and greets it; returns them all,
 * with any failure in `errors`. The timeout covers the whole set.
 */
async function openConnections(options: LoadOptions, errors: ErrorLog): Promise<Connection[]> {
  const timeoutMs = options.connectTimeoutMs ?? 15_000;
  const deadline = performance.now() + timeoutMs;
  const limit = pLimit(CONNECT_CONCURRENCY);
  return limit.map(Array.from({ length: options.connections }, (_, id) => id), async (id) => {
    const connection = new Connection(id, options.host, options.port, errors);
    await connection.greet(Math.max(0, deadline - performance.now()), timeoutMs / 1000);
    return connection;
  });
}

async function closeAll(connections: Connection[]): Promise<void> {
  await Promise.all(connections.map((connection) => connection.end(CLOSE_TIMEOUT_MS)));
}

/** Resolves when every promise has, or after `ms` with false. */
async function allWithin(promises: Promise<unknown>[], ms: number): Promise<boolean> {
  const timeout = delay(ms, false, { ref: false });
  return Promise.race([Promise.all(promises).then(() => true), timeout]);
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Runs the warm-up, then calls `snapshot` at the start and at the end of the
 * measured span, each in one synchronous step so that no data event falls
 * between reading the clock and reading the counters.
 */
async function measureSpan(options: LoadOptions, snapshot: (phase: 'start' | 'end') => void): Promise<number> {
  await delay(options.warmupSeconds * 1000);
  const started = performance.now();
  snapshot('start');
  await delay(options.seconds * 1000);
  snapshot('end');
  return (performance.now() - started) / 1000;
}

/**
 * Measures echoed throughput: every connection keeps writing `chunkBytes`
 * chunks while fewer than `windowBytes` are unechoed, and checks each
 * returned byte against what it sent. Each chunk starts with the connection
 * number and the chunk's sequence number, over random bytes, so a dropped,
 * repeated, reordered or misrouted chunk shows as a difference.
 */
export async function measureThroughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const { chunkBytes } = options;
  const errors = new ErrorLog();
  const result = (bytes: number, seconds: number): ThroughputResult => ({
    mode: 'throughput',
    connections: options.connections,
    seconds,
    bytes,
    mibPerSecond: seconds > 0 ? bytes / 2 ** 20 / seconds : 0,
    errors: errors.list(),
  });
  const connections = await openConnections(options, errors);
  if (errors.count > 0) {
    await closeAll(connections);
    return result(0, 0);
  }

  // A chunk's buffer is reused only after it has all come back, so the ring
  // holding the unechoed chunks is both the send buffer and the expected
  // echo: no copy per write, and the comparison is exact.
  const slots = Math.max(1, Math.floor(options.windowBytes / chunkBytes));
  const window = slots * chunkBytes;
  const random = randomBytes(2 * chunkBytes);
  let sending = true;

  const streams = connections.map((connection) => {
    const ring = Array.from({ length: slots }, () => {
      const start = randomInt(chunkBytes + 1);
      return Buffer.from(random.subarray(start, start + chunkBytes));
    });
    let sent = 0;
    let received = 0;
    let sequence = 0;
    let onDrained: (() => void) | undefined;
    const drained = new Promise<void>((resolve) => {
      onDrained = resolve;
    });
    void connection.closed.then(() => onDrained?.());

    const pump = () => {
      while (sending && sent + chunkBytes - received <= window) {
        const chunk = ring[sequence % slots]!;
        chunk.writeUInt32BE(connection.id, 0);
        chunk.writeUInt32BE(sequence >>> 0, 4);
        connection.socket.write(chunk);
        sequence++;
        sent += chunkBytes;
      }
      if (!sending && received === sent) onDrained?.();
    };

    connection.socket.on('data', (data: Buffer) => {
      let at = 0;
      while (at < data.length) {
        const offset = received % chunkBytes;
        const length = Math.min(chunkBytes - offset, data.length - at);
        if (received + length > sent) {
          connection.fail(`echoed ${received + data.length - at - sent} bytes more than were sent`);
          return;
        }
        const expected = ring[Math.floor(received / chunkBytes) % slots]!.subarray(offset, offset + length);
        const actual = data.subarray(at, at + length);
        if (!expected.equals(actual)) {
          connection.fail(`echo differs from what was sent at byte ${received + firstDifference(expected, actual)}`);
          return;
        }
        at += length;
        received += length;
      }
      pump();
    });

    return {
      start: () => {
        connection.socket.resume();
        pump();
      },
      received: () => received,
      unechoed: () => sent - received,
      stop: () => {
        pump();
        return drained;
      },
    };
  });

  for (const stream of streams) stream.start();
  const total = () => streams.reduce((sum, stream) => sum + stream.received(), 0);
  let startBytes = 0;
  let bytes = 0;
  const seconds = await measureSpan(options, (phase) => {
    if (phase === 'start') startBytes = total();
    else bytes = total() - startBytes;
  });

  sending = false;
  if (!(await allWithin(streams.map((stream) => stream.stop()), DRAIN_TIMEOUT_MS))) {
    const missing = streams.reduce((sum, stream) => sum + stream.unechoed(), 0);
    errors.add(`${missing} bytes sent were not echoed back within ${DRAIN_TIMEOUT_MS / 1000} s`);
  }
  await closeAll(connections);
  return result(bytes, seconds);
}

/**
 * Measures round trips: every connection sends a `messageBytes` message,
 * waits for all of it to come back (checked byte for byte; the message
 * carries the connection and a sequence number), and sends the next at once.
 * Reports round trips per second over all connections and the median and
 * 99th percentile of the individual round-trip times.
 */
export async function measureRoundTrips(options: RoundTripOptions): Promise<RoundTripResult> {
  const { messageBytes } = options;
  if (!(messageBytes >= 8)) throw new RangeError(`Cannot measure round trips: expected a message of at least 8 bytes, got ${messageBytes}`);
  const errors = new ErrorLog();
  // Microseconds of the round trips completed during the measured span.
  const samples: number[] = [];
  const result = (seconds: number): RoundTripResult => ({
    mode: 'rtt',
    connections: options.connections,
    seconds,
    roundTrips: samples.length,
    roundTripsPerSecond: seconds > 0 ? samples.length / seconds : 0,
    medianUs: median(samples) ?? null,
    p99Us: quantile(samples, 0.99) ?? null,
    errors: errors.list(),
  });
  const connections = await openConnections(options, errors);
  if (errors.count > 0) {
    await closeAll(connections);
    return result(0);
  }

  let sending = true;
  let recording = false;
  const finished = connections.map((connection) => {
    const message = randomBytes(messageBytes);
    message.writeUInt32BE(connection.id, 0);
    let sequence = 0;
    let got = 0;
    let sentAt = 0;
    return new Promise<void>((resolve) => {
      void connection.closed.then(resolve);
      const send = () => {
        if (!sending) return resolve();
        message.writeUInt32BE(sequence >>> 0, 4);
        got = 0;
        sentAt = performance.now();
        connection.socket.write(message);
      };
      connection.socket.on('data', (data: Buffer) => {
        if (got + data.length > messageBytes) {
          connection.fail(`echoed ${got + data.length - messageBytes} bytes more than were sent`);
          return;
        }
        const expected = message.subarray(got, got + data.length);
        if (!expected.equals(data)) {
          connection.fail(`echo differs from what was sent at byte ${sequence * messageBytes + got + firstDifference(expected, data)}`);
          return;
        }
        got += data.length;
        if (got < messageBytes) return;
        if (recording) samples.push((performance.now() - sentAt) * 1000);
        sequence++;
        send();
      });
      connection.socket.resume();
      send();
    });
  });

  const seconds = await measureSpan(options, (phase) => {
    recording = phase === 'start';
  });
  sending = false;
  if (!(await allWithin(finished, DRAIN_TIMEOUT_MS))) {
    errors.add(`a round trip did not complete within ${DRAIN_TIMEOUT_MS / 1000} s of the end`);
  }
  await closeAll(connections);
  return result(seconds);
}

/** Reads a byte count or seconds value that may be zero (a warm-up can be skipped). */
function parseNonNegative(text: string, option: string): number {
  if (!/^(\d+\.?\d*|\.\d+)$/.test(text)) {
    throw new UsageError(`argument --${option}: expected a number >= 0, got '${text}'`);
  }
  return Number(text);
}

const command = defineCommand({
  name: 'load.ts',
  summary: 'Load generator for the echo benchmark: prints one JSON line with the figures and any echo errors.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'echo server address' },
    port: { type: 'string', required: true, help: 'echo server port' },
    mode: { type: 'string', default: 'throughput', help: 'throughput (MiB/s echoed) or rtt (round trips/s and their times)' },
    connections: { type: 'string', default: '1', metavar: 'C', help: 'concurrent connections' },
    seconds: { type: 'string', default: '3', metavar: 'S', help: 'length of the measurement' },
    warmup: { type: 'string', default: '0.5', metavar: 'S', help: 'load applied before the measurement, not counted' },
    chunk: { type: 'string', default: '65536', metavar: 'BYTES', help: 'throughput: bytes per write' },
    window: { type: 'string', default: '1048576', metavar: 'BYTES', help: 'throughput: most unechoed bytes per connection' },
    size: { type: 'string', default: '64', metavar: 'BYTES', help: 'rtt: message size (at least 8)' },
  },
  epilog: 'Exit status: 0 when every byte came back as sent, 1 when the JSON line lists errors, 2 for a bad option.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const common: LoadOptions = {
    host: parseHost(opts.host),
    port: parsePort(opts.port),
    connections: parsePositive(opts.connections, 'connections', { integer: true }),
    seconds: parsePositive(opts.seconds, 'seconds'),
    warmupSeconds: parseNonNegative(opts.warmup, 'warmup'),
  };
  let result: LoadResult;
  if (opts.mode === 'throughput') {
    const chunkBytes = parsePositive(opts.chunk, 'chunk', { integer: true });
    const windowBytes = parsePositive(opts.window, 'window', { integer: true });
    if (windowBytes < chunkBytes) throw new UsageError(`argument --window: expected at least one chunk (${chunkBytes}), got ${windowBytes}`);
    result = await measureThroughput({ ...common, chunkBytes, windowBytes });
  } else if (opts.mode === 'rtt') {
    const messageBytes = parsePositive(opts.size, 'size', { integer: true });
    if (messageBytes < 8) throw new UsageError(`argument --size: expected at least 8 bytes, got ${messageBytes}`);
    result = await measureRoundTrips({ ...common, messageBytes });
  } else {
    throw new UsageError(`argument --mode: expected throughput or rtt, got '${opts.mode}'`);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.errors.length > 0 ? 1 : 0;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
