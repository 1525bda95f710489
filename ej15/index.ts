/**
 * The state of one node of the distributed index, with no sockets in it: the
 * table of peers heard on the segment (their lists, when they were last
 * heard), the merge of every list into document → nodes, its printed form,
 * and the folder scan and address arithmetic the node needs.
 *
 * @module
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { type Hello, printable, REPLAY_WINDOW_MS } from './protocol.ts';

/** What is known of one peer. */
export interface Peer {
  /** `ADDR:PORT`, how the index names it. */
  label: string;
  /** Its process's random id (a new id at the same label is a restart). */
  id: string;
  address: string;
  port: number;
  /** The newest list generation it announced. */
  announcedGen: number;
  /** The generation of the list held in `docs`, undefined until one is fetched. */
  gen: number | undefined;
  docs: ReadonlySet<string>;
  /** When it was last heard, in ms of the caller's clock. */
  lastSeen: number;
}

/** What a hello changed. */
export interface HelloOutcome {
  peer: Peer;
  /** First heard (or heard again after it left or restarted). */
  joined: boolean;
  /** Its announced list is newer than the one held: fetch it. */
  stale: boolean;
}

/** The most peers a node keeps by default. */
export const MAX_PEERS = 64;

/**
 * The peers of one node, keyed by label, at most `maxPeers` of them. Pure
 * state: the caller owns clocks and sockets.
 */
export class PeerTable {
  readonly peers = new Map<string, Peer>();
  readonly maxPeers: number;

  constructor(maxPeers = MAX_PEERS) {
    this.maxPeers = maxPeers;
  }

  /** Whether a hello from `label` would be kept: a known peer always, a new one while the table has room. */
  admits(label: string): boolean {
    return this.peers.has(label) || this.peers.size < this.maxPeers;
  }

  /**
   * Records a hello received from `address` at `now`. Throws RangeError for
   * a new peer when the table is full (ask {@link admits} first).
   */
  hello(message: Hello, address: string, now: number): HelloOutcome {
    const label = nodeLabel(address, message.port);
    if (!this.admits(label)) throw new RangeError(`Cannot add node ${label}: already ${this.peers.size} nodes, at most ${this.maxPeers}`);
    let peer = this.peers.get(label);
    let joined = false;
    if (!peer || peer.id !== message.id) {
      peer = { label, id: message.id, address, port: message.port, announcedGen: message.gen, gen: undefined, docs: new Set(), lastSeen: now };
      this.peers.set(label, peer);
      joined = true;
    }
    peer.lastSeen = now;
    peer.announcedGen = Math.max(peer.announcedGen, message.gen);
    return { peer, joined, stale: peer.gen === undefined || peer.gen < peer.announcedGen };
  }

  /**
   * Stores a fetched list, if it is from the peer still at `label` (same id)
   * and not older than the one held. Returns whether the peer's documents changed.
   */
  applyList(label: string, id: string, gen: number, docs: readonly string[]): boolean {
    const peer = this.peers.get(label);
    if (!peer || peer.id !== id || (peer.gen !== undefined && gen < peer.gen)) return false;
    const before = peer.docs;
    const first = peer.gen === undefined;
    peer.gen = gen;
    peer.announcedGen = Math.max(peer.announcedGen, gen);
    peer.docs = new Set(docs);
    return first || !sameSet(before, peer.docs);
  }

  /** Forgets the peer at `label` if it has `id` (a bye); returns it. */
  bye(label: string, id: string): Peer | undefined {
    const peer = this.peers.get(label);
    if (!peer || peer.id !== id) return undefined;
    this.peers.delete(label);
    return peer;
  }

  /** Forgets the peers not heard for more than `timeoutMs`; returns them. */
  expire(now: number, timeoutMs: number): Peer[] {
    const gone = [...this.peers.values()].filter((peer) => now - peer.lastSeen > timeoutMs);
    for (const peer of gone) this.peers.delete(peer.label);
    return gone;
  }

  /** The peers whose list is known, as index input. */
  known(): NodeDocs[] {
    return [...this.peers.values()].filter((peer) => peer.gen !== undefined).map((peer) => ({ label: peer.label, docs: peer.docs }));
  }
}

