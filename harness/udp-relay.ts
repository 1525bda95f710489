/**
 * A UDP relay for scenarios: clients talk to the relay, the relay talks to
 * the server, and each direction can be delayed by a known amount or lose
 * chosen datagrams. It measures what a path does to a protocol (Cristian's
 * algorithm under symmetric and asymmetric delay, a retry after a loss)
 * without root or a network namespace.
 *
 * Delays come from timers, so they are off by the event loop's jitter:
 * late by tens of microseconds on an idle machine and a millisecond or two
 * when it is busy, and in Node up to a millisecond early (its timers count
 * whole milliseconds of loop time). The relay records the delays it really
 * applied, so a scenario can report them.
 *
 * @module
 */
import dgram from 'node:dgram';

/** Options of {@link startUdpRelay}. */
export interface RelayOptions {
  target: { host: string; port: number };
  /** Extra delay on the way to the server, in milliseconds. */
  toServerMs?: number;
  /** Extra delay on the way back to the client, in milliseconds. */
  toClientMs?: number;
  /** Drop the n-th request (1-based) when this returns true. */
  dropRequest?: (n: number) => boolean;
  /** Drop the n-th reply (1-based) when this returns true. */
  dropReply?: (n: number) => boolean;
}

/** A running relay and what passed through it. */
export interface UdpRelay {
  host: string;
  port: number;
  /** Requests received from clients / replies received from the server. */
  requests: number;
  replies: number;
  droppedRequests: number;
  droppedReplies: number;
  /** The delays really applied, per direction (timer lateness included). */
  appliedToServerMs: number[];
  appliedToClientMs: number[];
  close(): Promise<void>;
}

const bind = (socket: dgram.Socket, host: string) =>
  new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });

/** Starts a relay on an ephemeral loopback port in front of `target`. */
export async function startUdpRelay({ target, toServerMs = 0, toClientMs = 0, dropRequest, dropReply }: RelayOptions): Promise<UdpRelay> {
  const host = '127.0.0.1';
  const front = dgram.createSocket('udp4');
  await bind(front, host);
  // One upstream socket per client, so replies find their way back.
  const upstreams = new Map<string, dgram.Socket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let closed = false;
  const later = (ms: number, applied: number[], fn: () => void) => {
    const start = performance.now();
    const run = () => {
      applied.push(performance.now() - start);
      if (!closed) fn();
    };
    if (ms <= 0) return run();
    const timer = setTimeout(() => {
      timers.delete(timer);
      run();
    }, ms);
    timers.add(timer);
  };

  const relay: UdpRelay = {
    host,
    port: front.address().port,
    requests: 0,
    replies: 0,
    droppedRequests: 0,
    droppedReplies: 0,
    appliedToServerMs: [],
    appliedToClientMs: [],
    async close() {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      await Promise.all([front, ...upstreams.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };

  front.on('message', async (message, client) => {
    relay.requests += 1;
    if (dropRequest?.(relay.requests)) {
      relay.droppedRequests += 1;
      return;
    }
    const key = `${client.address}:${client.port}`;
    let upstream = upstreams.get(key);
    if (!upstream) {
      upstream = dgram.createSocket('udp4');
      upstreams.set(key, upstream);
      upstream.on('error', () => {});
      upstream.on('message', (reply) => {
        relay.replies += 1;
        if (dropReply?.(relay.replies)) {
          relay.droppedReplies += 1;
          return;
        }
        later(toClientMs, relay.appliedToClientMs, () => front.send(reply, client.port, client.address));
      });
      await bind(upstream, host);
    }
    const socket = upstream;
    later(toServerMs, relay.appliedToServerMs, () => socket.send(message, target.port, target.host));
  });
  front.on('error', () => {});
  return relay;
}
