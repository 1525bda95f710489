/**
 * A userspace UDP impairment relay: a path with known faults between a
 * client and a server on loopback, so that an RTT meter (ej04) can be checked
 * against a delay it did not know, Cristian's algorithm (ej10) against
 * symmetric and asymmetric legs and a lost reply, and a reliable transport
 * (ej11) against losses, duplicates and reordering it must survive.
 *
 * ```text
 *   client ──▶ relay front port ──(forward faults)──▶ server
 *   client ◀── relay front port ◀─(backward faults)── server
 * ```
 *
 * Every client address gets its own socket towards the server (a small NAT),
 * so the server sees as many peers as there are clients. Each direction has
 * its own faults: a delay (fixed plus uniform jitter), a loss rate, a
 * duplication rate and a reordering rate (a reordered datagram is held back
 * by an extra delay, so later ones overtake it). The random choices come from
 * a seeded generator (mulberry32), so a run can be repeated; a `drop`
 * selector loses chosen datagrams (the n-th request, the n-th reply) without
 * chance. The relay counts what it received, dropped, duplicated, reordered
 * and delivered.
 *
 * Delays come from timers, so they are late by the event loop's jitter: tens
 * of microseconds on an idle machine, a millisecond or two on a busy one.
 * They are never early: a timer that fires before its datagram's time (Node
 * counts timers in whole milliseconds of loop time) is set again for the
 * rest. With `recordDelays` the relay keeps the delay each datagram really
 * got, from its arrival to its sending, so a scenario can report it.
 *
 * ```sh
 * npx tsx harness/relay.ts --listen 9000 --to 127.0.0.1:7007 --delay 20 --jitter 5 --loss 0.1
 * ```
 *
 * @module
 */
import dgram from 'node:dgram';
import { defineCommand, parseHost, parsePort, UsageError } from '../lib/cli.ts';
import { isMain, runMain } from '../lib/main.ts';
import { onShutdown, readyLine } from '../lib/server.ts';

/** The faults applied to one direction of the path. Rates are probabilities 0–1. */
export interface Faults {
  /** Added one-way delay, milliseconds. */
  delayMs?: number;
  /** Uniform jitter: each datagram's delay is `delayMs ± jitterMs` (never below 0). */
  jitterMs?: number;
  loss?: number;
  duplicate?: number;
  reorder?: number;
  /** Extra hold of a reordered datagram, milliseconds (default 2 × jitter + 5). */
  reorderDelayMs?: number;
  /**
   * Drops the n-th datagram of this direction (1-based, counted from the
   * relay's start, dropped ones included) when it returns true, whatever the
   * rates say; e.g. `(n) => n === 1` loses the first reply.
   */
  drop?: (n: number) => boolean;
}

/** What the relay did in one direction. */
export interface DirectionCounters {
  received: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  /** Datagrams held back before delivery (delay, jitter or reordering). */
  delayed: number;
  /** Datagrams handed on (duplicates included). */
  delivered: number;
  bytes: number;
}

/** Options of {@link startRelay}. */
export interface RelayOptions {
  /** Where the server listens. */
  target: { host: string; port: number };
  /** Address and port of the relay's front socket (port 0: a free one). */
  listenHost?: string;
  listenPort?: number;
  /** Client → server faults. */
  forward?: Faults;
  /** Server → client faults. */
  backward?: Faults;
  /** Seed of the random choices; equal seeds give equal fault sequences. */
  seed?: number;
  /** Keep the delay each delivered datagram really got, in {@link Relay.appliedDelays} (default false). */
  recordDelays?: boolean;
}

