/**
 * One request, one answer, over a TCP connection carrying ej12 PDUs: the
 * requesting side ({@link Link}) and the answering side ({@link answer}).
 *
 * By default a connection carries the assignment's PDUs and nothing else.
 * Given a shared secret, the two sides may instead speak the authenticated
 * mode, this project's extra (the assignment has none):
 *
 * ```
 *  connector → acceptor   "EJ12HMAC" (8) | nonce_c (16 random bytes)
 *  acceptor → connector   "EJ12HMAC" (8) | nonce_s (16 random bytes)
 *  key c→s = HMAC-SHA256(secret, "ej12 c2s" | nonce_c | nonce_s)
 *  key s→c = HMAC-SHA256(secret, "ej12 s2c" | nonce_c | nonce_s)
 *  then every frame = the assignment's PDU | HMAC-SHA256(key of its direction, counter u64 | PDU)
 * ```
 *
 * The counter starts at 0 in each direction and goes up by one per PDU; it is
 * not sent, so a PDU replayed, dropped, reordered or taken from another
 * connection (other nonces) fails its MAC, and so does one from a peer
 * without the secret. A PDU whose MAC fails closes the connection without an
 * answer. An acceptor with a secret tells the two modes apart by the first 8
 * bytes ("EJ12HMAC" is no PDU: its accion would be 0x484D4143) and tells the
 * handler which mode a connection is in. Nothing is encrypted.
 *
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { formatAddress } from '../lib/cli.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { bytes, FrameReader, struct } from '../lib/pdu.ts';
import { ERROR, MAX_FRAME, MESSAGE_FIELDS, type Message, Message as MessageCodec, messageReader, message } from './protocol.ts';

/** First bytes of each side's hello in the authenticated mode. */
export const AUTH_MAGIC = new TextEncoder().encode('EJ12HMAC');
/** Bytes of each side's random nonce. */
export const NONCE_LENGTH = 16;
/** Bytes of the HMAC-SHA256 after each PDU. */
export const MAC_LENGTH = 32;
const HELLO_LENGTH = AUTH_MAGIC.length + NONCE_LENGTH;

/** A PDU and its MAC, as the authenticated mode carries them. */
const MacFrame = struct([...MESSAGE_FIELDS, ['mac', bytes(MAC_LENGTH)]] as const, 'ej12 authenticated PDU');

/** How PDUs are cut from and put on one connection: plain, or each with its MAC. */
interface Framing {
  readonly authenticated: boolean;
  encode(m: Message): Uint8Array;
  /** The whole PDUs `chunk` completes; throws for a malformed frame or a MAC that fails. */
  push(chunk: Uint8Array): Message[];
}

function plainFraming(): Framing {
  const reader = messageReader();
  return { authenticated: false, encode: (m) => MessageCodec.encode(m), push: (chunk) => reader.push(chunk) };
}

/** A MAC that failed: the peer does not hold the secret, or the stream was tampered with. */
export class MacError extends Error {
  readonly code = 'ERR_MAC';
  constructor(message: string) {
    super(message);
    this.name = 'MacError';
  }
}

function sessionKey(secret: Uint8Array, label: string, nonceC: Uint8Array, nonceS: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(label).update(nonceC).update(nonceS).digest();
}

function macOf(key: Uint8Array, counter: bigint, pdu: Uint8Array): Buffer {
  const c = Buffer.alloc(8);
  c.writeBigUInt64BE(counter);
  return createHmac('sha256', key).update(c).update(pdu).digest();
}

function macFraming(secret: Uint8Array, nonceC: Uint8Array, nonceS: Uint8Array, side: 'connector' | 'acceptor'): Framing {
  const c2s = sessionKey(secret, 'ej12 c2s', nonceC, nonceS);
  const s2c = sessionKey(secret, 'ej12 s2c', nonceC, nonceS);
  const [sendKey, receiveKey] = side === 'connector' ? [c2s, s2c] : [s2c, c2s];
  const reader = new FrameReader(MacFrame, { maxFrameLength: MAX_FRAME + MAC_LENGTH });
  let sent = 0n;
  let received = 0n;
  return {
    authenticated: true,
    encode(m) {
      const pdu = MessageCodec.encode(m);
      const out = new Uint8Array(pdu.length + MAC_LENGTH);
      out.set(pdu);
      out.set(macOf(sendKey, sent++, pdu), pdu.length);
      return out;
    },
    push(chunk) {
      return reader.push(chunk).map(({ mac, ...m }) => {
        // The text codec is strict UTF-8 both ways, so re-encoding gives back the very bytes received.
        const want = macOf(receiveKey, received++, MessageCodec.encode(m));
        if (!timingSafeEqual(want, mac)) throw new MacError(`PDU ${received - 1n} of this connection fails its MAC (wrong secret, or altered, replayed or out of order)`);
        return m;
      });
    },
  };
}

/** Options of {@link Link.connect}. */
export interface ConnectOptions {
  /** Speak the authenticated mode with this shared secret. */
  secret?: Uint8Array | undefined;
  /** The local address to connect from (so the peer sees the address this side serves on). */
  localAddress?: string | undefined;
}

