/**
 * An ssh-like secure channel over any byte stream, on tweetnacl: a server
 * host key (Ed25519) that signs an ephemeral X25519 key exchange, then
 * length-prefixed frames sealed with `nacl.secretbox` under per-direction keys
 * and counter nonces.
 *
 * The core is pure (no sockets): {@link clientHello}, {@link serverAccept},
 * {@link clientFinish} make and check the handshake messages, a
 * {@link FrameReader} cuts frames out of a stream, and {@link Sealer} /
 * {@link Opener} seal and open them. {@link secureClient} and
 * {@link secureServer} put them on a `net.Socket`.
 *
 * Wire format (every integer big-endian):
 *
 * ```
 * frame        = length u32 | body (length bytes, at most MAX_FRAME)
 * ClientHello  = "ej05-v1\0" (8) | client ephemeral X25519 public key (32)
 * ServerHello  = "ej05-v1\0" (8) | host Ed25519 public key (32)
 *              | server ephemeral X25519 public key (32)
 *              | Ed25519 signature of H (64)
 * H            = SHA-512("ej05 kex v1" | ClientHello | host key | server ephemeral key)
 * shared       = X25519(own ephemeral secret, peer ephemeral public)
 * key c→s      = SHA-512("ej05 c2s" | shared | H)[0..32]
 * key s→c      = SHA-512("ej05 s2c" | shared | H)[0..32]
 * sealed body  = counter u64 | secretbox(plaintext, nonce = 16 zero bytes | counter u64, key)
 * ```
 *
 * The counter starts at 0 in each direction and goes up by one per frame. It
 * travels in clear only so that a receiver can say *what* went wrong (a
 * replay, a gap, an alteration); it is authenticated because it is the nonce.
 * The first frame after the handshake (the client's login) proves to the
 * server that the client derived the same keys.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { EventEmitter } from 'node:events';
import nacl from 'tweetnacl';

/** The protocol's version string, first in both hellos. */
export const VERSION = new TextEncoder().encode('ej05-v1\0');
/** Bytes of the length prefix of every frame. */
export const LENGTH_PREFIX = 4;
/** Bytes of the counter at the start of a sealed frame. */
export const COUNTER_LENGTH = 8;
/** The largest plaintext one sealed frame carries; bigger messages are the caller's to split. */
export const MAX_PLAINTEXT = 64 * 1024;
/** The largest frame body accepted: a sealed frame of {@link MAX_PLAINTEXT} bytes. */
export const MAX_FRAME = COUNTER_LENGTH + nacl.secretbox.overheadLength + MAX_PLAINTEXT;
export const CLIENT_HELLO_LENGTH = VERSION.length + 32;
export const SERVER_HELLO_LENGTH = VERSION.length + 32 + 32 + 64;

const encoder = new TextEncoder();

/** Why a channel was closed; a caller branches on `code`. */
export type ChannelErrorCode =
  | 'FRAME_TOO_LARGE'
  | 'TRUNCATED'
  | 'REPLAYED'
  | 'OUT_OF_ORDER'
  | 'ALTERED'
  | 'BAD_HELLO'
  | 'BAD_SIGNATURE'
  | 'HOST_KEY_MISMATCH'
  | 'WEAK_KEY';

/** A broken channel: the session must end; `message` says why in words. */
export class ChannelError extends Error {
  readonly code: ChannelErrorCode;
  constructor(code: ChannelErrorCode, message: string) {
    super(message);
    this.name = 'ChannelError';
    this.code = code;
  }
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && nacl.verify(a, b);
}

/** Prefixes `body` with its length, refusing a body over {@link MAX_FRAME}. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  if (body.length > MAX_FRAME) {
    throw new ChannelError('FRAME_TOO_LARGE', `Cannot send frame: ${body.length} bytes exceeds the limit of ${MAX_FRAME}`);
  }
  const out = new Uint8Array(LENGTH_PREFIX + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, LENGTH_PREFIX);
  return out;
}

/**
 * Cuts length-prefixed frames out of a byte stream. A length over `max` is
 * refused as soon as its prefix arrives (before any body is buffered), and
 * {@link end} says whether the stream stopped in the middle of a frame.
 */
