/**
 * File server over reliable UDP (exercise 11), and the same over TCP for
 * comparison, on the same port number.
 *
 * ```sh
 * npx tsx ej11/server.ts                          # 127.0.0.1:9011, serves the working folder
 * npx tsx ej11/server.ts --dir /srv/files --port 0
 * ```
 *
 * Clients GET a file of the served folder or PUT one into it (see client.ts);
 * a name never leads outside the folder (`..`, absolute paths, symbolic links
 * out are refused with an ERROR, checked on the opened file: files.ts). A
 * first GET or PUT without a valid address token is answered with one small
 * RETRY carrying it, and nothing else ({@link AddressTokens}). Each transfer
 * is a {@link Connection} (see transport.ts and the PDU in protocol.ts); any
 * number run at once, told apart by address, port and connection number. A
 * datagram that is not a packet of the protocol is ignored; a packet for no
 * transfer is answered with RESET. Prints `listening on HOST:PORT (udp)` and `(tcp)` when ready,
 * one line per transfer on stderr. Ctrl-C stops it.
 *
 * @module
 */
import { createHash, createHmac, type Hash, randomBytes, timingSafeEqual } from 'node:crypto';
import dgram from 'node:dgram';
import { closeSync, readSync, statSync, writeSync } from 'node:fs';
import net from 'node:net';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { bindUdp, closeGracefully, listenTcp, onShutdown, readyLine, trackConnections, udpType } from '../lib/server.ts';
import { udpBufferOptions } from '../lib/udp-buffers.ts';
import { drained } from '../lib/http.ts';
import { BadNameError, createInside, formatBytes, openInside, parseCc, quoteName, type Upload } from './files.ts';
import { decodeGet, decodeName, decodePacket, decodePut, encodePacket, encodeSize, encodeText, Flag, MAX_DATA, type Packet, splitToken, TOKEN_LENGTH, Type } from './protocol.ts';
import { encodeError, Op, readSize64, SocketReader } from './tcp.ts';
import { type CongestionControl, Connection, type Message } from './transport.ts';

/** Options of {@link startServer}. */
export interface ServerOptions {
  dir: string;
  window?: number;
  cc?: CongestionControl;
  idleTimeoutMs?: number;
  /** How long a finished transfer stays to re-acknowledge the client's last packets. */
  lingerMs?: number;
  log?: Logger;
}

/** What the server counted, for tests. */
export interface ServerCounters {
  transfers: number;
  completed: number;
  failed: number;
  /** Datagrams that were not packets of the protocol. */
  garbage: number;
  resets: number;
  /** GETs and PUTs answered with RETRY: their address was not validated yet. */
  retries: number;
}

/**
 * Stateless address validation, as a QUIC Retry token (RFC 9000 §8.1): an
 * HMAC-SHA-256 over the client's address, port and a 30-second time bucket,
 * keyed by a random secret of this process, cut to 16 bytes. Only a client
 * that receives at its address can echo it, so before it does the server
 * sends that address one RETRY (40 bytes) per request (at least 24 bytes),
 * under RFC 9000's 3× bound. A token is valid for 30 to 60 s.
 */
export class AddressTokens {
  readonly #secret = randomBytes(32);
  readonly #bucketMs: number;
  readonly #now: () => number;

  constructor({ bucketMs = 30_000, now = () => Date.now() }: { bucketMs?: number; now?: () => number } = {}) {
    this.#bucketMs = bucketMs;
    this.#now = now;
  }

  #token(address: string, port: number, bucket: number): Buffer {
    return createHmac('sha256', this.#secret).update(`${address}|${port}|${bucket}`).digest().subarray(0, TOKEN_LENGTH);
  }

  /** The token for `address`:`port` now. */
  make(address: string, port: number): Uint8Array {
    return this.#token(address, port, Math.floor(this.#now() / this.#bucketMs));
  }

