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
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { connectWithin, describeConnectError } from '../lib/net-errors.ts';
import { udpType } from '../lib/server.ts';
import { udpBufferOptions } from '../lib/udp-buffers.ts';
import { formatBytes, parseCc, progressBar } from './files.ts';
import { decodePacket, encodePut, Flag, MAX_DATA, MAX_NAME, type Packet, readSize, Type } from './protocol.ts';
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
}

/** The outcome of a transfer. */
export interface TransferResult {
  bytes: number;
  seconds: number;
  sha256: string;
  stats?: ConnectionStats;
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
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
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
  });
}

function serverError(where: string, message: Message): CliError {
  return new CliError(`the server ${where} refused: ${new TextDecoder().decode(message.data)}`);
}

/** Gets `name` from the server into `out` over reliable UDP. */
export async function getUdp(name: string, out: string, options: TransferOptions): Promise<TransferResult> {
  const where = formatAddress(options.host, options.port);
  const temp = `${out}.part`;
  const hash = createHash('sha256');
  const started = performance.now();
  let fd: number | undefined;
  let size: number | undefined;
  let received = 0;
  let digest = '';
  try {
    const stats = await transfer(options, (conn, finish) => ({
      first: { type: Type.GET, data: new TextEncoder().encode(name) },
      progress: () => (size === undefined ? 'the transfer had not started' : `received ${received} of ${size} bytes`),
      onMessage(message) {
        if (message.type === Type.ERROR) return finish(serverError(where, message));
        if (message.type === Type.OK) {
          size = readSize(message.data);
          fd = openSync(temp, 'w');
        } else if (message.type === Type.DATA && fd !== undefined && size !== undefined) {
          if (received + message.data.length > size) return finish(new CliError(`the server ${where} sent more than the announced ${size} bytes`));
          writeSync(fd, message.data, 0, message.data.length, received);
          hash.update(message.data);
          received += message.data.length;
          options.onProgress?.(received, size);
        } else if (message.type === Type.FIN && size !== undefined) {
          digest = hash.digest('hex');
          const theirs = Buffer.from(message.data).toString('hex');
          if (received !== size) return finish(new CliError(`the transfer ended after ${received} of ${size} bytes`));
          if (digest !== theirs) return finish(new CliError(`SHA-256 mismatch: the file arrived damaged (got ${digest}, the server has ${theirs})`));
          // Tell the server we have it all (our FIN carries what we computed), and wait for its ack.
          conn().send(Type.FIN, Buffer.from(digest, 'hex'));
          setTimeout(() => finish(), 2000).unref?.(); // the close is bounded even if its ack never comes
        } else {
          finish(new CliError(`the server ${where} sent an unexpected message (type ${message.type})`));
        }
      },
      onAck() {
        if (digest && conn().settled) finish();
      },
    }));
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    renameSync(temp, out);
    return { bytes: received, seconds: (performance.now() - started) / 1000, sha256: digest, stats };
  } finally {
    if (fd !== undefined) closeSync(fd);
    rmSync(temp, { force: true });
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
  socket.setTimeout(options.idleTimeoutMs ?? 5000, () => socket.destroy(new Error(`no data from ${where} for ${((options.idleTimeoutMs ?? 5000) / 1000).toFixed(1)} s`)));
  try {
    return await body(socket, new SocketReader(socket));
  } catch (error) {
    if (error instanceof CliError) throw error;
    const e = error as NodeJS.ErrnoException;
    if (e.code) throw describeConnectError(e, where);
    throw new CliError(`tcp ${where}: ${e.message}`);
  } finally {
    socket.destroy();
  }
}

/** Gets `name` into `out` over TCP. */
export async function getTcp(name: string, out: string, options: TransferOptions): Promise<TransferResult> {
  const started = performance.now();
  const temp = `${out}.part`;
  let fd: number | undefined;
  try {
    return await overTcp(options, async (socket, reader) => {
      socket.write(encodeRequest(Op.GET, name));
      await readStatus(reader).catch((error: Error) => {
        if (error instanceof SyntaxError || error instanceof RangeError) throw error;
        throw new CliError(`the server ${formatAddress(options.host, options.port)} refused: ${error.message}`);
      });
      const size = await readSize64(reader);
      fd = openSync(temp, 'w');
      const hash = createHash('sha256');
      for (let offset = 0; offset < size; ) {
        const chunk = await reader.readSome(Math.min(1 << 20, size - offset));
        writeSync(fd, chunk, 0, chunk.length, offset);
        hash.update(chunk);
        offset += chunk.length;
        options.onProgress?.(offset, size);
      }
      const digest = hash.digest('hex');
      const theirs = (await reader.read(32)).toString('hex');
      if (digest !== theirs) throw new CliError(`SHA-256 mismatch: the file arrived damaged (got ${digest}, the server has ${theirs})`);
      closeSync(fd);
      fd = undefined;
      renameSync(temp, out);
      return { bytes: size, seconds: (performance.now() - started) / 1000, sha256: digest };
    });
  } finally {
    if (fd !== undefined) closeSync(fd);
    rmSync(temp, { force: true });
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
      await readStatus(reader).catch((error: Error) => {
        throw new CliError(`the server ${formatAddress(options.host, options.port)} refused: ${error.message}`);
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
  };
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
  let result: TransferResult;
  try {
    if (opts.get !== undefined) {
      result = await (opts.tcp ? getTcp : getUdp)(opts.get, out as string, options);
    } else {
      result = await (opts.tcp ? putTcp : putUdp)(opts.put as string, opts.as ?? name, options);
    }
  } finally {
    if (tty && lastDraw > 0) process.stderr.write('\n');
  }
  const mibps = result.bytes / 1024 / 1024 / Math.max(result.seconds, 1e-9);
  if (opts.json) {
    console.log(JSON.stringify({ transport: opts.tcp ? 'tcp' : 'udp', direction: opts.get ? 'get' : 'put', name: opts.as ?? name, ...result, mibPerSecond: mibps }));
    return;
  }
  const s = result.stats;
  const extra = s ? `; ${s.retransmissions} retransmissions, ${s.duplicates} duplicates, srtt ${s.srttMs?.toFixed(2) ?? '-'} ms` : '';
  console.log(
    `${opts.get ? 'received' : 'sent'} ${opts.as ?? name} over ${opts.tcp ? 'TCP' : 'UDP'}: ${result.bytes} bytes (${formatBytes(result.bytes)}) in ${result.seconds.toFixed(2)} s, ${mibps.toFixed(2)} MiB/s, SHA-256 ${result.sha256} verified${extra}`,
  );
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