/** The side that sends requests and waits for their answers, in order. */
export class Link {
  readonly socket: net.Socket;
  readonly where: string;
  readonly #pending: { resolve: (m: Message) => void; reject: (e: Error) => void }[] = [];
  #closed: Error | undefined;
  readonly #closeHandlers: ((why: Error) => void)[] = [];

  readonly #framing: Framing;

  constructor(socket: net.Socket, where: string, framing: Framing = plainFraming(), pending: Uint8Array = new Uint8Array(0)) {
    this.socket = socket;
    this.where = where;
    this.#framing = framing;
    const onData = (chunk: Uint8Array) => {
      let frames: Message[];
      try {
        frames = framing.push(chunk);
      } catch (error) {
        this.#close(new Error(`malformed answer from ${where}: ${(error as Error).message}`));
        return;
      }
      for (const frame of frames) {
        const waiter = this.#pending.shift();
        if (!waiter) {
          this.#close(new Error(`unexpected message from ${where}`));
          return;
        }
        waiter.resolve(frame);
      }
    };
    socket.on('data', onData);
    if (pending.length > 0) queueMicrotask(() => onData(pending));
    socket.on('error', (error: NodeJS.ErrnoException) => this.#close(describeConnectError(error, where)));
    socket.on('close', () => this.#close(new Error(`connection to ${where} closed`)));
  }

  /** Whether this link speaks the authenticated mode. */
  get authenticated(): boolean {
    return this.#framing.authenticated;
  }

  /**
   * Connects to `host:port` (with `secret`, in the authenticated mode, hello
   * included); rejects with a sentence a user can act on.
   */
  static connect(host: string, port: number, timeoutMs = 10_000, { secret, localAddress }: ConnectOptions = {}): Promise<Link> {
    const where = formatAddress(host, port);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
      socket.setTimeout(timeoutMs, () => {
        socket.destroy();
        reject(new Error(`cannot connect to ${where}: timed out${secret ? ' (waiting for the authenticated hello)' : ''}`));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => reject(describeConnectError(error, where)));
      socket.once('connect', () => {
        socket.setNoDelay(true);
        if (!secret) {
          socket.setTimeout(0);
          socket.removeAllListeners('error');
          resolve(new Link(socket, where));
          return;
        }
        const nonceC = randomBytes(NONCE_LENGTH);
        socket.write(Buffer.concat([AUTH_MAGIC, nonceC]));
        let got = Buffer.alloc(0);
        const onData = (chunk: Buffer) => {
          got = Buffer.concat([got, chunk]);
          if (got.length < HELLO_LENGTH) return;
          socket.off('data', onData);
          socket.off('close', onClose);
          if (!got.subarray(0, AUTH_MAGIC.length).equals(AUTH_MAGIC)) {
            socket.destroy();
            reject(new Error(`${where} does not speak the authenticated mode (give it the same --secret-file)`));
            return;
          }
          socket.setTimeout(0);
          socket.removeAllListeners('error');
          const framing = macFraming(secret, nonceC, got.subarray(AUTH_MAGIC.length, HELLO_LENGTH), 'connector');
          resolve(new Link(socket, where, framing, got.subarray(HELLO_LENGTH)));
        };
        const onClose = () => reject(new Error(`${where} closed the connection during the authenticated hello (does it have the same --secret-file?)`));
        socket.on('data', onData);
        socket.once('close', onClose);
      });
    });
  }

  /** The error that closed the link, if it is closed. */
  get closed(): Error | undefined {
    return this.#closed;
  }

  /** Calls `handler` once, when the link closes (at once if it has). */
  onClose(handler: (why: Error) => void): void {
    if (this.#closed) handler(this.#closed);
    else this.#closeHandlers.push(handler);
  }

  /** Sends `m` and resolves with its answer; rejects if none comes within `timeoutMs` (the link is then closed). */
  request(m: Message, timeoutMs = 30_000): Promise<Message> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#close(new Error(`no answer from ${this.where} within ${timeoutMs / 1000} s`)), timeoutMs);
      this.#pending.push({
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(this.#framing.encode(m));
    });
  }

  close(): void {
    this.#close(new Error(`connection to ${this.where} closed`));
  }