export class FrameReader {
  readonly max: number;
  #buffer: Uint8Array = new Uint8Array(0);

  constructor(max = MAX_FRAME) {
    this.max = max;
  }

  /** Adds a chunk and returns every frame body now complete. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#buffer = this.#buffer.length === 0 ? Uint8Array.from(chunk) : concatBytes(this.#buffer, chunk);
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (this.#buffer.length - offset >= LENGTH_PREFIX) {
      const length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset + offset, LENGTH_PREFIX).getUint32(0);
      if (length > this.max) {
        throw new ChannelError('FRAME_TOO_LARGE', `Frame refused: ${length} bytes announced, the limit is ${this.max}`);
      }
      if (this.#buffer.length - offset < LENGTH_PREFIX + length) break;
      frames.push(this.#buffer.slice(offset + LENGTH_PREFIX, offset + LENGTH_PREFIX + length));
      offset += LENGTH_PREFIX + length;
    }
    this.#buffer = this.#buffer.slice(offset);
    return frames;
  }

  /** Bytes held of a frame not yet complete. */
  get pending(): number {
    return this.#buffer.length;
  }

  /** Called at the end of the stream: throws when it ended inside a frame. */
  end(): void {
    if (this.#buffer.length === 0) return;
    const expected =
      this.#buffer.length >= LENGTH_PREFIX
        ? `${LENGTH_PREFIX + new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getUint32(0)} bytes`
        : `at least ${LENGTH_PREFIX} bytes`;
    throw new ChannelError('TRUNCATED', `Connection ended inside a frame (truncated): received ${this.#buffer.length} bytes of ${expected}`);
  }
}

function nonceFor(counter: bigint): Uint8Array {
  const nonce = new Uint8Array(nacl.secretbox.nonceLength);
  new DataView(nonce.buffer).setBigUint64(nonce.length - 8, counter);
  return nonce;
}

/** Seals the frames of one direction: each gets the next counter as its nonce. */
export class Sealer {
  readonly #key: Uint8Array;
  #counter = 0n;

  constructor(key: Uint8Array) {
    if (key.length !== nacl.secretbox.keyLength) throw new TypeError(`Sealer key must be ${nacl.secretbox.keyLength} bytes, got ${key.length}`);
    this.#key = key;
  }

  /** The counter the next frame will carry. */
  get counter(): bigint {
    return this.#counter;
  }

  /** Seals `plaintext` (at most {@link MAX_PLAINTEXT} bytes) into a whole frame, length prefix included. */
  seal(plaintext: Uint8Array): Uint8Array {
    if (plaintext.length > MAX_PLAINTEXT) {
      throw new ChannelError('FRAME_TOO_LARGE', `Cannot seal ${plaintext.length} bytes in one frame: the limit is ${MAX_PLAINTEXT}`);
    }
    const counter = this.#counter++;
    const box = nacl.secretbox(plaintext, nonceFor(counter), this.#key);
    const body = new Uint8Array(COUNTER_LENGTH + box.length);
    new DataView(body.buffer).setBigUint64(0, counter);
    body.set(box, COUNTER_LENGTH);
    return encodeFrame(body);
  }
}

/**
 * Opens the frames of one direction in order. A frame whose counter is not
 * the next one is a replay (lower) or a gap or reordering (higher); one that
 * fails authentication was altered. Each throws a {@link ChannelError}.
 */
export class Opener {
  readonly #key: Uint8Array;
  #counter = 0n;

  constructor(key: Uint8Array) {
    if (key.length !== nacl.secretbox.keyLength) throw new TypeError(`Opener key must be ${nacl.secretbox.keyLength} bytes, got ${key.length}`);
    this.#key = key;
  }