  /** Whether `token` was made for `address`:`port` in this bucket or the one before. */
  valid(token: Uint8Array, address: string, port: number): boolean {
    if (token.length !== TOKEN_LENGTH) return false;
    const bucket = Math.floor(this.#now() / this.#bucketMs);
    return [bucket, bucket - 1].some((b) => timingSafeEqual(this.#token(address, port, b), token));
  }
}

interface Session {
  conn: Connection;
  cleanup(): void;
}

/** What a client is told about `error`: the reason, never a path of the server's. */
function errorText(error: unknown): string {
  if (error instanceof BadNameError || error instanceof SyntaxError || error instanceof RangeError) return error.message;
  const e = error as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return 'no such file';
  if (e.code === 'EISDIR') return 'is a folder, not a file';
  if (e.code === 'EACCES') return 'permission denied';
  if (e.code) return `server error: ${e.code}`;
  return e.message ?? String(error);
}

/**
 * Hashes the first `bytes` of the file open on `fd` into `hash`, one 1 MiB
 * slice per turn of the event loop (a resumed GET's FIN is the SHA-256 of the
 * whole file, and the server must not stall its other transfers meanwhile);
 * stops (and says so to `done`) when `cancelled()` says the transfer ended. Reads are synchronous, so
 * the descriptor cannot be closed (and its number reused) under a read.
 */
export function hashPrefix(fd: number, bytes: number, hash: Hash, cancelled: () => boolean, done: (error?: Error, cancelled?: boolean) => void): void {
  const buf = Buffer.alloc(Math.min(1 << 20, bytes));
  let hashed = 0;
  const step = () => {
    if (cancelled()) return done(undefined, true);
    try {
      const n = readSync(fd, buf, 0, Math.min(buf.length, bytes - hashed), hashed);
      if (n <= 0) return done(new Error('the file shrank while being sent'));
      hash.update(buf.subarray(0, n));
      hashed += n;
    } catch (error) {
      return done(error as Error);
    }
    if (hashed < bytes) setImmediate(step);
    else done();
  };
  step();
}

/**
 * Serves `dir` on a bound UDP socket: one {@link Connection} per transfer.
 * Returns counters and a `close()` that ends every transfer.
 */
export function serveUdp(socket: dgram.Socket, options: ServerOptions): { counters: ServerCounters; close(): void } {
  const { dir, log = silent, lingerMs = 2000 } = options;
  const sessions = new Map<string, Session>();
  const counters: ServerCounters = { transfers: 0, completed: 0, failed: 0, garbage: 0, resets: 0, retries: 0 };

  const tokens = new AddressTokens();
  const reply = (packet: Packet, port: number, address: string) => socket.send(encodePacket(packet), port, address, () => {});

  const open = (first: Packet, port: number, address: string, key: string): Session => {
    const who = `${formatAddress(address, port)}#${first.connection.toString(16)}`;
    let fd: number | undefined;
    let upload: Upload | undefined;
    let finished = false;
    let lingering: ReturnType<typeof setTimeout> | undefined;
    const hash: Hash = createHash('sha256');
    const started = performance.now();
    let size = 0;
    let offset = 0;
    let finQueued = false;
    let peerFin = false;

    const release = () => {
      if (upload) upload.discard();
      else if (fd !== undefined) closeSync(fd);
      upload = undefined;
      fd = undefined;
    };
    const cleanup = () => {
      conn.close();
      clearTimeout(lingering);
      sessions.delete(key);
      release();
    };
    const finish = (ok: boolean, message: string) => {
      if (finished) return;
      finished = true;
      if (ok) counters.completed++;
      else counters.failed++;
      log(`${who} ${message}`);
      release();
      // Stay a while to acknowledge the client's last packets again if our acks were lost.
      lingering = setTimeout(cleanup, lingerMs);
      lingering.unref?.();
    };
    const fail = (message: string) => {
      // The message may quote a name that filled a packet: it is cut to fit one.
      conn.send(Type.ERROR, encodeText(message, MAX_DATA));
      finish(false, `refused: ${message.slice(0, 300)}`);
    };

    let mode: 'get' | 'put' | undefined;
    let prefixPending = false;
    let resumedFrom = 0;
    const pull = (): Message | undefined => {
      if (mode !== 'get' || fd === undefined || finQueued || prefixPending) return undefined;
      if (offset < size) {
        const chunk = new Uint8Array(Math.min(MAX_DATA, size - offset));
        let n: number;
        try {
          n = readSync(fd, chunk, 0, chunk.length, offset);
        } catch (error) {
          fail(errorText(error));
          return undefined;
        }
        if (n <= 0) {
          fail('the file shrank while being sent');
          return undefined;
        }
        offset += n;
        const data = n === chunk.length ? chunk : chunk.subarray(0, n);
        hash.update(data);
        return { type: Type.DATA, data };
      }
      finQueued = true;
      return { type: Type.FIN, data: new Uint8Array(hash.digest()) };
    };

    const onMessage = (message: Message) => {
      if (finished && message.type !== Type.FIN) return;
      try {
        switch (message.type) {
          case Type.GET: {
            const { name, from } = decodeGet(message.data);
            const file = openInside(dir, name);
            fd = file.fd;
            size = file.size;
            if (from > size) return fail(`cannot resume ${quoteName(name)} from byte ${from}: it has ${size} bytes`);
            mode = 'get';
            offset = from;
            resumedFrom = from;
            log(`${who} GET ${name}${from > 0 ? ` from byte ${from}` : ''} (${formatBytes(size)})`);
            conn.send(Type.OK, encodeSize(size));
            if (from > 0) {
              // FIN carries the SHA-256 of the whole file: the part the client has is hashed
              // first, a slice per turn of the event loop so that other transfers go on.
              prefixPending = true;
              hashPrefix(fd, from, hash, () => finished || fd === undefined, (error, cancelled) => {
                prefixPending = false;
                if (cancelled) return;
                if (error) fail(errorText(error));
                else conn.kick();
              });
            }
            break;
          }
          case Type.PUT: {
            const put = decodePut(message.data);
            size = put.size;
            upload = createInside(dir, put.name);
            fd = upload.fd;
            mode = 'put';
            log(`${who} PUT ${put.name} (${formatBytes(size)})`);
            conn.send(Type.OK, encodeSize(size));
            break;
          }
          case Type.DATA: {
            if (mode !== 'put' || fd === undefined) return fail('DATA before PUT');
            if (offset + message.data.length > size) return fail(`more data than the announced ${size} bytes`);
            writeSync(fd, message.data, 0, message.data.length, offset);
            offset += message.data.length;
            hash.update(message.data);
            break;
          }
          case Type.FIN: {
            peerFin = true;
            if (mode === 'put' && !finished) {
              const digest = new Uint8Array(hash.digest());
              const theirs = Buffer.from(message.data).toString('hex');
              if (offset !== size) return fail(`received ${offset} of ${size} bytes`);
              if (Buffer.from(digest).toString('hex') !== theirs) return fail('SHA-256 mismatch: the file arrived damaged');
              upload?.commit();
              upload = undefined;
              fd = undefined;
              conn.send(Type.FIN, digest);
              finQueued = true;
            } else if (mode === 'get') {
              const theirs = Buffer.from(message.data).toString('hex');
              log(`${who} client reports SHA-256 ${theirs.slice(0, 16)}…`);
            }
            checkDone();
            break;
          }
          case Type.ERROR:
            finish(false, `client gave up: ${new TextDecoder().decode(message.data)}`);
            break;
          default:
            fail(`unexpected ${message.type} message`);
        }
      } catch (error) {
        fail(errorText(error));
      }
    };

    const checkDone = () => {
      if (finished || !finQueued || !conn.settled) return;
      const seconds = (performance.now() - started) / 1000;
      if (mode === 'get' && !peerFin) return; // the client has not confirmed yet
      const s = conn.stats;
      const what = mode === 'get' ? `sent ${formatBytes(size - resumedFrom)}${resumedFrom > 0 ? ` (from byte ${resumedFrom})` : ''}` : `received ${formatBytes(size)}`;
      finish(true, `${what} in ${seconds.toFixed(2)} s; ${s.retransmissions} retransmissions, srtt ${s.srttMs?.toFixed(1) ?? '-'} ms`);
    };

    const conn: Connection = new Connection({
      connection: first.connection,
      send: (bytes) => socket.send(bytes, port, address, () => {}),
      onMessage,
      onAck: checkDone,
      onTimeout: (silentMs, reason) => {
        if (!finished) finish(false, reason === 'silent' ? `client silent for ${(silentMs / 1000).toFixed(1)} s: transfer abandoned` : `client acknowledged nothing through ${conn.stats.timeouts} retransmission timeouts: transfer abandoned`);
        cleanup();
      },
      pull,
      ...(options.window === undefined ? {} : { window: options.window }),
      ...(options.cc === undefined ? {} : { cc: options.cc }),
      ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    });
    counters.transfers++;
    return { conn, cleanup };
  };

  const onDatagram = (datagram: Buffer, from: dgram.RemoteInfo) => {
    let packet: Packet;
    try {
      packet = decodePacket(datagram);
    } catch (error) {
      counters.garbage++;
      log(`${formatAddress(from.address, from.port)} ignored a datagram: ${(error as Error).message}`);
      return;
    }
    const key = `${from.address}|${from.port}|${packet.connection}`;
    let session = sessions.get(key);
    const { token, packet: request } = splitToken(packet);
    if (!session) {
      if ((packet.type === Type.GET || packet.type === Type.PUT) && packet.flags & Flag.SYN) {
        if (!token || !tokens.valid(token, from.address, from.port)) {
          // Not yet known to be the sender's own address: one small RETRY, no state kept.
          counters.retries++;
          reply({ sequence: 0, ack: packet.sequence, ackBitfield: 0, type: Type.RETRY, flags: 0, window: 0, connection: packet.connection, through: 0, data: tokens.make(from.address, from.port) }, from.port, from.address);
          return;
        }
        session = open(request, from.port, from.address, key);
        sessions.set(key, session);
      } else {
        if (packet.type !== Type.RESET && packet.type !== Type.ACK) {
          counters.resets++;
          reply({ sequence: 0, ack: 0, ackBitfield: 0, type: Type.RESET, flags: 0, window: 0, connection: packet.connection, through: 0, data: new Uint8Array(0) }, from.port, from.address);
        }
        return;
      }
    }
    if (packet.type === Type.RESET) {
      log(`${formatAddress(from.address, from.port)} reset its transfer`);
      session.cleanup();
      return;
    }
    session.conn.receive(request);
  };
  // The handler is an error boundary: whatever one peer's packet makes go wrong ends that
  // peer's transfer, never the server.
  socket.on('message', (datagram, from) => {
    try {
      onDatagram(datagram, from);
    } catch (error) {
      log(`${formatAddress(from.address, from.port)} dropped after an error: ${(error as Error).message?.slice(0, 300)}`);
      try {
        const connection = datagram.length >= 20 ? datagram.readUInt32BE(16) : -1;
        sessions.get(`${from.address}|${from.port}|${connection}`)?.cleanup();
      } catch {
        // Nothing more to undo.
      }
    }
  });
  socket.on('error', (error) => log(`socket error: ${error.message}`));
  return {
    counters,
    close() {
      for (const session of [...sessions.values()]) session.cleanup();
    },
  };
}

/**
 * Serves `dir` over TCP (the comparison): one request per connection. A
 * client that stops reading is dropped after `idleTimeoutMs` without
 * progress; one that resets ends its transfer at once, and its file is closed.
 */
export function serveTcp(server: net.Server, { dir, log = silent, idleTimeoutMs = 10_000 }: ServerOptions): void {
  server.on('connection', (socket) => {
    const who = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    const reader = new SocketReader(socket);
    socket.on('error', () => {});
    socket.setTimeout(idleTimeoutMs, () => socket.destroy());
    void (async () => {
      let fd: number | undefined;
      let upload: Upload | undefined;
      try {
        const op = (await reader.read(1))[0];
        const nameLength = (await reader.read(2)).readUInt16BE(0);
        const field = await reader.read(nameLength);
        if (op === Op.GET) {
          // The name, and for a resumed GET a NUL and the byte to start at, as over UDP.
          const { name, from } = decodeGet(field);
          const file = openInside(dir, name);
          fd = file.fd;
          const size = file.size;
          if (from > size) throw new BadNameError(`cannot resume ${quoteName(name)} from byte ${from}: it has ${size} bytes`);
          log(`${who} tcp GET ${name}${from > 0 ? ` from byte ${from}` : ''} (${formatBytes(size)})`);
          const hash = createHash('sha256');
          if (from > 0) {
            const opened = fd;
            await new Promise<void>((resolve, reject) => hashPrefix(opened, from, hash, () => socket.destroyed, (error) => (error ? reject(error) : resolve())));
            if (socket.destroyed) return;
          }
          const head = Buffer.alloc(9);
          head.writeBigUInt64BE(BigInt(size), 1);
          socket.write(head);
          for (let offset = from; offset < size; ) {
            const chunk = Buffer.alloc(Math.min(256 * 1024, size - offset));
            const n = readSync(fd, chunk, 0, chunk.length, offset);
            if (n <= 0) throw new Error('the file shrank while being sent');
            offset += n;
            hash.update(chunk.subarray(0, n));
            // Wait for room, or for the end of a client that reset or went silent (drained() resolves on close too).
            if (!socket.write(chunk.subarray(0, n))) await drained(socket);
            if (socket.destroyed) {
              log(`${who} tcp GET ${name}: the client went away after ${formatBytes(offset)}`);
              return;
            }
          }
          socket.end(hash.digest());
        } else if (op === Op.PUT) {
          const name = decodeName(field);
          const size = await readSize64(reader);
          upload = createInside(dir, name);
          log(`${who} tcp PUT ${name} (${formatBytes(size)})`);
          const hash = createHash('sha256');
          for (let offset = 0; offset < size; ) {
            const chunk = await reader.readSome(Math.min(1 << 20, size - offset));
            writeSync(upload.fd, chunk, 0, chunk.length, offset);
            hash.update(chunk);
            offset += chunk.length;
          }
          const theirs = await reader.read(32);
          if (!hash.digest().equals(theirs)) throw new Error('SHA-256 mismatch: the file arrived damaged');
          upload.commit();
          socket.end(Buffer.from([0]));
        } else {
          throw new Error(`unknown request ${op}`);
        }
      } catch (error) {
        log(`${who} tcp refused: ${errorText(error).slice(0, 300)}`);
        if (!socket.destroyed) socket.end(encodeError(errorText(error)));
      } finally {
        if (fd !== undefined) closeSync(fd);
        upload?.discard();
      }
    })();
  });
}

const command = defineCommand({
  name: 'server.ts',
  summary: 'File server over reliable UDP (and TCP, for comparison) on the same port.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '9011', help: 'port to listen on (UDP and TCP); 0 picks a free one' },
    dir: { type: 'string', default: '.', help: 'folder served; names never lead outside it' },
    window: { type: 'string', default: '1024', metavar: 'PACKETS', help: 'receive window (reorder buffer), packets' },
    cc: { type: 'string', default: 'gaffer', metavar: 'MODE', help: 'congestion control: gaffer (the article good/bad mode), aimd, or none' },
    timeout: { type: 'string', default: '10', metavar: 'SECONDS', help: 'abandon a transfer whose client is silent this long' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log transfers on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (udp)" and "(tcp)" on stdout when ready. Ctrl-C stops it.
Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot bind, 2 bad usage (a --dir that is not a folder too), 130 a second Ctrl-C or transfers still open after the grace period.`,
});

/** How many free UDP ports {@link bindBoth} tries, for `--port 0`, before it gives up. */
const PAIR_TRIES = 20;

/**
 * Binds UDP on `port` and TCP on the same number. With `--port 0` the UDP
 * port is the kernel's choice, and that number may be taken for TCP (on a
 * busy machine, by another program's connection): then the UDP socket is
 * closed and another free port tried, up to {@link PAIR_TRIES} times. A fixed
 * port in use is the user's to change and is said at once.
 */
async function bindBoth(host: string, port: number) {
  for (let attempt = 1; ; attempt++) {
    const socket = dgram.createSocket({ type: udpType(host), ...udpBufferOptions(4 << 20) });
    const udpAddress = await bindUdp(socket, host, port);
    const tcp = trackConnections(net.createServer());
    try {
      const tcpAddress = await listenTcp(tcp, host, udpAddress.port);
      return { socket, udpAddress, tcp, tcpAddress };
    } catch (error) {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      const inUse = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
      if (port !== 0 || !inUse || attempt >= PAIR_TRIES) throw error;
    }
  }
}

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const window = parsePositive(opts.window, 'window', { integer: true });
  if (window > 65535) throw new UsageError(`argument --window: expected at most 65535 packets, got '${opts.window}'`);
  const cc = parseCc(opts.cc);
  const idleTimeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const dirStat = statSync(opts.dir, { throwIfNoEntry: false });
  if (!dirStat) throw new CliError(`--dir ${opts.dir}: it does not exist (create it, or name the folder to serve)`, 2);
  if (!dirStat.isDirectory()) throw new CliError(`--dir ${opts.dir}: it is ${dirStat.isFile() ? 'a file, ' : ''}not a folder (name the folder to serve)`, 2);
  const log = createLogger('ej11-server', { quiet: opts.quiet });

  const { socket, udpAddress, tcp, tcpAddress } = await bindBoth(host, port);
  const options = { dir: opts.dir, window, cc, idleTimeoutMs, log };
  const udp = serveUdp(socket, options);
  serveTcp(tcp, options);
  onShutdown(
    async () => {
      udp.close();
      await Promise.all([new Promise<void>((resolve) => socket.close(() => resolve())), closeGracefully(tcp, 1000)]);
    },
    { log },
  );
  console.log(readyLine(udpAddress, 'udp'));
  console.log(readyLine(tcpAddress, 'tcp'));
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