/**
 * Refuses replayed keyed datagrams: one whose `ts` is more than `windowMs`
 * from the receiver's clock, one not newer than the last one accepted from
 * the same id, and one from another source than the id was first heard
 * from (an id is one process, at one address and port: a signed datagram
 * re-sent from elsewhere is a replay). Remembers each id for as long as its
 * last `ts` is inside the window (after that, anything at or before it is
 * refused by the window), so a peer's old hellos cannot be replayed after
 * its bye.
 */
export class ReplayGuard {
  readonly #last = new Map<string, { ts: number; source: string | undefined }>();
  readonly windowMs: number;

  constructor(windowMs = REPLAY_WINDOW_MS) {
    this.windowMs = windowMs;
  }

  /**
   * Accepts (and records) `ts` from `id`, sent from `source` (`ADDR:PORT`),
   * at `now` (ms of the wall clock): undefined, or why it is refused.
   */
  check(id: string, ts: number, now: number, source?: string): string | undefined {
    for (const [known, last] of this.#last) if (last.ts < now - this.windowMs) this.#last.delete(known);
    if (Math.abs(ts - now) > this.windowMs) return `its ts is ${((ts - now) / 1000).toFixed(1)} s from this node's clock, more than ${this.windowMs / 1000} s (a replay, or clocks apart)`;
    const last = this.#last.get(id);
    if (last && source !== undefined && last.source !== undefined && source !== last.source) return `id ${id} was heard from ${last.source}, not from here (a replay)`;
    if (last && ts <= last.ts) return `its ts is not newer than the last one from ${id} (a replay)`;
    this.#last.set(id, { ts, source: last?.source ?? source });
    return undefined;
  }

  /** How many ids it remembers. */
  get size(): number {
    return this.#last.size;
  }
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const item of a) if (!b.has(item)) return false;
  return true;
}

/** How a node is named: `10.78.0.1:8000`, `[fe80::1]:8000`. */
export function nodeLabel(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** One node's documents, as input to {@link buildIndex}. */
export interface NodeDocs {
  label: string;
  docs: Iterable<string>;
}

/** The merged index: every node (sorted), and for each document (sorted) the nodes that hold it (sorted). */
export interface Index {
  nodes: { label: string; count: number }[];
  docs: Map<string, string[]>;
}

/** Merges the lists of `nodes` into document → nodes. A node with no documents is still listed as a node. */
export function buildIndex(nodes: readonly NodeDocs[]): Index {
  const byDoc = new Map<string, Set<string>>();
  const counted: { label: string; count: number }[] = [];
  for (const { label, docs } of nodes) {
    let count = 0;
    for (const doc of docs) {
      let holders = byDoc.get(doc);
      if (!holders) byDoc.set(doc, (holders = new Set()));
      if (!holders.has(label)) count++;
      holders.add(label);
    }
    counted.push({ label, count });
  }
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  counted.sort((a, b) => order(a.label, b.label));
  const docs = new Map([...byDoc.keys()].sort(order).map((doc) => [doc, [...(byDoc.get(doc) ?? [])].sort(order)]));
  return { nodes: counted, docs };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * The index as printed, without its header line:
 * `  node 10.78.0.1:8000 (2 documents)` lines, then
 * `  doc a.txt: 10.78.0.1:8000, 10.78.0.2:8000` lines, then `end of index`.
 * Names come from peers: their control and bidi characters are escaped
 * ({@link printable}), so a name cannot move the cursor, recolour or
 * reorder the terminal.
 */
export function formatIndexBody(index: Index): string {
  const lines = [
    ...index.nodes.map(({ label, count }) => `  node ${printable(label)} (${plural(count, 'document')})`),
    ...[...index.docs].map(([doc, holders]) => `  doc ${printable(doc)}: ${holders.map(printable).join(', ')}`),
    'end of index',
  ];
  return `${lines.join('\n')}\n`;
}

/** The header line of a printed index: `index at 2026-…Z: 3 nodes, 4 documents`. */
export function formatIndexHeader(index: Index, at: Date): string {
  return `index at ${at.toISOString()}: ${plural(index.nodes.length, 'node')}, ${plural(index.docs.size, 'document')}\n`;
}

/** Options of {@link scanFolder}. */
export interface ScanOptions {
  /** Stop after this many documents. */
  max?: number;
  /** Do not descend deeper than this. */
  depth?: number;
}

/**
 * The documents under `folder`: regular files, by path relative to it with
 * `/` separators, sorted. Names starting with `.` (editors' temporary files,
 * `.git`) and names with control characters are left out. Rejects if the
 * folder cannot be read.
 */
export async function scanFolder(folder: string, { max = 10_000, depth = 8 }: ScanOptions = {}): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, prefix: string, level: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (found.length >= max) return;
      if (entry.name.startsWith('.') || /[\u0000-\u001f\u007f]/.test(entry.name)) continue;
      const name = prefix + entry.name;
      if (entry.isFile()) found.push(name);
      else if (entry.isDirectory() && level < depth) await walk(path.join(dir, entry.name), `${name}/`, level + 1).catch(() => {});
    }
  };
  await walk(folder, '', 0);
  return found.sort();
}

