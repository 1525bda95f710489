/**
 * File client over reliable UDP (exercise 11), or over TCP with `--tcp`.
 *
 * ```sh
 * npx tsx ej11/client.ts --get notes.txt                  # from 127.0.0.1:9011 into ./notes.txt
 * npx tsx ej11/client.ts --get big.bin -o /tmp/big.bin --host 10.77.0.2
 * npx tsx ej11/client.ts --put photo.jpg                  # into the server's folder
 * npx tsx ej11/client.ts --get big.bin --tcp --json       # the same over TCP, figures as JSON
 * ```
 *
 * The file arrives in `OUT.part` and is renamed to OUT only once its SHA-256
 * matches the server's; a mismatch is an error, never a silent success. A
 * progress bar is drawn on a terminal. Prints one line (or `--json`) with
 * size, time, goodput, and the transport's retransmissions and smoothed RTT.
 * Exit status 0 on success, 1 on a failure (server refused, silent, reset,
 * file damaged), 2 on a bad argument.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { accessSync, closeSync, constants, existsSync, fstatSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { connectWithin, describeConnectError } from '../lib/net-errors.ts';
import { SIGNAL_ECHO_MS, udpType } from '../lib/server.ts';
import { udpBufferOptions } from '../lib/udp-buffers.ts';
import { formatBytes, parseCc, progressBar } from './files.ts';
import { decodePacket, encodeGet, encodePacket, encodePut, Flag, isOldServerRefusal, MAX_DATA, MAX_NAME, type Packet, readSize, Type } from './protocol.ts';
import { encodeRequest, Op, readSize64, readStatus, SocketReader } from './tcp.ts';
import { type CongestionControl, Connection, type ConnectionStats, type Message } from './transport.ts';

/** Options of a transfer. */
export interface TransferOptions {
  host: string;
  port: number;
  window?: number;
  cc?: CongestionControl;
  idleTimeoutMs?: number;
  /** Told of progress: bytes done of total. */
  onProgress?: (done: number, total: number) => void;
  /** A GET continues `OUT.part` (wget's -c). */
  resume?: boolean;
  /** Told what the user should know on the way (resuming, replacing a part). */
  onNote?: (line: string) => void;
  /** Aborted: the transfer stops (the server is told, over UDP) with an {@link InterruptedError}. */
  signal?: AbortSignal;
}

/** The outcome of a transfer. */
export interface TransferResult {
  bytes: number;
  seconds: number;
  sha256: string;
  stats?: ConnectionStats;
  /** A resumed GET: the bytes OUT.part already had (`bytes` counts only this run's). */
  resumedFrom?: number;
}

function randomConnection(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/**
 * A UDP socket connected to `host`:`port`: the kernel then passes on an ICMP
 * port unreachable as ECONNREFUSED (the socket's 'error' event), so a closed
 * port is refused at once instead of waited out; and only that peer's
 * datagrams reach it.
 */
async function openSocket(host: string, port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: udpType(host), ...udpBufferOptions(4 << 20) });
  await new Promise<void>((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) => {
      socket.close();
      reject(describeConnectError(error, formatAddress(host, port)));
    };
    socket.once('error', fail);
    socket.connect(port, host, () => {
      socket.off('error', fail);
      resolve();
    });
  });
  return socket;
}

/**
 * Runs one transfer on a new socket: `start(conn, done)` queues the first
 * message; `handle(message, conn, done)` reacts to each of the server's.
 */
