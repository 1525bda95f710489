/**
 * One node of a logical ring (token ring over TCP). Each node listens on
 * the address its `[nodoX]` section of `config.ini` gives, connects to its
 * successor (`--id_dst`, as in the assignment: the node it forwards to), and
 * transmits only while it holds the token: one message from its message file
 * per turn, which travels the ring, is acknowledged by its destination and
 * returns to its origin, which then passes the token on. Node 0 holds the
 * token first and, once a whole round passes with no message left anywhere,
 * sends the finalisation frame, which travels the ring once; every node
 * forwards it and exits 0. The frame is in protocol.ts; the specification in
 * RFC form is PROTOCOL.md.
 *
 * ```sh
 * # three terminals, in this order or any other (ej13/config.ini names ports 8000-8002)
 * npx tsx ej13/node.ts --id 1 --id_dst 2
 * npx tsx ej13/node.ts --id 2 --id_dst 0
 * npx tsx ej13/node.ts --id 0 --id_dst 1
 * ```
 *
 * `config.ini` is read from the current folder (as the assignment's
 * `python nodo.py` does), else from beside this script; `--config FILE`
 * names another. One section per node, `X` being its id:
 *
 * ```ini
 * [nodo0]
 * host = 127.0.0.1
 * port = 8000
 * ```
 *
 * Messages come from `--messages FILE` (default `nodoID.txt` in the current
 * folder, else beside this script; none if there is no such file): one
 * message per line, `DESTINATION<TAB>TEXT`, blank lines and `#` comments
 * ignored.
 *
 * Prints `listening on HOST:PORT (tcp)` when it listens, then
 * `from ID: TEXT` for every message addressed to it, on stdout; one
 * timestamped line per event (connections, frames sent and received,
 * rejected frames) on stderr. Exit 0 after the finalisation frame, 1 when
 * the ring breaks (the successor cannot be reached within `--wait` seconds
 * or closes its connection), 2 for a bad option, config.ini or message file.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand, formatAddress, parsePositive, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { configPath as sharedConfigPath, parseHostSections } from '../lib/config-ini.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { FrameReader } from '../lib/pdu.ts';
import { listenTcp, onShutdown, readyLine } from '../lib/server.ts';
import { describeFrame, Frame, MAX_DATA, MAX_FRAME_LENGTH, MAX_ID, type RingFrame } from './protocol.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The example configuration beside this script, used when the current folder has no config.ini. */
export const BUNDLED_CONFIG = path.join(HERE, 'config.ini');

// ---------------------------------------------------------------------------
// config.ini

/** One node as config.ini declares it. */
export interface NodeSpec {
  id: number;
  host: string;
  port: number;
  /** The line of its `[nodoX]` header. */
  line: number;
}

/** A config.ini or message file that cannot be used: the message names the file and the line. */
export class InputError extends SyntaxError {
  readonly line: number | undefined;
  constructor(message: string, line?: number) {
    super(message);
    this.name = 'InputError';
    this.line = line;
  }
}

const SECTION = /^nodo(0|[1-9]\d*)$/;

/**
 * Reads the nodes from config.ini text, in ring order: ascending id, the
 * last one followed by the first (lib/config-ini: each mistake reported with
 * its line). Throws {@link InputError}.
 */
export function parseConfig(text: string, file = 'config.ini'): NodeSpec[] {
  const sections = parseHostSections(text, {
    file,
    what: 'nodes',
    example: '[nodo0]',
    header: '[nodoX]',
    checkSection(name) {
      const id = SECTION.exec(name)?.[1];
      return id !== undefined && Number(id) <= MAX_ID ? undefined : `section [${name}] must be [nodoX] with X a node id 0-${MAX_ID} (like [nodo0])`;
    },
    error: (message, line) => new InputError(message, line),
  });
  return sections.map(({ name, host, port, line }) => ({ id: Number(SECTION.exec(name)?.[1]), host, port, line })).sort((a, b) => a.id - b.id);
}

/** The node after `id` in ring order (ascending id, wrapping): its default successor, `--id_dst`. */
export function successorOf(nodes: readonly NodeSpec[], id: number): NodeSpec {
  const index = nodes.findIndex((node) => node.id === id);
  if (index === -1) throw new RangeError(`Cannot find the successor of node ${id}: it is not in the ring`);
  return nodes[(index + 1) % nodes.length] as NodeSpec;
}

/** The ids of the ring in order, starting at `from`, as each frame visits them. */
export function ringOrder(nodes: readonly NodeSpec[], from = nodes[0]?.id ?? 0): number[] {
  const order: number[] = [];
  let id = from;
  for (let i = 0; i < nodes.length; i++) {
    order.push(id);
    id = successorOf(nodes, id).id;
  }
  return order;
}

