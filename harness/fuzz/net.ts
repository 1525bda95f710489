/**
 * The campaign's traffic, to loopback only: one TCP connection or a few UDP
 * datagrams per case, each bounded in time and in what it keeps of a reply.
 * Nothing here rejects for what a server does (a reset, a refusal, silence):
 * the batch checks after the cases judge the server.
 *
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';

/** Every address the campaign sends to must be a loopback one. */
export function assertLoopback(host: string): void {
  if (!(host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host))) throw new Error(`fuzz: refusing to send to ${host}: only loopback is allowed`);
}

/** How a TCP case behaves once connected. */
export interface StreamOptions {
  /** end: write, then half-close. open: write and keep the write side open. reset: write, then RST. stall: write, never read, then RST. */
  mode?: 'end' | 'open' | 'reset' | 'stall';
  /** Write in pieces of this many bytes, `delayMs` apart (a slow client). */
  chunk?: number;
  delayMs?: number;
  /** Longest the case lasts. */
  timeoutMs?: number;
  /** Give up this long after the last byte received (the server has answered). */
  quietMs?: number;
  /** In 'reset'/'stall', how long to read (or not) before the reset. */
  holdMs?: number;
}

/** What a stream case saw: bytes received (counted, the first 64 kB kept), how it ended. */
export interface StreamResult {
  received: number;
  head: Buffer;
  ended: 'closed' | 'timeout' | 'quiet' | 'reset' | 'refused' | 'error';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.());

function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (typeof (socket as net.Socket & { resetAndDestroy?: () => void }).resetAndDestroy === 'function') socket.resetAndDestroy();
  else {
    socket.setNoDelay(true);
    socket.destroy();
  }
}

/** One TCP connection: write `payload` as asked, read what comes, end within `timeoutMs`. */
export function streamCase(host: string, port: number, payload: Uint8Array, options: StreamOptions = {}): Promise<StreamResult> {
  assertLoopback(host);
  const { mode = 'end', chunk, delayMs = 20, timeoutMs = 3000, quietMs = 400, holdMs = 200 } = options;
  return new Promise((resolve) => {
    const heads: Buffer[] = [];
    let kept = 0;
    let received = 0;
    let settled = false;
    let quiet: ReturnType<typeof setTimeout> | undefined;
    const socket = net.connect({ host, port });
    const finish = (ended: StreamResult['ended']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(quiet);
      if (ended === 'timeout' || ended === 'quiet' || mode === 'reset' || mode === 'stall') resetSocket(socket);
      else socket.destroy();
      resolve({ received, head: Buffer.concat(heads), ended });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    const armQuiet = () => {
      clearTimeout(quiet);
      quiet = setTimeout(() => finish('quiet'), quietMs);
    };
    socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED' ? 'refused' : error.code === 'ECONNRESET' ? 'reset' : 'error'));
    socket.on('close', () => finish('closed'));
    socket.on('data', (data: Buffer) => {
      received += data.length;
      if (kept < 65536) {
        heads.push(data);
        kept += data.length;
      }
      if (mode !== 'reset' && mode !== 'stall') armQuiet();
    });
    if (mode === 'stall') socket.pause();
    socket.on('connect', async () => {
      try {
        if (chunk && chunk > 0) {
          for (let at = 0; at < payload.length && !settled; at += chunk) {
            socket.write(payload.subarray(at, at + chunk));
            await sleep(delayMs);
          }
        } else if (payload.length > 0) {
          await new Promise<void>((done) => socket.write(payload, () => done()));
        }
      } catch {
        // the socket broke: 'error' or 'close' settles the case
      }
      if (settled) return;
      if (mode === 'end') socket.end();
      if (mode === 'reset' || mode === 'stall') {
        await sleep(holdMs);
        finish('reset');
        return;
      }
      armQuiet();
    });
  });
}

/** Many connections at once, each a {@link streamCase}. */
export async function concurrentCase(host: string, port: number, payloads: Uint8Array[], options: StreamOptions = {}): Promise<StreamResult[]> {
  return Promise.all(payloads.map((p) => streamCase(host, port, p, options)));
}

/** Datagrams sent from one socket; replies counted until `quietMs` of silence or `timeoutMs`. */
export function datagramCase(
  host: string,
  port: number,
  datagrams: Uint8Array[],
  { timeoutMs = 2000, quietMs = 150, bindPort = 0 }: { timeoutMs?: number; quietMs?: number; bindPort?: number } = {},
): Promise<Buffer[]> {
  assertLoopback(host);
  return new Promise((resolve) => {
    const replies: Buffer[] = [];
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    let settled = false;
    let quiet: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(quiet);
      try {
        socket.close();
      } catch {
        // already closed
      }
      resolve(replies);
    };
    const timer = setTimeout(finish, timeoutMs);
    const armQuiet = () => {
      clearTimeout(quiet);
      quiet = setTimeout(finish, quietMs);
    };
    socket.on('error', finish);
    socket.on('message', (msg) => {
      if (replies.length < 1000) replies.push(msg);
      armQuiet();
    });
    socket.bind(bindPort, host === '::1' ? '::1' : '127.0.0.1', () => {
      let pending = datagrams.length;
      if (pending === 0) armQuiet();
      for (const d of datagrams) {
        socket.send(d, port, host, () => {
          if (--pending === 0) armQuiet();
        });
      }
    });
  });
}

/** Sends one datagram and waits for a reply that `accept` takes (or none within `timeoutMs`). */
export function udpRequest(host: string, port: number, datagram: Uint8Array, accept: (reply: Buffer) => boolean, timeoutMs = 2000): Promise<Buffer | undefined> {
  assertLoopback(host);
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const done = (value: Buffer | undefined) => {
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // closed
      }
      resolve(value);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.on('message', (msg) => {
      if (accept(msg)) done(msg);
    });
    socket.bind(0, host === '::1' ? '::1' : '127.0.0.1', () => socket.send(datagram, port, host));
  });
}

/** Connects, writes `request`, and resolves with what arrived when `complete` says it is whole (or rejects after `timeoutMs`). */
export function tcpRequest(host: string, port: number, request: Uint8Array | string, complete: (got: Buffer, ended: boolean) => boolean, timeoutMs = 5000, end = false): Promise<Buffer> {
  assertLoopback(host);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs / 1000} s (received ${got.length} bytes: ${JSON.stringify(got.subarray(0, 80).toString('latin1'))})`));
    }, timeoutMs);
    const check = (ended: boolean) => {
      if (complete(got, ended)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(got);
        return true;
      }
      return false;
    };
    socket.on('connect', () => {
      socket.write(request);
      if (end) socket.end();
    });
    socket.on('data', (data: Buffer) => {
      got = Buffer.concat([got, data]);
      check(false);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`connection failed: ${error.message}`));
    });
    socket.on('close', () => {
      if (check(true)) return;
      clearTimeout(timer);
      reject(new Error(`connection closed after ${got.length} bytes without a complete answer: ${JSON.stringify(got.subarray(0, 80).toString('latin1'))}`));
    });
  });
}