  #close(why: Error): void {
    if (this.#closed) return;
    this.#closed = why;
    this.socket.destroy();
    for (const waiter of this.#pending.splice(0)) waiter.reject(why);
    for (const handler of this.#closeHandlers.splice(0)) handler(why);
  }
}

/** Options of {@link answer}. */
export interface AnswerOptions {
  /** Accept the authenticated mode with this shared secret (plain PDUs are still accepted; the handler is told which). */
  secret?: Uint8Array | undefined;
}

/**
 * PDUs of one connection read but not yet answered, past which the
 * connection is not read until its queue drains: a client that pipelines
 * thousands of PDUs holds at most this many (and one read's worth) in the
 * server, and the kernel's buffers and TCP's window hold the rest.
 */
export const MAX_QUEUED = 32;

/**
 * The answering side: reads PDUs from `socket` and answers them one at a
 * time, in order, with what `handle` returns. A handler that throws answers
 * ERROR with the message; a malformed frame is answered with ERROR and the
 * connection closed (the stream cannot be resynchronised), and a PDU whose
 * MAC fails closes it without an answer. `handle` learns whether the
 * connection is in the authenticated mode. Returns at once; the socket is
 * served until it closes.
 *
 * At most {@link MAX_QUEUED} PDUs wait; beyond that the socket is paused. A
 * connection that closes has its waiting PDUs dropped, not run: nobody is
 * left to read their answers (found by the fuzz campaign: connections that
 * had sent thousands of PDUs and gone kept the master busy for seconds, and
 * a new client waited behind them). A peer that shuts down its sending side
 * still gets every answer, then the end of the connection: the server must
 * be created with `allowHalfOpen: true` for that.
 */
export function answer(
  socket: net.Socket,
  handle: (m: Message, authenticated: boolean) => Promise<Message>,
  onProtocolError: (why: string) => void,
  { secret }: AnswerOptions = {},
): void {
  let framing: Framing | undefined = secret ? undefined : plainFraming();
  let hello = Buffer.alloc(0);
  const queue: { frame: Message; framing: Framing }[] = [];
  let busy = false;
  let gone = false;
  let peerEnded = false;
  let refused = false;
  socket.setNoDelay(true);

  const finishIfDone = () => {
    if (peerEnded && !busy && queue.length === 0 && !socket.destroyed) socket.end();
  };
  const pump = async () => {
    if (busy) return;
    busy = true;
    while (queue.length > 0 && !gone) {
      const { frame, framing: f } = queue.shift() as { frame: Message; framing: Framing };
      if (queue.length < MAX_QUEUED / 2 && socket.isPaused() && !refused && !peerEnded) socket.resume();
      let reply: Message;
      try {
        reply = await handle(frame, f.authenticated);
      } catch (error) {
        reply = message(ERROR, frame.path, (error as Error).message);
      }
      let bytes: Uint8Array;
      try {
        bytes = f.encode(reply);
      } catch (error) {
        bytes = f.encode(message(ERROR, '', `answer cannot be sent: ${(error as Error).message}`));
      }
      if (!socket.destroyed && socket.writable) socket.write(bytes);
    }
    busy = false;
    finishIfDone();
  };
  const serve = (chunk: Uint8Array, f: Framing) => {
    let frames: Message[];
    try {
      frames = f.push(chunk);
    } catch (error) {
      const why = (error as Error).message;
      onProtocolError(why);
      refused = true;
      queue.length = 0;
      if (error instanceof MacError) {
        socket.destroy();
        return;
      }
      socket.end(f.encode(message(ERROR, '', `malformed PDU: ${why}`)));
      socket.pause();
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    for (const frame of frames) queue.push({ frame, framing: f });
    if (queue.length >= MAX_QUEUED) socket.pause();
    void pump();
  };
  socket.on('data', (chunk: Buffer) => {
    if (refused) return;
    if (framing) return serve(chunk, framing);
    // With a secret, the first bytes say which mode the peer speaks.
    hello = Buffer.concat([hello, chunk]);
    if (hello.length < AUTH_MAGIC.length) return;
    if (!hello.subarray(0, AUTH_MAGIC.length).equals(AUTH_MAGIC)) {
      framing = plainFraming();
      return serve(hello, framing);
    }
    if (hello.length < HELLO_LENGTH) return;
    const nonceS = randomBytes(NONCE_LENGTH);
    socket.write(Buffer.concat([AUTH_MAGIC, nonceS]));
    framing = macFraming(secret as Uint8Array, hello.subarray(AUTH_MAGIC.length, HELLO_LENGTH), nonceS, 'acceptor');
    const rest = hello.subarray(HELLO_LENGTH);
    if (rest.length > 0) serve(rest, framing);
  });
  socket.on('end', () => {
    peerEnded = true;
    finishIfDone();
  });
  socket.on('close', () => {
    gone = true;
    queue.length = 0;
  });
  socket.on('error', () => {});
}

/** The fewest bytes a shared secret may have. */
export const MIN_SECRET_LENGTH = 16;

/**
 * Reads the shared secret of the authenticated mode from `file`: its bytes,
 * without a trailing newline, at least {@link MIN_SECRET_LENGTH} of them.
 * Rejects with a RangeError saying what is wrong.
 */
export async function readSecretFile(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (error) {
    throw new RangeError(`--secret-file ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file' : (error as Error).message}`);
  }
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end < MIN_SECRET_LENGTH) throw new RangeError(`--secret-file ${file}: expected a secret of at least ${MIN_SECRET_LENGTH} bytes, found ${end} (make one with: head -c 32 /dev/urandom | base64 > ${file})`);
  return bytes.subarray(0, end);
}

/** An address as a peer's socket reports it, comparable: IPv4-mapped IPv6 as IPv4, IPv6 in lower case. */
export function normalizeAddress(address: string): string {
  const a = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}
