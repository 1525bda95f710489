/**
 * One request, one answer, over a TCP connection carrying ej12 PDUs: the
 * requesting side ({@link Link}) and the answering side ({@link answer}).
 *
 * @module
 */
import net from 'node:net';
import { formatAddress } from '../lib/cli.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { ERROR, type Message, Message as MessageCodec, messageReader, message } from './protocol.ts';

/** The side that sends requests and waits for their answers, in order. */
export class Link {
  readonly socket: net.Socket;
  readonly where: string;
  readonly #pending: { resolve: (m: Message) => void; reject: (e: Error) => void }[] = [];
  #closed: Error | undefined;
  readonly #closeHandlers: ((why: Error) => void)[] = [];

  constructor(socket: net.Socket, where: string) {
    this.socket = socket;
    this.where = where;
    const reader = messageReader();
    socket.on('data', (chunk: Buffer) => {
      let frames: Message[];
      try {
        frames = reader.push(chunk);
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
    });
    socket.on('error', (error: NodeJS.ErrnoException) => this.#close(describeConnectError(error, where)));
    socket.on('close', () => this.#close(new Error(`connection to ${where} closed`)));
  }

  /** Connects to `host:port`; rejects with a sentence a user can act on. */
  static connect(host: string, port: number, timeoutMs = 10_000): Promise<Link> {
    const where = formatAddress(host, port);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.setTimeout(timeoutMs, () => {
        socket.destroy();
        reject(new Error(`cannot connect to ${where}: timed out`));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => reject(describeConnectError(error, where)));
      socket.once('connect', () => {
        socket.setTimeout(0);
        socket.setNoDelay(true);
        socket.removeAllListeners('error');
        resolve(new Link(socket, where));
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
      this.socket.write(MessageCodec.encode(m));
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

/**
 * The answering side: reads PDUs from `socket` one at a time, in order, and
 * writes what `handle` returns. A handler that throws answers ERROR with the
 * message; a malformed frame is answered with ERROR and the connection closed
 * (the stream cannot be resynchronised). Returns when the socket closes.
 */
export function answer(socket: net.Socket, handle: (m: Message) => Promise<Message>, onProtocolError: (why: string) => void): void {
  const reader = messageReader();
  let chain = Promise.resolve();
  socket.setNoDelay(true);
  socket.on('data', (chunk: Buffer) => {
    let frames: Message[];
    try {
      frames = reader.push(chunk);
    } catch (error) {
      const why = (error as Error).message;
      onProtocolError(why);
      socket.end(MessageCodec.encode(message(ERROR, '', `malformed PDU: ${why}`)));
      socket.pause();
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    for (const frame of frames) {
      chain = chain.then(async () => {
        let reply: Message;
        try {
          reply = await handle(frame);
        } catch (error) {
          reply = message(ERROR, frame.path, (error as Error).message);
        }
        let bytes: Uint8Array;
        try {
          bytes = MessageCodec.encode(reply);
        } catch (error) {
          bytes = MessageCodec.encode(message(ERROR, '', `answer cannot be sent: ${(error as Error).message}`));
        }
        if (!socket.destroyed) socket.write(bytes);
      });
    }
  });
  socket.on('error', () => {});
}