/** A running relay. */
export interface Relay {
  /** Where clients send (the relay's front socket). */
  host: string;
  port: number;
  readonly counters: { forward: DirectionCounters; backward: DirectionCounters };
  /**
   * With `recordDelays`: per direction, in delivery order, the milliseconds
   * from each datagram's arrival at the relay to its sending on (duplicates
   * included, dropped ones not). Empty without `recordDelays`.
   */
  readonly appliedDelays: { forward: number[]; backward: number[] };
  /** Changes the faults of a direction from now on. */
  setFaults(direction: 'forward' | 'backward', faults: Faults): void;
  /** Stops relaying; datagrams still held are dropped. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * mulberry32: a small, fast 32-bit generator, good enough to draw faults
 * (not for cryptography). Returns a function giving floats in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One datagram's fate: delivered after these delays (empty: dropped). */
export interface Fate {
  delays: number[];
  reordered: boolean;
}

/**
 * Decides what happens to one datagram under `faults`, drawing from
 * `random`: dropped, delivered once or twice (a duplicate), each copy with
 * its own jittered delay, held back when reordered. Pure, for tests.
 */
export function decideFate(faults: Faults, random: () => number): Fate {
  const { delayMs = 0, jitterMs = 0, loss = 0, duplicate = 0, reorder = 0 } = faults;
  const reorderDelayMs = faults.reorderDelayMs ?? 2 * jitterMs + 5;
  // Always draw the same number of values, so one rate does not shift the others' sequence.
  const [lossDraw, dupDraw, reorderDraw, jitter1, jitter2] = [random(), random(), random(), random(), random()];
  if (lossDraw < loss) return { delays: [], reordered: false };
  const reordered = reorderDraw < reorder;
  const one = (draw: number) => Math.max(0, delayMs + (draw * 2 - 1) * jitterMs + (reordered ? reorderDelayMs : 0));
  const delays = [one(jitter1)];
  if (dupDraw < duplicate) delays.push(Math.max(0, delayMs + (jitter2 * 2 - 1) * jitterMs));
  return { delays, reordered };
}

function emptyCounters(): DirectionCounters {
  return { received: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0, delivered: 0, bytes: 0 };
}

function checkFaults(faults: Faults, where: string): Faults {
  for (const key of ['loss', 'duplicate', 'reorder'] as const) {
    const value = faults[key];
    if (value !== undefined && !(value >= 0 && value <= 1)) throw new RangeError(`Relay ${where} ${key}: expected a rate 0–1, got ${value}`);
  }
  for (const key of ['delayMs', 'jitterMs', 'reorderDelayMs'] as const) {
    const value = faults[key];
    if (value !== undefined && !(value >= 0)) throw new RangeError(`Relay ${where} ${key}: expected milliseconds ≥ 0, got ${value}`);
  }
  if (faults.drop !== undefined && typeof faults.drop !== 'function') throw new TypeError(`Relay ${where} drop: expected a function of n, got ${typeof faults.drop}`);
  return { ...faults };
}

function bind(socket: dgram.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: host, port }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

/**
 * Starts a relay in front of `target` and resolves once it listens. Close it
 * with {@link Relay.close} (a test registers that in its teardown).
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const listenHost = options.listenHost ?? '127.0.0.1';
  const faults = { forward: checkFaults(options.forward ?? {}, 'forward'), backward: checkFaults(options.backward ?? {}, 'backward') };
  const random = seededRandom(options.seed ?? 1);
  const counters = { forward: emptyCounters(), backward: emptyCounters() };
  const appliedDelays = { forward: [] as number[], backward: [] as number[] };
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const family = listenHost.includes(':') ? 'udp6' : 'udp4';
  const front = dgram.createSocket({ type: family, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const backs = new Map<string, Promise<dgram.Socket>>();
  let closed = false;

  /** Runs `fn` once `deadline` (a performance.now() time) has passed, never before. */
  const at = (deadline: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (performance.now() < deadline) at(deadline, fn);
      else fn();
    }, Math.max(0, deadline - performance.now()));
    timers.add(timer);
  };

  const pass = (direction: 'forward' | 'backward', message: Buffer, arrived: number, send: (message: Buffer) => void) => {
    const count = counters[direction];
    count.received++;
    count.bytes += message.length;
    const selected = faults[direction].drop?.(count.received) ?? false;
    // Drawn even for a selected drop, so a selector does not shift the random sequence
    // (of this direction's datagrams; the generator is shared, and a lost request sends no reply).
    const fate = decideFate(faults[direction], random);
    if (selected || fate.delays.length === 0) {
      count.dropped++;
      return;
    }
    if (fate.reordered) count.reordered++;
    if (fate.delays.length > 1) count.duplicated++;
    if (fate.delays.some((delay) => delay > 0)) count.delayed++;
    for (const delay of fate.delays) {
      const deliver = () => {
        if (closed) return;
        count.delivered++;
        if (options.recordDelays) appliedDelays[direction].push(performance.now() - arrived);
        send(message);
      };
      if (delay === 0) deliver();
      else at(arrived + delay, deliver);
    }
  };

  const backFor = (address: string, port: number): Promise<dgram.Socket> => {
    const key = `${address}|${port}`;
    let back = backs.get(key);
    if (!back) {
      back = (async () => {
        const socket = dgram.createSocket({ type: family, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
        socket.on('error', () => {}); // ICMP unreachable from a stopped server: UDP goes on
        socket.on('message', (message) => {
          pass('backward', message, performance.now(), (m) => front.send(m, port, address, () => {}));
        });
        await bind(socket, listenHost, 0);
        return socket;
      })();
      backs.set(key, back);
    }
    return back;
  };

  front.on('error', () => {});
  front.on('message', (message, from) => {
    const arrived = performance.now();
    void backFor(from.address, from.port).then((back) => {
      pass('forward', message, arrived, (m) => {
        if (!closed) back.send(m, options.target.port, options.target.host, () => {});
      });
    });
  });
  await bind(front, listenHost, options.listenPort ?? 0);
  const { address, port } = front.address();

  return {
    host: address,
    port,
    counters,
    appliedDelays,
    setFaults(direction, next) {
      faults[direction] = checkFaults(next, direction);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const sockets = [front, ...(await Promise.all(backs.values()))];
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}

/** Formats one direction's counters: `received 1000, dropped 98, delayed 902, duplicated 0, reordered 0, delivered 902`. */
export function formatCounters(c: DirectionCounters): string {
  return `received ${c.received}, dropped ${c.dropped}, delayed ${c.delayed}, duplicated ${c.duplicated}, reordered ${c.reordered}, delivered ${c.delivered}`;
}

const command = defineCommand({
  name: 'relay.ts',
  summary: 'UDP impairment relay: forwards datagrams to --to, with delay, jitter, loss, duplication and reordering.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '0', help: 'port to listen on; 0 picks a free one' },
    to: { type: 'string', required: true, metavar: 'HOST:PORT', help: 'the server to relay to' },
    delay: { type: 'string', default: '0', metavar: 'MS', help: 'one-way delay added in each direction, ms' },
    jitter: { type: 'string', default: '0', metavar: 'MS', help: 'uniform jitter ± ms' },
    loss: { type: 'string', default: '0', metavar: 'RATE', help: 'loss rate 0–1 in each direction' },
    duplicate: { type: 'string', default: '0', metavar: 'RATE', help: 'duplication rate 0–1' },
    reorder: { type: 'string', default: '0', metavar: 'RATE', help: 'reordering rate 0–1' },
    seed: { type: 'string', default: '1', help: 'seed of the random choices' },
  },
  epilog: 'Prints "listening on HOST:PORT (udp)" when ready; counters on stderr at Ctrl-C.',
});

function rate(text: string, option: string, max = 1): number {
  const value = Number(text);
  if (!/^(\d+\.?\d*|\.\d+)$/.test(text) || value > max) throw new UsageError(`argument --${option}: expected a number 0-${max}, got '${text}'`);
  return value;
}

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const match = /^(.+):(\d+)$/.exec(opts.to);
  if (!match) throw new UsageError(`argument --to: expected HOST:PORT, got '${opts.to}'`);
  const faults: Faults = {
    delayMs: rate(opts.delay, 'delay', 60_000),
    jitterMs: rate(opts.jitter, 'jitter', 60_000),
    loss: rate(opts.loss, 'loss'),
    duplicate: rate(opts.duplicate, 'duplicate'),
    reorder: rate(opts.reorder, 'reorder'),
  };
  const relay = await startRelay({
    target: { host: parseHost(match[1] as string, 'to'), port: parsePort(match[2] as string, 'to') },
    listenHost: parseHost(opts.host),
    listenPort: parsePort(opts.port),
    forward: faults,
    backward: faults,
    seed: Number(rate(opts.seed, 'seed', 2 ** 32)),
  });
  onShutdown(async () => {
    process.stderr.write(`forward: ${formatCounters(relay.counters.forward)}\nbackward: ${formatCounters(relay.counters.backward)}\n`);
    await relay.close();
  });
  console.log(readyLine({ address: relay.host, port: relay.port, family: 'IPv4' }, 'udp'));
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