async function transfer(
  options: TransferOptions,
  setup: (conn: () => Connection, finish: (error?: Error) => void) => {
    first: Message;
    pull?: () => Message | undefined;
    onMessage: (message: Message) => void;
    onAck?: () => void;
    progress: () => string;
  },
): Promise<ConnectionStats> {
  const where = formatAddress(options.host, options.port);
  const socket = await openSocket(options.host, options.port);
  const connection = randomConnection();
  let conn: Connection | undefined;
  return new Promise<ConnectionStats>((resolve, reject) => {
    let settled = false;
    // Address validation (README, "The PDU"): the server answers a first request with RETRY
    // and a token until the request carries one.
    let token: Uint8Array | undefined;
    let retries = 0;
    let answered = false;
    const onAbort = () => {
      // Tell the server at once (RESET: "no such transfer" ends it there), then stop.
      const reset = encodePacket({ sequence: 0, ack: 0, ackBitfield: 0, type: Type.RESET, flags: 0, window: 0, connection, through: 0, data: new Uint8Array(0) });
      socket.send(reset, () => finish(new InterruptedError()));
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      // Let the last acknowledgement leave before the socket closes.
      setTimeout(() => {
        conn?.close();
        socket.close();
        if (error) reject(error);
        else resolve((conn as Connection).stats);
      }, error ? 0 : 20);
    };
    const handlers = setup(() => conn as Connection, finish);
    if (handlers.first.data.length > MAX_NAME) {
      socket.close();
      reject(new CliError(`the request is ${handlers.first.data.length} bytes: a name must fit in ${MAX_NAME} bytes with a PUT's size`));
      return;
    }
    const start = (isn?: number) => {
      conn = new Connection({
        connection,
        ...(isn === undefined ? {} : { isn }),
        ...(token ? { synFlags: Flag.TOKEN } : {}),
        send: (bytes) => socket.send(bytes, () => {}),
        onMessage: handlers.onMessage,
        ...(handlers.onAck ? { onAck: handlers.onAck } : {}),
        ...(handlers.pull ? { pull: handlers.pull } : {}),
        onTimeout: (silentMs, reason) =>
          finish(
            new CliError(
              reason === 'silent'
                ? `no answer from the server ${where} for ${(silentMs / 1000).toFixed(1)} s: ${handlers.progress()}`
                : `the server ${where} acknowledged nothing through ${conn?.stats.timeouts} retransmission timeouts: ${handlers.progress()}`,
            ),
          ),
        ...(options.window === undefined ? {} : { window: options.window }),
        ...(options.cc === undefined ? {} : { cc: options.cc }),
        idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
      });
      conn.send(handlers.first.type, token ? Buffer.concat([token, handlers.first.data]) : handlers.first.data);
    };
    socket.on('error', (error: NodeJS.ErrnoException) => finish(describeConnectError(error, where)));
    socket.on('message', (datagram, from) => {
      if (from.port !== options.port) return;
      let packet: Packet;
      try {
        packet = decodePacket(datagram);
      } catch {
        return; // not ours: ignored, as the server ignores garbage
      }
      if (packet.connection !== connection) return;
      if (packet.type === Type.RETRY) {
        // A duplicate, or one for a request the server has since accepted, changes nothing.
        if (answered || (token && Buffer.from(token).equals(packet.data))) return;
        if (++retries > 3) return finish(new CliError(`the server ${where} keeps asking to validate this address (${retries} RETRY answers)`));
        token = packet.data;
        // The same request again, with the token: same connection and initial sequence number,
        // so that a copy of the first one arriving late is a duplicate of it.
        const isn = conn?.isn;
        conn?.close();
        start(isn);
        return;
      }
      answered = true;
      if (packet.type === Type.RESET) {
        finish(new CliError(`the server ${where} does not know this transfer (it restarted?): ${handlers.progress()}`));
        return;
      }
      conn?.receive(packet);
    });
    start();
    if (options.signal?.aborted) onAbort();
  });
}

function refused(where: string, text: string): RefusedError {
  const error = new RefusedError(`the server ${where} refused: ${text}`);
  error.serverMessage = text;
  return error;
}

function serverError(where: string, message: Message): CliError {
  return refused(where, new TextDecoder().decode(message.data));
}