/**
 * Which config.ini to read: `--config` when given, else `./config.ini`,
 * else the example beside this script.
 */
export function configPath(option: string | undefined, cwd = process.cwd()): string {
  return sharedConfigPath(option, BUNDLED_CONFIG, cwd);
}

// ---------------------------------------------------------------------------
// Message files

/** One message to send: its destination id and its text. */
export interface OutgoingMessage {
  dst: number;
  text: string;
  /** Its line in the message file. */
  line: number;
}

/**
 * Reads a message file: one message per line, `DESTINATION<TAB>TEXT`, the
 * destination a node id in decimal, the text everything after the first tab
 * (UTF-8, at most {@link MAX_DATA} bytes, may be empty). Blank lines and
 * lines starting with `#` are skipped; CRLF and a BOM are accepted. Throws
 * {@link InputError} naming the file and the line.
 */
export function parseMessages(text: string, file = 'messages'): OutgoingMessage[] {
  const messages: OutgoingMessage[] = [];
  for (const [index, raw] of text.replace(/^\uFEFF/, '').split('\n').entries()) {
    const n = index + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.startsWith('#')) continue;
    const tab = line.indexOf('\t');
    const dst = tab === -1 ? line : line.slice(0, tab);
    if (tab === -1 || !/^\d+$/.test(dst)) {
      const hint = /^\d+ +/.test(line) ? ' (separate the destination from the text with a tab, not spaces)' : '';
      throw new InputError(`Cannot use ${file} line ${n}: expected DESTINATION<TAB>TEXT, got ${JSON.stringify(line.slice(0, 60))}${hint}`, n);
    }
    if (Number(dst) > MAX_ID) throw new InputError(`Cannot use ${file} line ${n}: destination ${dst} is not a node id (0-${MAX_ID})`, n);
    const body = line.slice(tab + 1);
    if (/\p{Surrogate}/u.test(body)) throw new InputError(`Cannot use ${file} line ${n}: the text is not valid Unicode`, n);
    const size = new TextEncoder().encode(body).length;
    if (size > MAX_DATA) throw new InputError(`Cannot use ${file} line ${n}: the text is ${size} bytes, more than the ${MAX_DATA} a frame carries`, n);
    messages.push({ dst: Number(dst), text: body, line: n });
  }
  return messages;
}

/** Checks that every destination is another configured node; throws {@link InputError} naming the line. */
export function checkDestinations(messages: readonly OutgoingMessage[], nodes: readonly NodeSpec[], self: number, file = 'messages'): void {
  const known = new Set(nodes.map((node) => node.id));
  for (const message of messages) {
    if (message.dst === self) throw new InputError(`Cannot use ${file} line ${message.line}: destination ${message.dst} is this node itself`, message.line);
    if (!known.has(message.dst)) {
      throw new InputError(`Cannot use ${file} line ${message.line}: no node ${message.dst} in config.ini (there are ${[...known].join(', ')})`, message.line);
    }
  }
}

