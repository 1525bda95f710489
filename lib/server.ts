/**
 * What every server in the suite does the same way: announce where it
 * listens in one line the harness can wait for, and stop cleanly on Ctrl-C.
 *
 * @module
 */
import type dgram from 'node:dgram';
import { type AddressInfo, isIP } from 'node:net';
import type net from 'node:net';
import { formatAddress } from './cli.ts';
import { describeBindError } from './net-errors.ts';

/** The pattern of a ready line, for the harness and tests that wait for it. */
export const READY_LINE = /^listening on (\[[^\]]+\]|[^\s:]+):(\d+) \((tcp|udp)\)$/m;

/**
 * The one line a server prints on stdout once it listens, naming the address
 * it really bound, so a client can be started even after `--port 0`:
 * `listening on 127.0.0.1:40123 (tcp)`.
 */
export function readyLine(address: AddressInfo | string | null, protocol: 'tcp' | 'udp'): string {
  if (address === null || typeof address === 'string') {
    throw new TypeError(`Cannot announce a ${protocol} server: it is not bound to an IP address`);
  }
  return `listening on ${formatAddress(address.address, address.port)} (${protocol})`;
}

/**
 * A second SIGINT or SIGTERM this soon after the first is taken as the same
 * Ctrl-C, not as a second one: under `tsx` the terminal's Ctrl-C reaches the
 * script twice, once from the terminal (the whole process group gets it) and
 * once relayed by the tsx launcher a few milliseconds later.
 */
export const SIGNAL_ECHO_MS = 200;

/** Options of {@link onShutdown}. */
export interface ShutdownOptions {
  /** How long `stop` may take before the process exits anyway. */
  graceMs?: number;
  /** Told which signal arrived, and when the grace period ran out. */
  log?: (message: string) => void;
}

/**
 * Calls `stop` on the first SIGINT or SIGTERM, then lets the process end by
 * itself once its sockets are closed (exit code 0). A second signal, or a
 * `stop` that outlasts `graceMs`, exits at once with 130 — the only place a
 * server calls `process.exit()`. A second signal within {@link SIGNAL_ECHO_MS}
 * of the first is the same Ctrl-C and is ignored. Returns a function that
 * removes the handlers.
 */
export function onShutdown(stop: () => Promise<void> | void, { graceMs = 3000, log }: ShutdownOptions = {}): () => void {
  let stopping = false;
  let firstAt = 0;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      // The same Ctrl-C delivered twice (terminal and tsx launcher), not a second one.
      if (performance.now() - firstAt < SIGNAL_ECHO_MS) return;
      log?.(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    firstAt = performance.now();
    log?.(`${signal}: shutting down (${graceMs} ms grace)`);
    // unref: it must not keep a process alive that has finished closing, yet it
    // still fires while a stubborn socket keeps the event loop running.
    setTimeout(() => {
      log?.('grace period over: exiting with connections still open');
      process.exit(130);
    }, graceMs).unref();
    Promise.resolve()
      .then(stop)
      .then(
        () => {
          process.exitCode ??= 0;
          dispose();
        },
        (error: unknown) => {
          log?.(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
          process.exit(1);
        },
      );
  };
  const dispose = () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return dispose;
}

/** Options of {@link listenTcp} and {@link bindUdp}. */
export interface BindOptions {
  /** What to suggest when the address is in use (default: try --port 0). */
  inUse?: string;
}

/**
 * Starts a TCP server listening, rejecting with an error a user can
 * act on (address in use, port needs root, unknown host).
 */
export function listenTcp(server: net.Server, host: string, port: number, { inUse }: BindOptions = {}): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => reject(describeBindError(error, host, formatAddress(host, port), inUse));
    server.once('error', onError);
    server.listen({ host, port, backlog: 511 }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Binds a UDP socket, with the same plain-words errors as {@link listenTcp}. */
export function bindUdp(socket: dgram.Socket, host: string, port: number, { inUse }: BindOptions = {}): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => reject(describeBindError(error, host, formatAddress(host, port), inUse));
    socket.once('error', onError);
    socket.bind({ address: host, port }, () => {
      socket.off('error', onError);
      resolve(socket.address());
    });
  });
}

/** The largest UDP payload over IPv4: 65535 − 8 (UDP header) − 20 (IP header). */
export const MAX_UDP_PAYLOAD = 65507;

/** The socket type (`udp4` or `udp6`) that can bind or reach `host`. */
export function udpType(host: string): 'udp4' | 'udp6' {
  return isIP(host) === 6 ? 'udp6' : 'udp4';
}

const openSockets = new WeakMap<net.Server, Set<net.Socket>>();

/** Remembers a server's open connections, so that {@link closeGracefully} can end them. */
export function trackConnections<S extends net.Server>(server: S): S {
  const open = new Set<net.Socket>();
  openSockets.set(server, open);
  server.on('connection', (socket: net.Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  return server;
}

/**
 * Closes a server: it accepts nothing new, the open connections get until
 * `graceMs` to finish, then the ones left (tracked by {@link trackConnections})
 * are destroyed. Resolves when the server is fully closed.
 */
export function closeGracefully(server: net.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      for (const socket of openSockets.get(server) ?? []) socket.destroy();
    }, graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A connection of a keep-alive server: its socket, and whether it sits between requests. */
export interface KeepAliveConnection {
  readonly socket: net.Socket;
  readonly idle: boolean;
}

/**
 * Closes a keep-alive (HTTP) server: it accepts nothing new, connections
 * idle between requests end at once, busy ones get until `graceMs` to
 * finish and are then destroyed. Resolves when the server is fully closed.
 */
export function closeKeepAlive(server: net.Server, connections: Iterable<KeepAliveConnection>, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    for (const connection of connections) if (connection.idle) connection.socket.destroy();
    const timer = setTimeout(() => {
      for (const connection of connections) connection.socket.destroy();
    }, graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
