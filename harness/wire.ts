/**
 * The harness's own sockets, for talking to a server under test directly.
 *
 * These are written separately from the exercises' clients on purpose: a
 * grader that borrowed `ej01/tcp-client.ts` would share its bugs, and would
 * pass a server exactly as wrong as that client.
 *
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';

/** Bytes received on a TCP connection, and whether the peer closed it. */
export interface TcpResult {
  received: Buffer;
  /** The peer sent FIN (clean end of the echo). */
  ended: boolean;
}

/** Opens a TCP connection, rejecting with the reason after `timeoutMs`. */
export function tcpConnect(host: string, port: number, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`cannot connect to ${host}:${port} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (error: Error) => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${host}:${port}: ${error.message}`));
    };
    socket.once('error', onError);
  });
}

/**
 * Sends `data` on a new connection, half-closes (unless `halfClose` is
 * false), and collects what comes back until the peer closes or `timeoutMs`
 * passes without progress. Never rejects on a timeout: the caller compares.
 */
export async function tcpExchange(host: string, port: number, data: Uint8Array, { timeoutMs = 10_000, halfClose = true } = {}): Promise<TcpResult> {
  const socket = await tcpConnect(host, port, timeoutMs);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks), ended });
    };
    let timer = setTimeout(finish, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      clearTimeout(timer);
      timer = setTimeout(finish, timeoutMs);
    });
    socket.on('end', () => {
      ended = true;
      finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    if (halfClose) socket.end(data);
    else socket.write(data);
  });
}

/** Reads exactly `n` bytes from a connection, or rejects saying how many came within `timeoutMs`. */
export function readExactly(socket: net.Socket, n: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= n) {
        done();
        const all = Buffer.concat(chunks);
        // Anything beyond n belongs to whoever reads next.
        if (all.length > n) socket.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`received ${length} of ${n} bytes within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.on('data', onData);
  });
}

/** Resolves with the bytes that arrive on `socket` within `ms` (empty when none do). */
export function collectFor(socket: net.Socket, ms: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => chunks.push(chunk);
    socket.on('data', onData);
    setTimeout(() => {
      socket.off('data', onData);
      resolve(Buffer.concat(chunks));
    }, ms);
  });
}

/** A UDP socket of the harness, bound to an ephemeral port on `host`. */
export async function udpSocket(host = '127.0.0.1', port = 0): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4', recvBufferSize: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: host, port }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

/**
 * Sends `data` to `host:port` from `socket` and resolves with the first
 * datagram from that address, trying `tries` times `timeoutMs` apart;
 * undefined when none comes (the caller says what that means).
 */
export function udpExchange(socket: dgram.Socket, host: string, port: number, data: Uint8Array, { timeoutMs = 1000, tries = 3 } = {}): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let sent = 0;
    let timer: ReturnType<typeof setTimeout>;
    const onMessage = (message: Buffer, from: dgram.RemoteInfo) => {
      if (from.port !== port) return;
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(message);
    };
    const send = () => {
      if (sent++ === tries) {
        socket.off('message', onMessage);
        return resolve(undefined);
      }
      socket.send(data, port, host);
      timer = setTimeout(send, timeoutMs);
    };
    socket.on('message', onMessage);
    send();
  });
}

/** Closes a UDP socket, ignoring one already closed. */
export function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

/** Says where two buffers first differ, for a failed check's message. */
export function compareBytes(sent: Uint8Array, got: Uint8Array): string {
  if (Buffer.compare(Buffer.from(sent), Buffer.from(got)) === 0) return `all ${sent.length} bytes identical`;
  let at = 0;
  while (at < Math.min(sent.length, got.length) && sent[at] === got[at]) at++;
  return `got ${got.length} of ${sent.length} bytes back; first difference at byte ${at}`;
}