/** Which message file to read: `--messages`, else `nodoID.txt` here, else beside this script; undefined when none exists. */
export function messagesPath(option: string | undefined, id: number, cwd = process.cwd()): string | undefined {
  if (option !== undefined) return option;
  for (const dir of [cwd, HERE]) {
    const file = path.join(dir, `nodo${id}.txt`);
    if (existsSync(file)) return file;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// The node

/** Options of {@link RingNode}. */
export interface RingNodeOptions {
  /** This node's id and listening address. */
  self: NodeSpec;
  /** The node it forwards to (`--id_dst`). */
  successor: NodeSpec;
  /** Every configured id: frames naming another id are discarded. */
  known: Iterable<number>;
  messages: readonly OutgoingMessage[];
  /** How long to keep trying to reach the successor (default 60 s). */
  connectTimeoutMs?: number;
  /** Receives every message addressed to this node. */
  deliver?: (src: number, text: string) => void;
  log?: Logger;
}

/** Delay between attempts to reach a successor that is not up yet. */
const RETRY_MS = 250;

/**
 * A ring node: listens, reaches its successor (retrying until the deadline),
 * and plays the protocol of PROTOCOL.md. `start()` resolves with the bound
 * address; `finished` resolves once the finalisation frame has passed (and
 * every socket is closed) or rejects with a {@link CliError} when the ring
 * breaks. Any number of connections may come in: each has its own frame
 * reader, and a malformed frame closes only its connection.
 */
export class RingNode {
  readonly id: number;
  readonly finished: Promise<void>;
  readonly #opts: Required<Omit<RingNodeOptions, 'known'>> & { known: Set<number> };
  readonly #server: net.Server;
  readonly #inbound = new Set<net.Socket>();
  readonly #queue: RingFrame[] = [];
  readonly #pending: OutgoingMessage[];
  #out: net.Socket | undefined;
  #connected = false;
  #retry: NodeJS.Timeout | undefined;
  #finTimer: NodeJS.Timeout | undefined;
  #holding = false;
  #awaiting: OutgoingMessage | undefined;
  /** Node 0 only: a message passed through since it last passed the token. */
  #busyRound = false;
  #passedOnce = false;
  #finSent = false;
  #state: 'running' | 'finishing' | 'closed' = 'running';
  #resolve!: () => void;
  #reject!: (error: Error) => void;

  constructor(options: RingNodeOptions) {
    this.#opts = {
      connectTimeoutMs: 60_000,
      deliver: () => {},
      log: silent,
      ...options,
      known: new Set(options.known),
    };
    this.id = options.self.id;
    this.#pending = [...options.messages];
    this.finished = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.finished.catch(() => {}); // the caller awaits it; no unhandled rejection meanwhile
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  /** Listens on the node's own address and starts reaching its successor; node 0 then takes the first turn. */
  async start(): Promise<net.AddressInfo> {
    const address = await listenTcp(this.#server, this.#opts.self.host, this.#opts.self.port);
    this.#connect(Date.now() + this.#opts.connectTimeoutMs);
    if (this.id === 0) {
      this.#opts.log('node 0 holds the token first');
      this.#holding = true;
      this.#turn();
    }
    return address;
  }

  /** Closes every socket and timer; `finished` rejects with `reason` unless it has already settled. */
  close(reason?: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#retry);
    clearTimeout(this.#finTimer);
    this.#server.close();
    for (const socket of this.#inbound) socket.destroy();
    this.#out?.destroy();
    if (reason) this.#reject(reason);
    else this.#resolve();
  }

  // -- connections ----------------------------------------------------------

  #connect(deadline: number): void {
    if (this.#state === 'closed') return;
    const { successor, log } = this.#opts;
    const where = `nodo${successor.id} at ${formatAddress(successor.host, successor.port)}`;
    const socket = net.connect({ host: successor.host, port: successor.port });
    this.#out = socket;
    socket.setNoDelay(true);
    let up = false; // this attempt's own state: a failed attempt's late 'close' must not count
    socket.once('connect', () => {
      up = true;
      this.#connected = true;
      log(`connected to successor ${where}`);
      for (const frame of this.#queue.splice(0)) this.#write(frame);
      if (this.#state === 'finishing') this.#endOutbound();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (this.#state === 'closed') return;
      if (!up) {
        if (Date.now() + RETRY_MS > deadline) {
          this.close(new CliError(`cannot reach successor ${where} within ${Math.round(this.#opts.connectTimeoutMs / 1000)} s: ${error.code ?? error.message}`));
          return;
        }
        this.#retry = setTimeout(() => this.#connect(deadline), RETRY_MS);
        return;
      }
      log(`connection to successor ${where}: ${error.code ?? error.message}`);
    });
    socket.on('close', () => {
      if (!up || this.#state !== 'running') return;
      this.close(new CliError(`ring broken: successor ${where} closed the connection before the finalisation frame`));
    });
    socket.on('data', () => {}); // the successor never writes back; keep the socket flowing
  }

  #accept(socket: net.Socket): void {
    const { log } = this.#opts;
    if (this.#state === 'closed') {
      socket.destroy();
      return;
    }
    const peer = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    this.#inbound.add(socket);
    log(`connection from ${peer}`);
    const reader = new FrameReader(Frame, { maxFrameLength: MAX_FRAME_LENGTH });
    const reject = (error: unknown) => {
      log(`rejected frame from ${peer}: ${error instanceof Error ? error.message : String(error)}; closing that connection`);
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      let frames: RingFrame[];
      try {
        frames = reader.push(chunk);
      } catch (error) {
        reject(error);
        return;
      }
      for (const frame of frames) if (this.#state !== 'closed') this.#handle(frame, peer);
    });
    socket.on('end', () => {
      try {
        reader.end();
      } catch (error) {
        reject(error);
        return;
      }
      socket.end();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => log(`connection from ${peer}: ${error.code ?? error.message}`));
    socket.on('close', () => {
      this.#inbound.delete(socket);
      if (this.#state === 'running') log(`connection from ${peer} closed`);
    });
  }

  #send(frame: RingFrame): void {
    this.#opts.log(`send ${describeFrame(frame)} to nodo${this.#opts.successor.id}`);
    if (this.#connected) this.#write(frame);
    else this.#queue.push(frame);
  }

  #write(frame: RingFrame): void {
    this.#out?.write(Frame.encode(frame));
  }

  // -- the protocol ---------------------------------------------------------

  #handle(frame: RingFrame, peer: string): void {
    const { log, known } = this.#opts;
    const what = describeFrame(frame);
    for (const id of [frame.src, frame.dst]) {
      if (!known.has(id)) {
        log(`discarded ${what} from ${peer}: no node ${id} in config.ini`);
        return;
      }
    }
    if (this.#state === 'finishing' && !(frame.kind === 'fin' && this.id === 0)) {
      log(`discarded ${what}: finalising`);
      return;
    }
    log(`received ${what}`);
    switch (frame.kind) {
      case 'fin':
        return this.#onFin(frame);
      case 'token':
        return this.#onToken(frame);
      default:
        return this.#onMessage(frame);
    }
  }

  #onFin(frame: RingFrame): void {
    const { log } = this.#opts;
    if (frame.src !== 0) {
      log(`discarded fin from node ${frame.src}: only node 0 finalises`);
    } else if (this.id === 0) {
      if (!this.#finSent) {
        log('discarded fin: node 0 did not send one');
        return;
      }
      log('finalisation frame came back: the ring is finished');
      this.close();
    } else {
      log('finalisation from node 0: forwarding it and exiting');
      this.#send(frame);
      this.#finish();
    }
  }

  #onToken(frame: RingFrame): void {
    const { log } = this.#opts;
    if (frame.dst !== this.id) {
      log(`discarded token for node ${frame.dst}: a token is addressed to the node it reaches`);
      return;
    }
    if (this.#holding) {
      log('discarded a second token: this node holds one already');
      return;
    }
    this.#holding = true;
    if (this.id === 0 && this.#passedOnce && !this.#busyRound && this.#pending.length === 0) {
      log('a whole round passed with no message: sending the finalisation frame');
      this.#finSent = true;
      this.#send({ kind: 'fin', src: 0, dst: 0, data: '' });
      this.#finish();
      return;
    }
    this.#turn();
  }

  #onMessage(frame: RingFrame): void {
    const { log, deliver } = this.#opts;
    if (this.id === 0) this.#busyRound = true;
    if (frame.src === this.id) {
      const awaited = this.#awaiting;
      if (awaited === undefined || awaited.dst !== frame.dst || awaited.text !== frame.data) {
        log('discarded a message from this node that it is not waiting for');
        return;
      }
      this.#awaiting = undefined;
      if (frame.kind === 'ack') log(`message of line ${awaited.line} acknowledged by node ${frame.dst}`);
      else log(`message of line ${awaited.line} came back unacknowledged: node ${frame.dst} is not in the ring`);
      this.#passToken();
    } else if (frame.dst === this.id) {
      if (frame.kind === 'ack') {
        log(`discarded an acknowledged message from node ${frame.src} seen again: its origin is not in the ring`);
        return;
      }
      deliver(frame.src, frame.data);
      this.#send({ ...frame, kind: 'ack' });
    } else {
      this.#send(frame);
    }
  }

  /** With the token: send the next message, or pass the token when there is none. */
  #turn(): void {
    const next = this.#pending.shift();
    if (next === undefined) {
      this.#passToken();
      return;
    }
    this.#awaiting = next;
    if (this.id === 0) this.#busyRound = true;
    this.#send({ kind: 'message', src: this.id, dst: next.dst, data: next.text });
  }

  #passToken(): void {
    this.#holding = false;
    if (this.id === 0) {
      this.#busyRound = false;
      this.#passedOnce = true;
    }
    this.#send({ kind: 'token', src: this.id, dst: this.#opts.successor.id, data: '' });
  }

  /** After sending or forwarding the finalisation frame: flush it, stop reading, and (but node 0) close. */
  #finish(): void {
    this.#state = 'finishing';
    if (this.#connected) this.#endOutbound();
    // Bounds: a successor that vanished now must not keep this node alive, and
    // node 0 waits for its frame to come back no longer than it waits for a successor.
    this.#finTimer = setTimeout(() => {
      if (this.id !== 0) this.close();
      else this.close(new CliError(`the finalisation frame did not come back within ${Math.round(this.#opts.connectTimeoutMs / 1000)} s: the ring is broken`));
    }, this.id === 0 ? this.#opts.connectTimeoutMs : 2000);
    this.#finTimer.unref();
  }

  #endOutbound(): void {
    const out = this.#out;
    if (!out) return;
    out.end(() => {
      // Node 0 waits for its finalisation frame to come back; the others are done.
      if (this.id !== 0) this.close();
    });
  }
}