/** The file arrived damaged (a SHA-256 or size mismatch): what it wrote is not worth resuming. */
class DamagedError extends CliError {}
/** The server refused the request with a message of its own (`serverMessage`). */
class RefusedError extends CliError {
  serverMessage?: string;
}
/** Ctrl-C (the transfer's `signal` aborted): exit status 130. */
export class InterruptedError extends CliError {
  constructor(message = 'interrupted') {
    super(message, 130);
  }
}

/**
 * `OUT.part`, where a GET writes: created (or, to resume, continued) when the
 * server accepts, renamed to OUT once the SHA-256 of the whole file matches.
 * A transfer that is interrupted or loses its server keeps it, for `-c`; a
 * damaged one deletes it.
 */
class Part {
  readonly path: string;
  /** Bytes it held when this run began (resumed), already in `hash`. */
  readonly from: number;
  readonly hash = createHash('sha256');
  /** Bytes written by this run. */
  written = 0;
  size: number | undefined;
  #fd: number | undefined;
  #note: (line: string) => void;

  constructor(out: string, resume: boolean, note: (line: string) => void) {
    this.path = `${out}.part`;
    this.#note = note;
    const existing = statSync(this.path, { throwIfNoEntry: false });
    if (resume && existing?.isFile() && existing.size > 0) {
      // The bytes it has count in the whole file's SHA-256 the server sends at the end.
      const fd = openSync(this.path, 'r');
      try {
        const buf = Buffer.alloc(1 << 20);
        for (let at = 0; at < existing.size; ) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, existing.size - at), at);
          if (n <= 0) break;
          this.hash.update(buf.subarray(0, n));
          at += n;
        }
      } finally {
        closeSync(fd);
      }
      this.from = existing.size;
      note(`resuming ${this.path} at byte ${this.from}`);
    } else {
      this.from = 0;
      if (resume) note(`nothing to resume (no ${this.path}): fetching the whole file`);
      else if (existing?.isFile() && existing.size > 0) note(`replacing ${this.path} (${existing.size} bytes from an earlier download; -c would have resumed it)`);
    }
  }

  get total(): number {
    return this.from + this.written;
  }

  /** The server accepted: the file has `size` bytes. */
  open(size: number, where: string): void {
    if (this.from > size) throw new RefusedError(`the server ${where} has ${size} bytes of this file, fewer than the ${this.from} in ${this.path}: run it again without -c`);
    this.size = size;
    this.#fd = openSync(this.path, this.from > 0 ? 'r+' : 'w');
  }

  write(chunk: Uint8Array): void {
    if (this.#fd === undefined) throw new TypeError('Cannot write: the part is not open');
    writeSync(this.#fd, chunk, 0, chunk.length, this.from + this.written);
    this.hash.update(chunk);
    this.written += chunk.length;
  }

  /** Closes it and renames it to `out`. */
  commit(out: string): void {
    this.#close();
    renameSync(this.path, out);
  }

  #close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** After a failure: the error the user sees, the part kept or deleted as it deserves. */
  failed(error: unknown, where: string, resumed: boolean): unknown {
    const opened = this.#fd !== undefined;
    this.#close();
    if (error instanceof DamagedError) {
      rmSync(this.path, { force: true });
      return resumed ? new DamagedError(`${error.message} (${this.path} was not the start of this file, or the file changed on the server: run it again without -c)`) : error;
    }
    if (error instanceof RefusedError) {
      if (resumed && this.from > 0 && isOldServerRefusal(error.serverMessage ?? '')) {
        return new RefusedError(`the server ${where} cannot resume (it is older than -c): run it again without -c to fetch the whole file`);
      }
      return error;
    }
    if (!(error instanceof CliError)) return error;
    if (opened && this.total === 0) rmSync(this.path, { force: true });
    const kept = this.total > 0 && existsSync(this.path);
    const of = this.size === undefined ? '' : ` of ${this.size}`;
    if (error instanceof InterruptedError) {
      return new InterruptedError(
        kept ? `interrupted: kept ${this.total}${of} bytes in ${this.path}; the same command with -c (--continue) resumes it` : 'interrupted before any of the file arrived: nothing kept',
      );
    }
    return kept ? new CliError(`${error.message}; kept ${this.total}${of} bytes in ${this.path} (the same command with -c resumes it)`, error.exitCode, { cause: error }) : error;
  }
}

/** Gets `name` from the server into `out` over reliable UDP (`resume`: continue `out.part`, as wget -c). */
export async function getUdp(name: string, out: string, options: TransferOptions): Promise<TransferResult> {
  const where = formatAddress(options.host, options.port);
  const part = new Part(out, options.resume ?? false, options.onNote ?? (() => {}));
  const started = performance.now();
  let digest = '';
  try {
    const stats = await transfer(options, (conn, finish) => ({
      first: { type: Type.GET, data: encodeGet(name, part.from) },
      progress: () => (part.size === undefined ? 'the transfer had not started' : `received ${part.total} of ${part.size} bytes`),
      onMessage(message) {
        try {
          if (message.type === Type.ERROR) return finish(serverError(where, message));
          const size = part.size;
          if (message.type === Type.OK) {
            part.open(readSize(message.data), where);
          } else if (message.type === Type.DATA && size !== undefined) {
            if (part.total + message.data.length > size) return finish(new DamagedError(`the server ${where} sent more than the announced ${size} bytes`));
            part.write(message.data);
            options.onProgress?.(part.total, size);
          } else if (message.type === Type.FIN && size !== undefined) {
            digest = part.hash.digest('hex');
            const theirs = Buffer.from(message.data).toString('hex');
            if (part.total !== size) return finish(new DamagedError(`the transfer ended after ${part.total} of ${size} bytes`));
            if (digest !== theirs) return finish(new DamagedError(`SHA-256 mismatch: the file arrived damaged (got ${digest}, the server has ${theirs})`));
            // Tell the server we have it all (our FIN carries what we computed), and wait for its ack.
            conn().send(Type.FIN, Buffer.from(digest, 'hex'));
            setTimeout(() => finish(), 2000).unref?.(); // the close is bounded even if its ack never comes
          } else {
            finish(new CliError(`the server ${where} sent an unexpected message (type ${message.type})`));
          }
        } catch (error) {
          finish(error instanceof CliError ? error : new CliError(`cannot write ${part.path}: ${(error as Error).message}`));
        }
      },
      onAck() {
        if (digest && conn().settled) finish();
      },
    }));
    part.commit(out);
    return { bytes: part.written, seconds: (performance.now() - started) / 1000, sha256: digest, stats, ...(part.from > 0 ? { resumedFrom: part.from } : {}) };
  } catch (error) {
    throw part.failed(error, where, part.from > 0);
  }
}

/** Puts the local `file` on the server as `name` over reliable UDP. */
export async function putUdp(file: string, name: string, options: TransferOptions): Promise<TransferResult> {
  const where = formatAddress(options.host, options.port);
  const fd = openLocal(file);
  const size = fstatSync(fd).size;
  const hash = createHash('sha256');
  const started = performance.now();
  let accepted = false;
  let offset = 0;
  let finSent = false;
  let digest = '';
  try {
    const stats = await transfer(options, (conn, finish) => ({
      first: { type: Type.PUT, data: encodePut(size, name) },
      progress: () => (accepted ? `sent ${offset} of ${size} bytes` : 'the server had not accepted the file'),
      pull() {
        if (!accepted || finSent) return undefined;
        if (offset < size) {
          const chunk = new Uint8Array(Math.min(MAX_DATA, size - offset));
          const n = readSync(fd, chunk, 0, chunk.length, offset);
          if (n <= 0) {
            finish(new CliError(`${file} shrank while being sent`));
            return undefined;
          }
          offset += n;
          hash.update(chunk.subarray(0, n));
          options.onProgress?.(offset, size);
          return { type: Type.DATA, data: chunk.subarray(0, n) };
        }
        finSent = true;
        digest = hash.digest('hex');
        return { type: Type.FIN, data: Buffer.from(digest, 'hex') };
      },
      onMessage(message) {
        if (message.type === Type.ERROR) return finish(serverError(where, message));
        if (message.type === Type.OK) {
          accepted = true;
          conn().kick();
        } else if (message.type === Type.FIN) {
          const theirs = Buffer.from(message.data).toString('hex');
          if (theirs !== digest) return finish(new CliError(`SHA-256 mismatch: the server stored ${theirs}, the file is ${digest}`));
          finish();
        } else {
          finish(new CliError(`the server ${where} sent an unexpected message (type ${message.type})`));
        }
      },
    }));
    return { bytes: size, seconds: (performance.now() - started) / 1000, sha256: digest, stats };
  } finally {
    closeSync(fd);
  }
}

function openLocal(file: string): number {
  try {
    const fd = openSync(file, 'r');
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw new CliError(`${file}: not a regular file`);
    }
    return fd;
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}

function tcpConnect(options: TransferOptions): Promise<net.Socket> {
  const where = formatAddress(options.host, options.port);
  return connectWithin({ host: options.host, port: options.port }, options.idleTimeoutMs ?? 5000).catch((error: NodeJS.ErrnoException) => {
    throw describeConnectError(error, where);
  });
}

/** Runs `body` with a TCP connection, turning its failures into plain words. */
async function overTcp<T>(options: TransferOptions, body: (socket: net.Socket, reader: SocketReader) => Promise<T>): Promise<T> {
  const where = formatAddress(options.host, options.port);
  const socket = await tcpConnect(options);
  const onAbort = () => socket.destroy(new InterruptedError());
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  socket.setTimeout(options.idleTimeoutMs ?? 5000, () => socket.destroy(new Error(`no data from ${where} for ${((options.idleTimeoutMs ?? 5000) / 1000).toFixed(1)} s`)));
  try {
    return await body(socket, new SocketReader(socket));
  } catch (error) {
    if (error instanceof CliError) throw error;
    const e = error as NodeJS.ErrnoException;
    if (e.code) throw describeConnectError(e, where);
    throw new CliError(`tcp ${where}: ${e.message}`);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    socket.destroy();
  }
}

/** Gets `name` into `out` over TCP (`resume`: continue `out.part`). */
export async function getTcp(name: string, out: string, options: TransferOptions): Promise<TransferResult> {
  const where = formatAddress(options.host, options.port);
  const started = performance.now();
  const part = new Part(out, options.resume ?? false, options.onNote ?? (() => {}));
  try {
    return await overTcp(options, async (socket, reader) => {
      // The name, and to resume a NUL and the byte to start at (as over UDP: protocol.ts encodeGet).
      socket.write(encodeRequest(Op.GET, part.from > 0 ? `${name}\0${part.from}` : name));
      await readStatus(reader).catch((error: Error & { code?: string }) => {
        if (error instanceof SyntaxError || error instanceof RangeError || error instanceof CliError || error.code) throw error;
        throw refused(where, error.message);
      });
      const size = await readSize64(reader);
      part.open(size, where);
      for (let offset = part.from; offset < size; ) {
        const chunk = await reader.readSome(Math.min(1 << 20, size - offset));
        try {
          part.write(chunk);
        } catch (error) {
          throw new CliError(`cannot write ${part.path}: ${(error as Error).message}`);
        }
        offset += chunk.length;
        options.onProgress?.(offset, size);
      }
      const digest = part.hash.digest('hex');
      const theirs = (await reader.read(32)).toString('hex');
      if (digest !== theirs) throw new DamagedError(`SHA-256 mismatch: the file arrived damaged (got ${digest}, the server has ${theirs})`);
      part.commit(out);
      return { bytes: part.written, seconds: (performance.now() - started) / 1000, sha256: digest, ...(part.from > 0 ? { resumedFrom: part.from } : {}) };
    });
  } catch (error) {
    throw part.failed(error, where, part.from > 0);
  }
}

/** Puts `file` as `name` over TCP. */
export async function putTcp(file: string, name: string, options: TransferOptions): Promise<TransferResult> {
  const started = performance.now();
  const fd = openLocal(file);
  try {
    const size = fstatSync(fd).size;
    return await overTcp(options, async (socket, reader) => {
      socket.write(encodeRequest(Op.PUT, name, size));
      const hash = createHash('sha256');
      for (let offset = 0; offset < size; ) {
        const chunk = Buffer.alloc(Math.min(256 * 1024, size - offset));
        const n = readSync(fd, chunk, 0, chunk.length, offset);
        if (n <= 0) throw new CliError(`${file} shrank while being sent`);
        hash.update(chunk.subarray(0, n));
        offset += n;
        options.onProgress?.(offset, size);
        if (!socket.write(chunk.subarray(0, n))) await new Promise((resolve) => socket.once('drain', resolve));
      }
      const digest = hash.digest();
      socket.write(digest);
      await readStatus(reader).catch((error: Error & { code?: string }) => {
        if (error instanceof SyntaxError || error instanceof RangeError || error instanceof CliError || error.code) throw error;
        throw refused(formatAddress(options.host, options.port), error.message);
      });
      return { bytes: size, seconds: (performance.now() - started) / 1000, sha256: digest.toString('hex') };
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses, before anything is asked of the server, an output that cannot be
 * written: a folder that does not exist or cannot be written to, or a folder
 * named as the file. `label` is how the user named it.
 */
export function checkOutput(out: string, label: string): void {
  const stat = statSync(out, { throwIfNoEntry: false });
  if (stat?.isDirectory()) throw new CliError(`cannot write ${label}: it is a folder (name a file, e.g. -o ${path.join(out, 'NAME')})`, 2);
  const dir = path.dirname(out);
  const dirStat = statSync(dir, { throwIfNoEntry: false });
  if (!dirStat) throw new CliError(`cannot write ${label}: the folder ${dir} does not exist (create it, or choose another -o)`, 2);
  if (!dirStat.isDirectory()) throw new CliError(`cannot write ${label}: ${dir} is not a folder (choose another -o)`, 2);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new CliError(`cannot write ${label}: no permission to write in ${dir} (choose another -o)`, 2);
  }
}

const command = defineCommand({
  name: 'client.ts',
  summary: 'Gets or puts a file over reliable UDP (or TCP with --tcp), checking its SHA-256.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'server address' },
    port: { type: 'string', default: '9011', help: 'server port' },
    get: { type: 'string', metavar: 'NAME', help: 'file of the server to fetch' },
    output: { type: 'string', short: 'o', metavar: 'OUT', help: 'where --get writes (default: the name, in the working folder)' },
    put: { type: 'string', metavar: 'FILE', help: 'local file to send to the server' },
    as: { type: 'string', metavar: 'NAME', help: 'name --put gives the file on the server (default: its base name)' },
    continue: { type: 'boolean', short: 'c', help: 'resume OUT.part left by an interrupted --get (as wget -c)' },
    tcp: { type: 'boolean', help: 'transfer over TCP instead, for comparison' },
    window: { type: 'string', default: '1024', metavar: 'PACKETS', help: 'receive window (reorder buffer), packets' },
    cc: { type: 'string', default: 'gaffer', metavar: 'MODE', help: 'congestion control: gaffer (the article good/bad mode), aimd, or none' },
    timeout: { type: 'string', default: '10', metavar: 'SECONDS', help: 'give up when the server is silent this long' },
    json: { type: 'boolean', help: 'print the result as JSON' },
    quiet: { type: 'boolean', short: 'q', help: 'no progress bar' },
  },
  epilog: `Exactly one of --get and --put.
Exit status: 0 done and verified, 1 failed (refused, nothing listening, silent, reset, damaged), 2 bad argument (an -o that cannot be written too), 130 interrupted by Ctrl-C.`,
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  if ((opts.get === undefined) === (opts.put === undefined)) throw new UsageError('give exactly one of --get NAME and --put FILE');
  const window = parsePositive(opts.window, 'window', { integer: true });
  if (window > 65535) throw new UsageError(`argument --window: expected at most 65535 packets, got '${opts.window}'`);
  const options: TransferOptions = {
    host: parseHost(opts.host),
    port: parsePort(opts.port, 'port', { zero: false }),
    window,
    cc: parseCc(opts.cc),
    idleTimeoutMs: parsePositive(opts.timeout, 'timeout') * 1000,
    resume: opts.continue ?? false,
    onNote: (line) => process.stderr.write(`client.ts: ${line}\n`),
  };
  if (opts.continue && opts.put !== undefined) throw new UsageError('argument -c/--continue: it resumes a --get (a partial --put is discarded by the server)');
  const tty = process.stderr.isTTY && !opts.quiet;
  let lastDraw = 0;
  const started = performance.now();
  if (tty) {
    options.onProgress = (done, total) => {
      const now = performance.now();
      if (now - lastDraw < 100 && done < total) return;
      lastDraw = now;
      process.stderr.write(`\r${progressBar(done, total, (now - started) / 1000)}`);
    };
  }
  const name = opts.get ?? path.basename(opts.put as string);
  const out = opts.get === undefined ? undefined : (opts.output ?? path.basename(opts.get));
  if (out !== undefined) checkOutput(out, opts.output === undefined ? `${out} (in the working folder)` : `-o ${out}`);
  // Ctrl-C: the transfer stops and says what it kept (a --get's OUT.part, for -c). A second
  // Ctrl-C (not the echo tsx relays within SIGNAL_ECHO_MS) exits at once.
  const interrupt = new AbortController();
  let interruptedAt = 0;
  const onSigint = () => {
    if (interrupt.signal.aborted) {
      if (performance.now() - interruptedAt < SIGNAL_ECHO_MS) return;
      process.exit(130);
    }
    interruptedAt = performance.now();
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);
  options.signal = interrupt.signal;
  let result: TransferResult;
  try {
    if (opts.get !== undefined) {
      result = await (opts.tcp ? getTcp : getUdp)(opts.get, out as string, options);
    } else {
      result = await (opts.tcp ? putTcp : putUdp)(opts.put as string, opts.as ?? name, options).catch((error: unknown) => {
        if (error instanceof InterruptedError) throw new InterruptedError(`interrupted: ${opts.as ?? name} was not stored (the server discards a partial upload)`);
        throw error;
      });
    }
  } finally {
    process.off('SIGINT', onSigint);
    if (tty && lastDraw > 0) process.stderr.write('\n');
  }
  const mibps = result.bytes / 1024 / 1024 / Math.max(result.seconds, 1e-9);
  if (opts.json) {
    console.log(JSON.stringify({ transport: opts.tcp ? 'tcp' : 'udp', direction: opts.get ? 'get' : 'put', name: opts.as ?? name, ...result, mibPerSecond: mibps }));
    return;
  }
  const s = result.stats;
  const extra = s ? `; ${s.retransmissions} retransmissions, ${s.duplicates} duplicates, srtt ${s.srttMs?.toFixed(2) ?? '-'} ms` : '';
  const resumed = result.resumedFrom ? ` after the ${result.resumedFrom} bytes of ${out}.part` : '';
  console.log(
    `${opts.get ? 'received' : 'sent'} ${opts.as ?? name} over ${opts.tcp ? 'TCP' : 'UDP'}: ${result.bytes} bytes (${formatBytes(result.bytes)}) in ${result.seconds.toFixed(2)} s, ${mibps.toFixed(2)} MiB/s${resumed}, SHA-256 ${result.sha256} verified${extra}`,
  );
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