/** An IPv4 address as a 32-bit unsigned number, or undefined for anything else. */
export function ipv4ToNumber(address: string): number | undefined {
  const parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address)?.slice(1).map(Number);
  if (!parts || parts.some((p) => p > 255)) return undefined;
  return (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
}

function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** An IPv4 interface address with its netmask, as `os.networkInterfaces()` lists them. */
export interface InterfaceAddress {
  address: string;
  netmask: string;
  family: string | number;
}

/** The interface address entry for `host`, if `host` is one of `interfaces`' IPv4 addresses. */
export function interfaceOf(host: string, interfaces: readonly InterfaceAddress[]): InterfaceAddress | undefined {
  return interfaces.find((entry) => entry.address === host && ipv4ToNumber(entry.netmask) !== undefined);
}

/**
 * The directed broadcast address of the interface that holds `host`
 * (10.78.0.1/24 → 10.78.0.255, 127.0.0.1/8 → 127.255.255.255), or the
 * limited broadcast 255.255.255.255 when `host` is a wildcard or not found.
 */
export function broadcastFor(host: string, interfaces: readonly InterfaceAddress[]): string {
  const entry = interfaceOf(host, interfaces);
  const address = ipv4ToNumber(host);
  const mask = entry && ipv4ToNumber(entry.netmask);
  if (address === undefined || mask === undefined || mask === 0xffffffff) return '255.255.255.255';
  return numberToIpv4((address | ~mask) >>> 0);
}

/**
 * Whether a datagram from `source` belongs to the segment of `host`: always
 * true when `host` is a wildcard or not an interface address here, else
 * true when `source` is in `host`'s subnet.
 */
export function onSegment(source: string, host: string, interfaces: readonly InterfaceAddress[]): boolean {
  const entry = interfaceOf(host, interfaces);
  const mask = entry && ipv4ToNumber(entry.netmask);
  const ours = ipv4ToNumber(host);
  if (mask === undefined || ours === undefined) return true;
  const theirs = ipv4ToNumber(source.replace(/^::ffff:/, ''));
  return theirs !== undefined && ((theirs & mask) >>> 0) === ((ours & mask) >>> 0);
}

/** Reads `--discovery-ports`: `8000-8005`, `8000,8003` or a mix; at most 64 ports. */
export function parsePortList(text: string): number[] {
  const ports = new Set<number>();
  for (const part of text.split(',')) {
    const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    const from = Number(match?.[1]);
    const to = Number(match?.[2] ?? match?.[1]);
    if (!match || from < 1 || to > 65535 || to < from || to - from >= 64) {
      throw new RangeError(`expected ports such as 8000-8005 or 8000,8001 (1-65535, at most 64), got '${text}'`);
    }
    for (let port = from; port <= to; port++) ports.add(port);
  }
  if (ports.size > 64) throw new RangeError(`expected at most 64 ports, got ${ports.size}`);
  return [...ports].sort((a, b) => a - b);
}

/** Ports in the form {@link parsePortList} reads: runs as `8000-8005`, others by commas. */
export function describePorts(ports: readonly number[]): string {
  const runs: string[] = [];
  for (let i = 0; i < ports.length; ) {
    let j = i;
    while (j + 1 < ports.length && (ports[j + 1] as number) === (ports[j] as number) + 1) j++;
    runs.push(j > i ? `${ports[i]}-${ports[j]}` : String(ports[i]));
    i = j + 1;
  }
  return runs.join(',');
}