// ---------------------------------------------------------------------------
// Command line

const command = defineCommand({
  name: 'node.ts',
  summary: 'A node of a logical ring (token ring over TCP), addresses from config.ini.',
  options: {
    id: { type: 'string', default: '0', help: "this node's id: its [nodoID] section in config.ini" },
    id_dst: { type: 'string', help: 'id of the successor, the node this one forwards to (default: the next id in config.ini, wrapping)' },
    config: { type: 'string', metavar: 'FILE', help: 'nodes, one [nodoX] section with host = and port = each (default: ./config.ini, else ej13/config.ini)' },
    messages: { type: 'string', metavar: 'FILE', help: 'messages to send, one "DESTINATION<TAB>TEXT" per line (default: ./nodoID.txt, else ej13/nodoID.txt, else none)' },
    wait: { type: 'string', metavar: 'SECONDS', default: '60', help: 'how long to keep trying to reach the successor' },
    quiet: { type: 'boolean', short: 'q', help: 'no event lines on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (tcp)", then "from ID: TEXT" for each message received, on stdout;
events on stderr.
Exit status: 0 after node 0's finalisation frame, 1 if the ring breaks (or it cannot listen), 2 bad usage or input.
Example (the assignment's ring of 4): node.ts --id 0 --id_dst 1; node.ts --id 1 --id_dst 2; …; node.ts --id 3 --id_dst 0`,
});

function parseId(text: string, option: string): number {
  if (!/^\d{1,10}$/.test(text) || Number(text) > MAX_ID) throw new UsageError(`argument --${option}: expected a node id 0-${MAX_ID}, got '${text}'`);
  return Number(text);
}

async function readInput<T>(file: string, what: string, parse: (text: string) => T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? String(error))}`, 2);
  }
  try {
    return parse(text);
  } catch (error) {
    if (error instanceof InputError) throw new CliError(error.message, 2);
    throw error;
  }
}

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const id = parseId(opts.id, 'id');
  const waitS = parsePositive(opts.wait, 'wait');
  const configFile = configPath(opts.config);
  const nodes = await readInput(configFile, 'config', (text) => parseConfig(text, configFile));
  const self = nodes.find((node) => node.id === id);
  if (!self) throw new CliError(`${configFile} has no [nodo${id}] section for --id ${id} (it has ${nodes.map((n) => `nodo${n.id}`).join(', ')})`, 2);
  if (!nodes.some((node) => node.id === 0)) throw new CliError(`${configFile} has no [nodo0] section: node 0 starts and ends the ring`, 2);
  let successor = successorOf(nodes, id);
  if (opts.id_dst !== undefined) {
    const dst = parseId(opts.id_dst, 'id_dst');
    const found = nodes.find((node) => node.id === dst);
    if (!found) throw new CliError(`${configFile} has no [nodo${dst}] section for --id_dst ${dst}`, 2);
    if (dst === id && nodes.length > 1) throw new UsageError(`argument --id_dst: a node cannot be its own successor in a ring of ${nodes.length}`);
    successor = found;
  }
  const log = createLogger(`nodo${id}`, { quiet: opts.quiet });
  const file = messagesPath(opts.messages, id);
  let messages: OutgoingMessage[] = [];
  if (file === undefined) {
    log(`no nodo${id}.txt here or in ej13/: no messages to send`);
  } else {
    messages = await readInput(file, 'message file', (text) => {
      const parsed = parseMessages(text, file);
      checkDestinations(parsed, nodes, id, file);
      return parsed;
    });
    log(`${messages.length} message${messages.length === 1 ? '' : 's'} to send from ${file}`);
  }

  const node = new RingNode({
    self,
    successor,
    known: nodes.map((n) => n.id),
    messages,
    connectTimeoutMs: waitS * 1000,
    log,
    deliver: (src, text) => process.stdout.write(`from ${src}: ${text}\n`),
  });
  log(`ring: nodo${id} (${formatAddress(self.host, self.port)}) -> nodo${successor.id} (${formatAddress(successor.host, successor.port)})`);
  const address = await node.start();
  process.stdout.write(`${readyLine(address, 'tcp')}\n`);
  onShutdown(() => node.close(new CliError('interrupted before the finalisation frame', 130)), { log });
  await node.finished;
  return 0;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
