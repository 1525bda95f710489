/**
 * A node of a distributed document index: it indexes its folder, finds the
 * other nodes of its network segment by UDP broadcast (SO_BROADCAST), fetches
 * their document lists, keeps all of it current (files added and removed,
 * nodes that leave or fall silent) and prints, for each document, the nodes
 * that hold it.
 *
 * ```sh
 * npx tsx ej15/node.ts --port 8000 --folder ej15/Folder/      # the assignment's example,
 * npx tsx ej15/node.ts --port 8001 --folder ej15/Folder2/     # two nodes on one machine (loopback)
 * npx tsx ej15/node.ts --host 192.168.1.10 --port 8000 --folder docs/   # on a LAN
 * npx tsx ej15/node.ts --port 8002 --list                # print the segment's index once and exit
 * ```
 *
 * Prints `listening on HOST:PORT (tcp)` when ready, then the whole index
 * each time it changes (and when a line is typed on stdin):
 *
 * ```text
 * index at 2026-11-24T21:40:00.000Z: 2 nodes, 3 documents
 *   node 127.0.0.1:8000 (2 documents)
 *   node 127.0.0.1:8001 (2 documents)
 *   doc a.txt: 127.0.0.1:8000
 *   doc b.txt: 127.0.0.1:8000, 127.0.0.1:8001
 *   doc c.txt: 127.0.0.1:8001
 * end of index
 * ```
 *
 * Events (joins, departures, expiries, dropped datagrams) go to stderr. Each
 * node sends a `hello` to the broadcast address on every discovery port
 * (8000–8005) every `--interval` seconds and at once when its folder
 * changes; peers fetch its list over TCP from `ADDR:PORT` when the hello's
 * generation is new to them. Ctrl-C broadcasts a `bye`; a node silent for
 * `--timeout` seconds is dropped. The messages are in protocol.ts and README.md.
 *
 * Without `--key-file` (the assignment's behaviour) discovery is
 * unauthenticated: any host of the segment can announce documents. What
 * holds either way: a node fetches a list only from the address and port a
 * hello came from, and only from a discovery port; a bye counts only from
 * the peer's own address and port; at most `--max-peers` peers, 4 list
 * fetches at once, 1 MiB per list; names are escaped before printing. With
 * `--key-file` every datagram and list is HMAC-SHA256-signed, with a
 * timestamp against replay (README.md, "What it defends against").
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { readFile } from 'node:fs/promises';
import readline from 'node:readline';
import pLimit from 'p-limit';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { bindUdp, closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';
import { broadcastFor, buildIndex, formatIndexBody, formatIndexHeader, type Index, type InterfaceAddress, MAX_PEERS, describePorts, nodeLabel, onSegment, parsePortList, PeerTable, type Peer, ReplayGuard, scanFolder } from './index.ts';
import { decodeList, decodeMessage, encodeList, encodeMessage, type Hello, type ListMessage, MAX_LIST_BYTES, type Message, MIN_KEY_BYTES, printable, VERSION } from './protocol.ts';

const documents = (n: number) => `${n} document${n === 1 ? '' : 's'}`;

/** How long a list fetch over TCP may take. */
const FETCH_TIMEOUT_MS = 5000;
/** The most list fetches a node has under way at once. */
export const MAX_FETCHES = 4;
/** How long the list port keeps a connection whose client neither reads nor leaves. */
const LIST_IDLE_MS = 5000;
/** The most connections the list port holds at once; more are closed at once. */
const LIST_CONNECTIONS = 64;
/** What a list client may send (it has nothing to say) before it is cut off. */
const LIST_CLIENT_BYTES = 4096;
/** How often a node logs that it refuses peers (the first refusal, then a count). */
const REFUSAL_LOG_MS = 10_000;

/** The IPv4 addresses of this machine's interfaces, as {@link broadcastFor} wants them. */
export function localInterfaces(): InterfaceAddress[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((entry): entry is os.NetworkInterfaceInfo => entry !== undefined && (entry.family === 'IPv4' || (entry.family as unknown) === 4));
}