  /** Opens one frame body (without its length prefix). */
  open(body: Uint8Array): Uint8Array {
    if (body.length < COUNTER_LENGTH + nacl.secretbox.overheadLength) {
      throw new ChannelError('TRUNCATED', `Frame ${this.#counter} is too short: ${body.length} bytes, a sealed frame has at least ${COUNTER_LENGTH + nacl.secretbox.overheadLength}`);
    }
    const counter = new DataView(body.buffer, body.byteOffset, COUNTER_LENGTH).getBigUint64(0);
    if (counter < this.#counter) {
      throw new ChannelError('REPLAYED', `Frame ${counter} arrived again (replayed): frame ${this.#counter} was expected`);
    }
    if (counter > this.#counter) {
      throw new ChannelError('OUT_OF_ORDER', `Frame ${counter} arrived where frame ${this.#counter} was expected (frames lost or reordered)`);
    }
    const plaintext = nacl.secretbox.open(body.subarray(COUNTER_LENGTH), nonceFor(counter), this.#key);
    if (plaintext === null) {
      throw new ChannelError('ALTERED', `Frame ${counter} failed authentication: it was altered in transit or sealed with another key`);
    }
    this.#counter++;
    return plaintext;
  }
}

/** The outcome of a handshake, on either side. */
export interface SessionKeys {
  /** Seals what this side sends. */
  sealer: Sealer;
  /** Opens what this side receives. */
  opener: Opener;
  /** The transcript hash H, the same on both sides: a session identifier. */
  sessionId: Uint8Array;
  /** The server's host public key (Ed25519). */
  hostKey: Uint8Array;
}

/** A client's half of a handshake in progress. */
export interface ClientHelloState {
  hello: Uint8Array;
  ephemeral: nacl.BoxKeyPair;
}

/** Makes a ClientHello (a frame body) with a fresh ephemeral X25519 key. */
export function clientHello(ephemeral: nacl.BoxKeyPair = nacl.box.keyPair()): ClientHelloState {
  return { hello: concatBytes(VERSION, ephemeral.publicKey), ephemeral };
}

function transcriptHash(hello: Uint8Array, hostKey: Uint8Array, serverEphemeral: Uint8Array): Uint8Array {
  return nacl.hash(concatBytes(encoder.encode('ej05 kex v1'), hello, hostKey, serverEphemeral));
}

function deriveKeys(secret: Uint8Array, peer: Uint8Array, sessionId: Uint8Array): { c2s: Uint8Array; s2c: Uint8Array } {
  const shared = nacl.scalarMult(secret, peer);
  // A peer that sends a low-order point forces an all-zero secret anyone knows.
  if (shared.every((b) => b === 0)) throw new ChannelError('WEAK_KEY', 'Key exchange refused: the peer sent a weak ephemeral key');
  const derive = (label: string) => nacl.hash(concatBytes(encoder.encode(label), shared, sessionId)).slice(0, 32);
  return { c2s: derive('ej05 c2s'), s2c: derive('ej05 s2c') };
}

function checkVersion(message: Uint8Array, expectedLength: number, what: string): void {
  if (message.length !== expectedLength) {
    throw new ChannelError('BAD_HELLO', `${what} refused: expected ${expectedLength} bytes, received ${message.length} (not an ej05-v1 peer?)`);
  }
  if (!equalBytes(message.subarray(0, VERSION.length), VERSION)) {
    throw new ChannelError('BAD_HELLO', `${what} refused: the peer does not speak ej05-v1`);
  }
}

/**
 * The server's side of the handshake: checks a ClientHello, makes an
 * ephemeral key, signs the transcript with the host key, and returns the
 * ServerHello to send with the session's keys.
 */
export function serverAccept(
  hello: Uint8Array,
  hostKey: nacl.SignKeyPair,
  ephemeral: nacl.BoxKeyPair = nacl.box.keyPair(),
): { reply: Uint8Array; keys: SessionKeys } {
  checkVersion(hello, CLIENT_HELLO_LENGTH, 'ClientHello');
  const clientEphemeral = hello.subarray(VERSION.length);
  const sessionId = transcriptHash(hello, hostKey.publicKey, ephemeral.publicKey);
  const signature = nacl.sign.detached(sessionId, hostKey.secretKey);
  const { c2s, s2c } = deriveKeys(ephemeral.secretKey, clientEphemeral, sessionId);
  return {
    reply: concatBytes(VERSION, hostKey.publicKey, ephemeral.publicKey, signature),
    keys: { sealer: new Sealer(s2c), opener: new Opener(c2s), sessionId, hostKey: hostKey.publicKey },
  };
}

/**
 * The client's side: checks the ServerHello's signature over the transcript
 * and lets `checkHostKey` decide whether this host key is the one pinned for
 * the server (it throws to refuse). Only then are keys derived.
 */
export function clientFinish(state: ClientHelloState, reply: Uint8Array, checkHostKey: (hostKey: Uint8Array) => void): SessionKeys {
  checkVersion(reply, SERVER_HELLO_LENGTH, 'ServerHello');
  let at = VERSION.length;
  const hostKey = reply.slice(at, (at += 32));
  const serverEphemeral = reply.slice(at, (at += 32));
  const signature = reply.slice(at, (at += 64));
  const sessionId = transcriptHash(state.hello, hostKey, serverEphemeral);
  if (!nacl.sign.detached.verify(sessionId, signature, hostKey)) {
    throw new ChannelError('BAD_SIGNATURE', 'Key exchange refused: the server\'s signature does not match the exchange (a man in the middle?)');
  }
  checkHostKey(hostKey);
  const { c2s, s2c } = deriveKeys(state.ephemeral.secretKey, serverEphemeral, sessionId);
  return { sealer: new Sealer(c2s), opener: new Opener(s2c), sessionId, hostKey };
}

/** An ssh-style fingerprint of a public key: `SHA256:` and unpadded base64 of its SHA-256. */
export function fingerprint(publicKey: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '')}`;
}

/**
 * A secure channel on a socket, after the handshake: `send()` seals a
 * message, `'message'` delivers each opened one, `'close'` says why the
 * channel ended (an {@link Error} when it broke, undefined on a clean end).
 * Just before a close caused by a bad incoming frame, `'broken'` gives a
 * listener the chance to `send()` one last message saying why.
 * Backpressure: `send()` returns false when the socket's buffer is full;
 * wait for `'drain'`.
 *
 * `end()` is final: from then on nothing more is delivered or sent, whatever
 * the peer still writes, and a peer that keeps its side open is cut off
 * after {@link END_GRACE_MS}.
 */
/** How long an ended channel waits for the peer to close its side before destroying the socket. */
export const END_GRACE_MS = 2000;

export class SecureSocket extends EventEmitter<{ message: [Uint8Array]; close: [Error | undefined]; drain: []; broken: [ChannelError] }> {
  readonly socket: net.Socket;
  readonly keys: SessionKeys;
  #closed = false;
  #ended = false;

  constructor(socket: net.Socket, keys: SessionKeys, reader: FrameReader, pending: Uint8Array[]) {
    super();
    this.socket = socket;
    this.keys = keys;
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () => this.#finish(new Error('Connection closed')));
    const deliver = (body: Uint8Array) => {
      if (this.#closed || this.#ended) return;
      let message: Uint8Array;
      try {
        message = keys.opener.open(body);
      } catch (error) {
        this.#fail(error as Error);
        return;
      }
      this.emit('message', message);
    };
    // Reading starts on the next turn of the event loop, once the caller
    // (resumed after its await) has attached its listeners.
    setImmediate(() => {
      for (const body of pending) deliver(body);
      socket.on('data', (chunk: Buffer) => {
        // Ended: whatever the peer still sends is not even parsed.
        if (this.#ended) return;
        let bodies: Uint8Array[];
        try {
          bodies = reader.push(chunk);
        } catch (error) {
          this.#fail(error as Error);
          return;
        }
        for (const body of bodies) deliver(body);
      });
      socket.on('end', () => {
        try {
          if (!this.#ended) reader.end();
          this.#finish(undefined);
        } catch (error) {
          this.#fail(error as Error);
        }
      });
      socket.resume();
    });
  }

  /** Seals and sends one message (at most {@link MAX_PLAINTEXT} bytes). */
  send(message: Uint8Array): boolean {
    if (this.#closed || this.#ended) return false;
    return this.socket.write(this.keys.sealer.seal(message));
  }

  /**
   * Ends the channel for good: what was sent is still written, but no
   * message is delivered or sent from now on. `'close'` follows when the
   * connection closes, at the latest {@link END_GRACE_MS} later.
   */
  end(): void {
    if (this.#closed || this.#ended) return;
    this.#ended = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }

  /** Whether the channel has ended (closed, or ended by this side): nothing more is delivered or sent. */
  get closed(): boolean {
    return this.#closed || this.#ended;
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    if (error instanceof ChannelError && !this.socket.destroyed) {
      // What this side sends is still intact: a listener may say why the
      // session ends in one last sealed message (ssh's DISCONNECT) before
      // the connection closes.
      this.emit('broken', error);
      this.#closed = true;
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
      this.emit('close', error);
      return;
    }
    this.socket.destroy();
    this.#finish(error);
  }

  #finish(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.end();
    this.emit('close', error);
  }
}

/** Reads the first frame of a socket (a hello), with a deadline. */
function firstFrame(socket: net.Socket, reader: FrameReader, timeoutMs: number, what: string): Promise<{ body: Uint8Array; rest: Uint8Array[] }> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error, result?: { body: Uint8Array; rest: Uint8Array[] }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      if (error) reject(error);
      else resolve(result!);
    };
    const onData = (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = reader.push(chunk);
      } catch (error) {
        done(error as Error);
        return;
      }
      const [body, ...rest] = frames;
      if (body) {
        // Later frames stay in the stream for the secure socket.
        socket.pause();
        done(undefined, { body, rest });
      }
    };
    const onEnd = () => done(new ChannelError('TRUNCATED', `Connection closed before the ${what} arrived`));
    const onError = (error: Error) => done(error);
    const timer = setTimeout(() => done(new ChannelError('BAD_HELLO', `No ${what} within ${timeoutMs / 1000} s`)), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}

/**
 * Runs the client's handshake on a connected socket and returns the secure
 * channel. `checkHostKey` pins the host key (throw or reject to refuse). Rejects with a
 * {@link ChannelError} when the exchange fails; the socket is then destroyed.
 */
export async function secureClient(
  socket: net.Socket,
  checkHostKey: (hostKey: Uint8Array) => void | Promise<void>,
  { timeoutMs = 10_000 } = {},
): Promise<SecureSocket> {
  const reader = new FrameReader(MAX_FRAME);
  const state = clientHello();
  socket.write(encodeFrame(state.hello));
  try {
    const { body, rest } = await firstFrame(socket, reader, timeoutMs, 'ServerHello');
    // The signature is checked first; the pin (which may read a file) next.
    const keys = clientFinish(state, body, () => {});
    await checkHostKey(keys.hostKey);
    return new SecureSocket(socket, keys, reader, rest);
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/** Runs the server's handshake on an accepted socket. */
export async function secureServer(socket: net.Socket, hostKey: nacl.SignKeyPair, { timeoutMs = 10_000 } = {}): Promise<SecureSocket> {
  const reader = new FrameReader(MAX_FRAME);
  try {
    const { body, rest } = await firstFrame(socket, reader, timeoutMs, 'ClientHello');
    const { reply, keys } = serverAccept(body, hostKey);
    socket.write(encodeFrame(reply));
    return new SecureSocket(socket, keys, reader, rest);
  } catch (error) {
    socket.destroy();
    throw error;
  }
}