/** Options of {@link fetchList}. */
export interface FetchOptions {
  timeoutMs?: number;
  /** Refuse a list longer than this (default {@link MAX_LIST_BYTES}). */
  maxBytes?: number;
  /** The shared key: the list must carry its mac. */
  key?: Uint8Array | undefined;
}

/**
 * Fetches a node's list over TCP: connects to `address:port`, reads one JSON
 * line (at most `maxBytes`: it stops reading as soon as the answer passes
 * that), decodes it. Rejects with a plain message on refusal, timeout, an
 * oversized or malformed answer, or (with a key) a wrong mac.
 */
export function fetchList(address: string, port: number, { timeoutMs = FETCH_TIMEOUT_MS, maxBytes = MAX_LIST_BYTES, key }: FetchOptions = {}): Promise<ListMessage> {
  return new Promise((resolve, reject) => {
    const where = formatAddress(address, port);
    const chunks: Buffer[] = [];
    let size = 0;
    const socket = net.connect({ host: address, port });
    const fail = (message: string) => {
      socket.destroy();
      reject(new Error(`Cannot fetch the list of ${where}: ${message}`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs / 1000} s`));
    socket.on('error', (error) => fail(error.message));
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) return fail(`more than ${maxBytes} bytes`);
      chunks.push(chunk);
    });
    socket.on('end', () => {
      socket.destroy();
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text.endsWith('\n')) return reject(new Error(`Cannot fetch the list of ${where}: the answer ended before its newline`));
      try {
        resolve(decodeList(text, key));
      } catch (error) {
        reject(new Error(`Cannot fetch the list of ${where}: ${(error as Error).message}`));
      }
    });
  });
}

/** Options of {@link IndexNode}. */
export interface NodeOptions {
  host: string;
  port: number;
  folder: string;
  broadcast: string;
  discoveryPorts: readonly number[];
  intervalMs: number;
  timeoutMs: number;
  scanMs: number;
  log?: Logger;
  /** Receives each printed index (header and body). */
  print?: (text: string) => void;
  interfaces?: readonly InterfaceAddress[];
  /** A key shared by the nodes: every datagram and list is signed with it, and only signed ones are believed. */
  key?: Uint8Array | undefined;
  /** The most peers kept (default {@link MAX_PEERS}); hellos from more are refused. */
  maxPeers?: number;
  /** The most list fetches under way at once (default {@link MAX_FETCHES}). */
  maxFetches?: number;
  /** The longest list fetched (default {@link MAX_LIST_BYTES}). */
  maxListBytes?: number;
}

/** A sender's `ts`: the wall clock, strictly rising (two datagrams in one ms differ). */
function clock(): () => number {
  let last = 0;
  return () => (last = Math.max(Date.now(), last + 1));
}

/**
 * Why a hello or bye from `from` is not believed, or undefined: a node sends
 * from its own port, so the port it names must be the datagram's source
 * port, and one of the discovery ports. (The address is never a field: it
 * is the datagram's source address.)
 */
export function sourceProblem(message: Message, from: { port: number }, discoveryPorts: readonly number[]): string | undefined {
  if (message.port !== from.port) return `it names port ${message.port}, not its source port ${from.port} (a node sends from its own port)`;
  if (!discoveryPorts.includes(from.port)) return `port ${from.port} is not a discovery port (${discoveryPorts.join(',')})`;
  return undefined;
}

/** One node: its sockets, timers, folder and peer table. */
export class IndexNode {
  readonly id = randomBytes(8).toString('hex');
  readonly table: PeerTable;
  readonly options: NodeOptions;
  docs: string[] = [];
  gen = 0;
  label: string;
  readonly #log: Logger;
  readonly #print: (text: string) => void;
  readonly #interfaces: readonly InterfaceAddress[];
  readonly #udp = dgram.createSocket({ type: 'udp4' });
  readonly #tcp = trackConnections(net.createServer());
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #fetching = new Set<string>();
  readonly #replays = new ReplayGuard();
  readonly #ts = clock();
  #listLine: { gen: number; line: string } | undefined;
  #refusedAt = -Infinity;
  #refusedSince = 0;
  #oversized = false;
  #lastPrinted = '';
  #scanning = false;
  #scanFailed = false;
  #stopped = false;

  constructor(options: NodeOptions) {
    this.options = options;
    this.#log = options.log ?? silent;
    this.#print = options.print ?? ((text) => process.stdout.write(text));
    this.#interfaces = options.interfaces ?? localInterfaces();
    this.table = new PeerTable(options.maxPeers ?? MAX_PEERS);
    this.label = nodeLabel(options.host, options.port);
  }

  /** The list line served on the TCP port, encoded (and signed) once per generation. */
  #list(): string {
    if (this.#listLine?.gen !== this.gen) {
      const key = this.options.key;
      const line = encodeList({ v: VERSION, type: 'list', id: this.id, gen: this.gen, ...(key ? { ts: this.#ts() } : {}), docs: this.docs }, key);
      const bytes = Buffer.byteLength(line);
      const bound = this.options.maxListBytes ?? MAX_LIST_BYTES;
      if (bytes > bound && !this.#oversized) this.#log(`this node's list is ${bytes} bytes, over the ${bound} that nodes accept: they will refuse it (fewer or shorter names)`);
      this.#oversized = bytes > bound;
      this.#listLine = { gen: this.gen, line };
    }
    return this.#listLine.line;
  }

  /** Scans the folder, binds TCP on host:port and UDP on 0.0.0.0:port, announces itself. */
  async start(): Promise<AddressInfo> {
    const { host, port, folder } = this.options;
    try {
      this.docs = await scanFolder(folder);
    } catch (error) {
      throw new CliError(`cannot index folder ${folder}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (error as Error).message}`);
    }
    this.#tcp.maxConnections = LIST_CONNECTIONS;
    this.#tcp.on('connection', (socket) => {
      socket.on('error', () => {});
      // A client has nothing to say, but what it sends must be read: else its
      // FIN is never seen and the socket (a descriptor) stays open for good.
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > LIST_CLIENT_BYTES) socket.destroy();
      });
      // One that neither reads nor leaves is cut off.
      socket.setTimeout(LIST_IDLE_MS, () => socket.destroy());
      socket.end(this.#list());
    });
    // A node's port is one of the discovery ports, so --port 0 is no way out of a port in use.
    const inUse = `another node? each node on a machine needs its own port of ${describePorts(this.options.discoveryPorts)}: pick a free one with --port`;
    const address = await listenTcp(this.#tcp, host, port, { inUse });
    // Logged only once listening: a failed listen is the CliError above, said once.
    this.#tcp.on('error', (error) => this.#log(`tcp error: ${error.message}`));
    // Broadcasts reach only a socket bound to the wildcard address (or to the
    // broadcast address itself); the TCP server keeps --host.
    await bindUdp(this.#udp, '0.0.0.0', address.port, { inUse });
    this.#udp.setBroadcast(true);
    this.#udp.on('message', (datagram, from) => this.#onDatagram(datagram, from));
    this.#udp.on('error', (error) => this.#log(`udp error: ${error.message}`));
    const { intervalMs, timeoutMs, scanMs } = this.options;
    this.#timers.push(setInterval(() => this.announce(), intervalMs));
    this.#timers.push(setInterval(() => void this.rescan(), scanMs));
    this.#timers.push(setInterval(() => this.expire(), Math.max(100, Math.min(1000, timeoutMs / 4))));
    this.announce();
    return address;
  }

  /** The index as it stands: this node's documents and those of every peer whose list is known. */
  index(): Index {
    return buildIndex([{ label: this.label, docs: this.docs }, ...this.table.known()]);
  }

  /** Prints the index if it changed since the last print (or always, with `force`). */
  printIndex(force = false): void {
    const index = this.index();
    const body = formatIndexBody(index);
    if (!force && body === this.#lastPrinted) return;
    this.#lastPrinted = body;
    this.#print(formatIndexHeader(index, new Date()) + body);
  }

  /** `message` as a datagram: signed, with a fresh ts, when the node has a key. */
  #encode(message: Message): Uint8Array {
    const key = this.options.key;
    return key ? encodeMessage({ ...message, ts: this.#ts() }, key) : encodeMessage(message);
  }

  #send(message: Message, port: number, address: string, bytes = this.#encode(message)): void {
    this.#udp.send(bytes, port, address, (error) => {
      if (error && !this.#stopped) this.#log(`cannot send ${message.type} to ${formatAddress(address, port)}: ${error.message}`);
    });
  }

  #hello(): Hello {
    return { v: VERSION, type: 'hello', id: this.id, port: this.options.port, gen: this.gen, count: this.docs.length };
  }

  /** Broadcasts a hello on every discovery port. */
  announce(): void {
    const hello = this.#hello();
    // The same bytes (one ts) to every port: a copy heard on another port is no fresher than the one a node got.
    const bytes = this.#encode(hello);
    for (const port of this.options.discoveryPorts) this.#send(hello, port, this.options.broadcast, bytes);
  }

  /** Re-reads the folder; on a change raises the generation, announces it and prints. */
  async rescan(): Promise<void> {
    if (this.#scanning || this.#stopped) return;
    this.#scanning = true;
    try {
      let docs: string[];
      try {
        docs = await scanFolder(this.options.folder);
        this.#scanFailed = false;
      } catch (error) {
        if (!this.#scanFailed) this.#log(`cannot read folder ${this.options.folder}: ${(error as Error).message}; indexing it as empty`);
        this.#scanFailed = true;
        docs = [];
      }
      if (docs.length === this.docs.length && docs.every((doc, i) => doc === this.docs[i])) return;
      const before = new Set(this.docs);
      const after = new Set(docs);
      const added = docs.filter((doc) => !before.has(doc));
      const removed = this.docs.filter((doc) => !after.has(doc));
      this.docs = docs;
      this.gen++;
      this.#log(`folder changed (list ${this.gen}): ${printable([...added.map((d) => `+${d}`), ...removed.map((d) => `-${d}`)].join(' ').slice(0, 300))}`);
      if (!this.#stopped) this.announce();
      this.printIndex();
    } finally {
      this.#scanning = false;
    }
  }

  /** Drops the peers not heard within the timeout. */
  expire(): void {
    const gone = this.table.expire(performance.now(), this.options.timeoutMs);
    for (const peer of gone) this.#log(`node ${peer.label} expired: not heard for ${this.options.timeoutMs / 1000} s`);
    if (gone.length > 0) this.printIndex();
  }

  #onDatagram(datagram: Buffer, from: dgram.RemoteInfo): void {
    const where = formatAddress(from.address, from.port);
    let message: Message;
    try {
      message = decodeMessage(datagram, this.options.key);
    } catch (error) {
      this.#log(`dropped a datagram from ${where}: ${(error as Error).message}`);
      return;
    }
    if (this.options.key && message.id !== this.id) {
      const replay = this.#replays.check(message.id, message.ts ?? 0, Date.now(), where);
      if (replay) return this.#log(`dropped a ${message.type} from ${where}: ${replay}`);
    }
    if (message.id === this.id) {
      // Our own broadcast, looped back: with a wildcard --host it tells the address peers see.
      if (this.options.host === '0.0.0.0' && message.type === 'hello' && !this.label.startsWith(from.address)) {
        this.label = nodeLabel(from.address, this.options.port);
        this.printIndex();
      }
      return;
    }
    if (!onSegment(from.address, this.options.host, this.#interfaces)) {
      this.#log(`dropped a ${message.type} from ${where}: not on the segment of ${this.options.host}`);
      return;
    }
    if (message.type === 'query') {
      this.#send(this.#hello(), from.port, from.address);
      return;
    }
    const problem = sourceProblem(message, from, this.options.discoveryPorts);
    if (problem) return this.#log(`dropped a ${message.type} from ${where}: ${problem}`);
    if (message.type === 'bye') {
      const peer = this.table.bye(nodeLabel(from.address, message.port), message.id);
      if (peer) {
        this.#log(`node ${peer.label} left (bye)`);
        this.printIndex();
      }
    } else {
      const label = nodeLabel(from.address, message.port);
      if (!this.table.admits(label)) return this.#refused(label);
      const { peer, joined, stale } = this.table.hello(message, from.address, performance.now());
      if (joined) {
        this.#log(`node ${peer.label} joined (list ${message.gen}, ${documents(message.count)})`);
        // A newcomer learns of us now, not at our next periodic hello.
        this.#send(this.#hello(), message.port, from.address);
      }
      if (stale) this.#fetch(peer);
    }
  }

  /** Logs a refused newcomer: the first at once, then at most one line per {@link REFUSAL_LOG_MS} with a count. */
  #refused(label: string): void {
    const now = performance.now();
    this.#refusedSince++;
    if (now - this.#refusedAt < REFUSAL_LOG_MS) return;
    const more = this.#refusedSince > 1 ? `; ${this.#refusedSince - 1} more hellos from new nodes refused before it` : '';
    this.#log(`refused node ${label}: already ${this.table.peers.size} nodes (the most this node keeps)${more}`);
    this.#refusedAt = now;
    this.#refusedSince = 0;
  }

  #fetch(peer: Peer): void {
    // Still stale: the next hello asks again, when a fetch has ended.
    if (this.#fetching.has(peer.label) || this.#stopped || this.#fetching.size >= (this.options.maxFetches ?? MAX_FETCHES)) return;
    this.#fetching.add(peer.label);
    fetchList(peer.address, peer.port, { maxBytes: this.options.maxListBytes ?? MAX_LIST_BYTES, key: this.options.key })
      .then((list) => {
        if (list.id !== peer.id) return this.#log(`node ${peer.label}: list from another process (id ${list.id}); ignored`);
        if (this.table.applyList(peer.label, list.id, list.gen, list.docs)) {
          this.#log(`node ${peer.label}: list ${list.gen}, ${documents(list.docs.length)}`);
          if (!this.#stopped) this.printIndex();
        }
      })
      .catch((error: Error) => this.#log(error.message))
      .finally(() => this.#fetching.delete(peer.label));
  }

  /** Broadcasts a bye (twice: a datagram may be lost) and closes everything. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 2; i++) {
      // Each its own datagram: with a key, a second copy of one ts would be refused as a replay.
      const bye = this.#encode({ v: VERSION, type: 'bye', id: this.id, port: this.options.port });
      for (const port of this.options.discoveryPorts) {
        sends.push(new Promise((resolve) => this.#udp.send(bye, port, this.options.broadcast, () => resolve())));
      }
    }
    await Promise.all(sends);
    await new Promise<void>((resolve) => this.#udp.close(() => resolve()));
    await closeGracefully(this.#tcp, 500);
  }
}

/**
 * `--list`: asks the segment (a `query` broadcast, sent twice), fetches the
 * list of every node that answers within `waitMs`, and returns the index of
 * the nodes heard; this process is not a node of it.
 */
export async function listSegment(
  options: Pick<NodeOptions, 'broadcast' | 'discoveryPorts' | 'host' | 'key' | 'maxPeers' | 'maxFetches' | 'maxListBytes'> & { waitMs: number; log?: Logger; interfaces?: readonly InterfaceAddress[] },
): Promise<Index> {
  const log = options.log ?? silent;
  const interfaces = options.interfaces ?? localInterfaces();
  const { key } = options;
  const table = new PeerTable(options.maxPeers ?? MAX_PEERS);
  const replays = new ReplayGuard();
  const ts = clock();
  const limit = pLimit(options.maxFetches ?? MAX_FETCHES);
  const id = randomBytes(8).toString('hex');
  const socket = dgram.createSocket({ type: 'udp4' });
  const fetches: Promise<void>[] = [];
  const fetching = new Set<string>();
  let refused = 0;
  socket.on('message', (datagram, from) => {
    const where = formatAddress(from.address, from.port);
    let message: Message;
    try {
      message = decodeMessage(datagram, key);
    } catch (error) {
      return log(`dropped a datagram from ${where}: ${(error as Error).message}`);
    }
    if (message.type !== 'hello' || !onSegment(from.address, options.host, interfaces)) return;
    const problem = sourceProblem(message, from, options.discoveryPorts) ?? (key ? replays.check(message.id, message.ts ?? 0, Date.now(), where) : undefined);
    if (problem) return log(`dropped a hello from ${where}: ${problem}`);
    const label = nodeLabel(from.address, message.port);
    if (!table.admits(label)) {
      if (refused++ === 0) log(`refused node ${label}: already ${table.peers.size} nodes (the most this node keeps)`);
      return;
    }
    const { peer, stale } = table.hello(message, from.address, performance.now());
    if (stale && !fetching.has(peer.label)) {
      fetching.add(peer.label);
      fetches.push(
        limit(() => fetchList(peer.address, peer.port, { maxBytes: options.maxListBytes ?? MAX_LIST_BYTES, key }))
          .then((list) => void table.applyList(peer.label, list.id, list.gen, list.docs))
          .catch((error: Error) => log(error.message))
          .finally(() => fetching.delete(peer.label)),
      );
    }
  });
  socket.on('error', (error) => log(`udp error: ${error.message}`));
  const bound = await bindUdp(socket, '0.0.0.0', 0);
  socket.setBroadcast(true);
  const ask = () => {
    const message: Message = { v: VERSION, type: 'query', id, port: bound.port };
    const query = key ? encodeMessage({ ...message, ts: ts() }, key) : encodeMessage(message);
    for (const port of options.discoveryPorts) socket.send(query, port, options.broadcast, (error) => error && log(`cannot send query: ${error.message}`));
  };
  ask();
  const again = setTimeout(ask, options.waitMs / 2);
  await new Promise((resolve) => setTimeout(resolve, options.waitMs));
  clearTimeout(again);
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  await Promise.all(fetches);
  return buildIndex(table.known());
}

const command = defineCommand({
  name: 'node.ts',
  summary: 'A node of a distributed document index: finds its segment\'s nodes by UDP broadcast and prints, for each document, the nodes that hold it.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address of this node: its TCP list service, and the segment it serves (0.0.0.0: all)' },
    port: { type: 'string', default: '8000', help: 'UDP and TCP port of this node, one of the discovery ports' },
    folder: { type: 'string', default: '.', help: 'folder whose files this node indexes' },
    broadcast: { type: 'string', metavar: 'ADDR', help: "broadcast address (default: --host's interface broadcast, 127.255.255.255 for 127.0.0.1; 255.255.255.255 for 0.0.0.0)" },
    'discovery-ports': { type: 'string', default: '8000-8005', metavar: 'PORTS', help: 'ports every hello is broadcast to' },
    interval: { type: 'string', default: '2', metavar: 'SECONDS', help: 'seconds between hellos' },
    timeout: { type: 'string', default: '8', metavar: 'SECONDS', help: 'drop a node not heard for this long' },
    scan: { type: 'string', default: '1', metavar: 'SECONDS', help: 'seconds between scans of the folder' },
    list: { type: 'boolean', help: 'ask the segment, print its index once and exit (this process is no node)' },
    wait: { type: 'string', default: '2', metavar: 'SECONDS', help: 'with --list: how long to wait for answers' },
    'key-file': { type: 'string', metavar: 'FILE', help: 'a key shared by the nodes (at least 16 bytes; a trailing newline is not part of it): sign every datagram and list, believe only signed ones (default: none, as the assignment: anyone on the segment is believed)' },
    'max-peers': { type: 'string', default: String(MAX_PEERS), metavar: 'N', help: 'the most nodes kept; hellos from more are refused' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log events on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (tcp)" when ready, then the index whenever it changes
and whenever a line is typed on stdin. Ctrl-C announces the departure (bye) and exits.
On one machine, nodes on 127.0.0.1 find each other through 127.255.255.255 (loopback's
broadcast address); on a LAN give --host the machine's address on it.
Exit status: 0 stopped by Ctrl-C or SIGTERM (or --list done), 1 the folder or key file cannot be read or the port is taken, 2 bad usage, 130 a second Ctrl-C.`,
});

/** The key in `file`: its bytes less a trailing newline, at least {@link MIN_KEY_BYTES}. */
export async function readKey(file: string): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new CliError(`cannot read key file ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  let end = bytes.length;
  if (bytes[end - 1] === 0x0a) end--;
  if (bytes[end - 1] === 0x0d) end--;
  if (end < MIN_KEY_BYTES) throw new CliError(`key file ${file}: expected at least ${MIN_KEY_BYTES} bytes, got ${end}`);
  return bytes.subarray(0, end);
}

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  if (net.isIPv4(host) === false) throw new UsageError(`argument --host: expected an IPv4 address (broadcast is IPv4 only), got '${host}'`);
  const port = parsePort(opts.port);
  let discoveryPorts: number[];
  try {
    discoveryPorts = parsePortList(opts['discovery-ports']);
  } catch (error) {
    throw new UsageError(`argument --discovery-ports: ${(error as Error).message}`);
  }
  const broadcast = opts.broadcast === undefined ? broadcastFor(host, localInterfaces()) : parseHost(opts.broadcast, 'broadcast');
  if (!net.isIPv4(broadcast)) throw new UsageError(`argument --broadcast: expected an IPv4 address, got '${broadcast}'`);
  const intervalMs = parsePositive(opts.interval, 'interval') * 1000;
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const scanMs = parsePositive(opts.scan, 'scan') * 1000;
  const waitMs = parsePositive(opts.wait, 'wait') * 1000;
  if (timeoutMs <= intervalMs) throw new UsageError(`argument --timeout: expected more than --interval (${intervalMs / 1000} s), got '${opts.timeout}'`);
  const maxPeers = parsePositive(opts['max-peers'], 'max-peers', { integer: true });
  const key = opts['key-file'] === undefined ? undefined : await readKey(opts['key-file']);
  const log = createLogger('node', { quiet: opts.quiet });

  if (opts.list) {
    const index = await listSegment({ host, broadcast, discoveryPorts, waitMs, log, key, maxPeers });
    process.stdout.write(formatIndexHeader(index, new Date()) + formatIndexBody(index));
    return;
  }
  if (!discoveryPorts.includes(port)) {
    throw new UsageError(`argument --port: expected one of the discovery ports ${opts['discovery-ports']} (the others broadcast only there), got '${opts.port}'`);
  }
  const node = new IndexNode({ host, port, folder: opts.folder, broadcast, discoveryPorts, intervalMs, timeoutMs, scanMs, log, key, maxPeers });
  const address = await node.start();
  // After start: the ready line comes first on stdout, then the first index.
  console.log(readyLine(address, 'tcp'));
  node.printIndex();
  log(`node ${node.label} (id ${node.id}) indexing ${opts.folder}: ${documents(node.docs.length)}; hellos to ${broadcast} ports ${opts['discovery-ports']}; ${key ? 'signed with the key file' : 'unauthenticated (no --key-file)'}`);
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', () => node.printIndex(true));
  onShutdown(
    async () => {
      lines.close();
      process.stdin.destroy();
      await node.stop();
      log(`node ${node.label} left: bye sent`);
    },
    { log },
  );
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
