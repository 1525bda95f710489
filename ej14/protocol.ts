/**
 * ej14's wire format and config.ini, shared by master.ts, mapper.ts and
 * reducer.ts (README.md tells the conversation; this file is the byte
 * layout).
 *
 * Every message on every TCP connection is one frame; integers are
 * big-endian:
 *
 * ```
 *  0       4      5                  21         25
 * +-------+------+------------------+----------+-------------------+
 * | len   | type | job (16 bytes)   | piece    | payload (len − 21)|
 * | u32   | u8   | random job id    | u32      |                   |
 * +-------+------+------------------+----------+-------------------+
 * ```
 *
 * `len` counts everything after itself (type, job, piece, payload): at
 * least 21, at most {@link MAX_FRAME}. `job` is the master's random id for
 * one run; `piece` is a piece id 1…N (in JOB: N itself). Payloads by type:
 *
 * | type | name         | direction         | payload                                |
 * |------|--------------|-------------------|----------------------------------------|
 * | 0x01 | ASSIGN       | master → mapper   | the piece's bytes (UTF-8 text)         |
 * | 0x02 | BEAT         | mapper → master   | empty: "still working" (every second)  |
 * | 0x03 | DONE         | mapper → master   | u8 outcome (0 stored, 1 duplicate, 2 failed), UTF-8 reason |
 * | 0x10 | JOB          | master → reducer  | empty (`piece` = number of pieces)     |
 * | 0x11 | JOB_OK       | reducer → master  | empty                                  |
 * | 0x12 | PIECE_STORED | reducer → master  | UTF-8 label of the mapper it came from |
 * | 0x13 | RESULT       | reducer → master  | table                                  |
 * | 0x20 | OFFER        | mapper → reducer  | UTF-8 label of the mapper (host:port)  |
 * | 0x21 | GRANT        | reducer → mapper  | empty                                  |
 * | 0x22 | DENY         | reducer → mapper  | UTF-8 reason                           |
 * | 0x23 | TABLE        | mapper → reducer  | table                                  |
 * | 0x24 | STORED       | reducer → mapper  | empty                                  |
 * | 0x7f | ERROR        | any               | UTF-8 message; the sender then closes  |
 *
 * A table is `u32 entries`, then per entry `u32 count, u32 term length,
 * term bytes (UTF-8)`, in no particular order, each term once.
 *
 * @module
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ini from 'ini';
import { configPath as sharedConfigPath, loadConfigFile } from '../lib/config-ini.ts';
import type { Table } from './wordcount.ts';

/** The example configuration beside the scripts, used when the current folder has no config.ini. */
export const BUNDLED_CONFIG = path.join(path.dirname(fileURLToPath(import.meta.url)), 'config.ini');

/** Bytes of the length prefix. */
export const LENGTH_BYTES = 4;
/** Bytes after the length that every frame has: type, job, piece. */
export const HEADER_BYTES = 21;
/** The largest `len` accepted: a piece of up to 512 MiB. */
export const MAX_FRAME = 512 * 1024 * 1024;
/** Bytes of a job id. */
export const JOB_BYTES = 16;

export const Type = {
  ASSIGN: 0x01,
  BEAT: 0x02,
  DONE: 0x03,
  JOB: 0x10,
  JOB_OK: 0x11,
  PIECE_STORED: 0x12,
  RESULT: 0x13,
  OFFER: 0x20,
  GRANT: 0x21,
  DENY: 0x22,
  TABLE: 0x23,
  STORED: 0x24,
  ERROR: 0x7f,
} as const;
export type TypeCode = (typeof Type)[keyof typeof Type];
const TYPE_NAMES = new Map<number, string>(Object.entries(Type).map(([name, code]) => [code, name]));

/** The name of a type code (`ASSIGN`), or `0x..` for an unknown one. */
export function typeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/** DONE's outcome byte. */
export const Outcome = { STORED: 0, DUPLICATE: 1, FAILED: 2 } as const;

/** One decoded frame. */
export interface Frame {
  type: number;
  job: Uint8Array;
  piece: number;
  payload: Uint8Array;
}

/** The bytes {@link encodeFrame} writes for `frame`. */
export function encodingLength(frame: Frame): number {
  return LENGTH_BYTES + HEADER_BYTES + frame.payload.length;
}

/** Encodes a frame into `buf` (a new one by default) at `offset`; returns `buf`. */
export function encodeFrame(frame: Frame, buf = new Uint8Array(encodingLength(frame)), offset = 0): Uint8Array {
  const len = HEADER_BYTES + frame.payload.length;
  if (len > MAX_FRAME) throw new RangeError(`Cannot encode frame: ${len} bytes exceeds the limit of ${MAX_FRAME}`);
  if (frame.job.length !== JOB_BYTES) throw new RangeError(`Cannot encode frame: job id must be ${JOB_BYTES} bytes, got ${frame.job.length}`);
  if (!Number.isInteger(frame.piece) || frame.piece < 0 || frame.piece > 0xffffffff) throw new RangeError(`Cannot encode frame: piece ${frame.piece} is not a u32`);
  if (buf.length - offset < LENGTH_BYTES + len) throw new RangeError(`Cannot encode frame: expected ${LENGTH_BYTES + len} bytes of room, got ${buf.length - offset}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  view.setUint32(offset, len);
  view.setUint8(offset + 4, frame.type);
  buf.set(frame.job, offset + 5);
  view.setUint32(offset + 21, frame.piece);
  buf.set(frame.payload, offset + LENGTH_BYTES + HEADER_BYTES);
  return buf;
}

/**
 * Decodes one frame at `offset`: `[frame, nextOffset]`, or undefined when
 * the bytes so far hold only part of it (wait for more). A length outside
 * 21…{@link MAX_FRAME} is a SyntaxError: the stream cannot be resynchronised.
 */
export function decodeFrame(buf: Uint8Array, offset = 0): [Frame, number] | undefined {
  if (buf.length - offset < LENGTH_BYTES) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = view.getUint32(offset);
  if (len < HEADER_BYTES || len > MAX_FRAME) {
    throw new SyntaxError(`Cannot decode frame: length ${len} is outside ${HEADER_BYTES}-${MAX_FRAME}`);
  }
  const end = offset + LENGTH_BYTES + len;
  if (buf.length < end) return undefined;
  const frame: Frame = {
    type: view.getUint8(offset + 4),
    job: buf.slice(offset + 5, offset + 21),
    piece: view.getUint32(offset + 21),
    payload: buf.subarray(offset + LENGTH_BYTES + HEADER_BYTES, end),
  };
  return [frame, end];
}

/**
 * Reassembles frames from a byte stream cut anywhere. Chunks are kept in a
 * list and joined only once a whole frame is there, so a 100 MB piece
 * arriving in 64 KiB chunks costs one copy, not thousands.
 */
export class FrameReader {
  #chunks: Uint8Array[] = [];
  #size = 0;
  #need = LENGTH_BYTES;

  /** Bytes received and not yet returned as frames. */
  get buffered(): number {
    return this.#size;
  }

  /** Adds a chunk; returns the frames it completed (throws SyntaxError on a bad length). */
  push(chunk: Uint8Array): Frame[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#size += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.#size >= this.#need) {
      const buf = this.#join();
      if (buf.length < LENGTH_BYTES) break;
      const decoded = decodeFrame(buf);
      if (!decoded) {
        this.#need = LENGTH_BYTES + new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(0);
        break;
      }
      const [frame, next] = decoded;
      frames.push(frame);
      const rest = buf.subarray(next);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#size = rest.length;
      this.#need = LENGTH_BYTES;
    }
    return frames;
  }

  #join(): Uint8Array {
    if (this.#chunks.length === 1) return this.#chunks[0] as Uint8Array;
    const buf = new Uint8Array(this.#size);
    let at = 0;
    for (const chunk of this.#chunks) {
      buf.set(chunk, at);
      at += chunk.length;
    }
    this.#chunks = [buf];
    return buf;
  }
}

// ---------------------------------------------------------------------------
// Tables

/** The bytes {@link encodeTable} writes. */
export function tableLength(table: Table): number {
  let n = 4;
  for (const term of table.keys()) n += 8 + Buffer.byteLength(term, 'utf8');
  return n;
}

/** Encodes a term → frequency table (u32 entries, then u32 count, u32 length, term). */
export function encodeTable(table: Table): Uint8Array {
  const buf = new Uint8Array(tableLength(table));
  const view = new DataView(buf.buffer);
  const encoder = new TextEncoder();
  view.setUint32(0, table.size);
  let at = 4;
  for (const [term, count] of table) {
    if (!Number.isInteger(count) || count < 1 || count > 0xffffffff) throw new RangeError(`Cannot encode table: count ${count} of ${JSON.stringify(term)} is not a u32 above 0`);
    const { written } = encoder.encodeInto(term, buf.subarray(at + 8));
    view.setUint32(at, count);
    view.setUint32(at + 4, written);
    at += 8 + written;
  }
  return buf;
}

/** Decodes {@link encodeTable}'s bytes; a short, long or inconsistent buffer is a RangeError or SyntaxError. */
export function decodeTable(buf: Uint8Array): Table {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4) throw new RangeError(`Cannot decode table: expected at least 4 bytes, got ${buf.length}`);
  const entries = view.getUint32(0);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const table: Table = new Map();
  let at = 4;
  for (let i = 0; i < entries; i++) {
    if (buf.length - at < 8) throw new RangeError(`Cannot decode table: entry ${i + 1} of ${entries} is cut short at byte ${at}`);
    const count = view.getUint32(at);
    const length = view.getUint32(at + 4);
    if (buf.length - at - 8 < length) throw new RangeError(`Cannot decode table: term ${i + 1} needs ${length} bytes, ${buf.length - at - 8} left`);
    let term: string;
    try {
      term = decoder.decode(buf.subarray(at + 8, at + 8 + length));
    } catch {
      throw new SyntaxError(`Cannot decode table: term ${i + 1} is not valid UTF-8`);
    }
    if (count === 0 || term === '') throw new SyntaxError(`Cannot decode table: entry ${i + 1} has an empty term or a zero count`);
    if (table.has(term)) throw new SyntaxError(`Cannot decode table: term ${JSON.stringify(term)} appears twice`);
    table.set(term, count);
    at += 8 + length;
  }
  if (at !== buf.length) throw new RangeError(`Cannot decode table: ${buf.length - at} bytes after the last entry`);
  return table;
}

// ---------------------------------------------------------------------------
// Text payloads and sockets

const utf8 = new TextEncoder();
/** UTF-8 bytes of a text payload. */
export const text = (s: string): Uint8Array => utf8.encode(s);
/** A text payload read back (malformed bytes shown as U+FFFD: it is only for logs). */
export const readText = (payload: Uint8Array): string => new TextDecoder().decode(payload);

/**
 * The most bytes of a reason, message or label (DENY, ERROR, DONE, OFFER,
 * PIECE_STORED) that a node sends, keeps or logs. The frame may carry more
 * (a faulty or impersonated peer's), but a longer text is cut here, on the
 * way in and on the way out.
 */
export const MAX_REASON_BYTES = 1024;

/**
 * A peer's text payload, for logs and reasons: at most `max` bytes of it
 * decoded (a cut character becomes U+FFFD), control characters shown as
 * U+FFFD so that a peer cannot write lines into the log, and a note of the
 * length when it was cut.
 */
export function readReason(payload: Uint8Array, max = MAX_REASON_BYTES): string {
  const cut = payload.length > max;
  const shown = readText(cut ? payload.subarray(0, max - 40) : payload).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '\ufffd');
  return cut ? `${shown}… (${payload.length} bytes in all)` : shown;
}

/** A text payload of at most `max` bytes: `s` in UTF-8, cut at a character boundary. */
export function reasonBytes(s: string, max = MAX_REASON_BYTES): Uint8Array {
  const bytes = new Uint8Array(Math.min(max, s.length * 3));
  return bytes.subarray(0, utf8.encodeInto(s, bytes).written);
}

/** DONE's payload: the outcome byte, then the reason (cut to {@link MAX_REASON_BYTES}). */
export function donePayload(outcome: number, reason: string): Uint8Array {
  const text = reasonBytes(reason, MAX_REASON_BYTES - 1);
  const payload = new Uint8Array(1 + text.length);
  payload[0] = outcome;
  payload.set(text, 1);
  return payload;
}

/** A frame of `type` for `job`/`piece`, ready to write. */
export function frame(type: TypeCode, job: Uint8Array, piece: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return encodeFrame({ type, job, piece, payload });
}

/** Hex of a job id, for logs and maps. */
export const jobHex = (job: Uint8Array): string => Buffer.from(job).toString('hex');

/**
 * Feeds `socket`'s bytes through a {@link FrameReader} into `onFrame`; a
 * malformed stream sends ERROR and closes the socket (`onError` is told).
 */
export function readFrames(socket: net.Socket, onFrame: (frame: Frame) => void, onError: (message: string) => void): void {
  const reader = new FrameReader();
  socket.on('data', (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = reader.push(chunk);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      onError(message);
      socket.end(frame(Type.ERROR, new Uint8Array(JOB_BYTES), 0, reasonBytes(message)));
      socket.destroySoon();
      return;
    }
    for (const f of frames) {
      if (socket.destroyed) return;
      onFrame(f);
    }
  });
}

// ---------------------------------------------------------------------------
// config.ini

/** A node's address as config.ini gives it. */
export interface NodeAddress {
  /** The section name (`mapper1`, `reducer`). */
  name: string;
  host: string;
  port: number;
}

/** Everything config.ini says: where the reducer listens and where each mapper does. */
export interface Config {
  reducer: NodeAddress;
  mappers: NodeAddress[];
}

/** A config.ini that cannot be used: the message names the file, section and line. */
export class ConfigError extends SyntaxError {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Reads config.ini text: a `[reducer]` section and one `[mapperN]` section
 * per mapper, each with `host =` and `port =`. The `ini` package reads the
 * values; a line scan first reports what `ini` would silently accept (a line
 * without `=`, an unknown key or section, a key outside any section), with
 * its line number. Throws {@link ConfigError}.
 */
export function parseConfig(source: string, file = 'config.ini'): Config {
  const lines = new Map<string, number>();
  let section: string | undefined;
  for (const [index, raw] of source.split(/\r?\n/).entries()) {
    const n = index + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    const header = /^\[(.*)\]$/.exec(line);
    if (header) {
      section = (header[1] ?? '').trim();
      if (!/^(reducer|mapper\d+)$/.test(section)) {
        throw new ConfigError(`Cannot use ${file} line ${n}: unknown section [${section}] (expected [reducer] and [mapper1], [mapper2], …)`);
      }
      if (lines.has(section)) throw new ConfigError(`Cannot use ${file} line ${n}: section [${section}] already appears on line ${lines.get(section)}`);
      lines.set(section, n);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ConfigError(`Cannot use ${file} line ${n}: expected "[section]" or "key = value", got ${JSON.stringify(line)}`);
    const key = line.slice(0, eq).trim();
    if (!section) throw new ConfigError(`Cannot use ${file} line ${n}: "${key}" is outside any section`);
    if (key !== 'host' && key !== 'port') throw new ConfigError(`Cannot use ${file} line ${n} [${section}]: unknown key "${key}" (expected host and port)`);
  }
  const values = ini.parse(source) as Record<string, Record<string, unknown>>;
  const address = (name: string): NodeAddress => {
    const where = `${file} [${name}] (line ${lines.get(name)})`;
    const entry = values[name] ?? {};
    const host = String(entry.host ?? '').trim();
    const port = String(entry.port ?? '').trim();
    if (host === '') throw new ConfigError(`Cannot use ${where}: no host =`);
    if (net.isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) throw new ConfigError(`Cannot use ${where}: host ${JSON.stringify(host)} is not an IP address or host name`);
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new ConfigError(`Cannot use ${where}: port ${JSON.stringify(port)} is not a port number (1-65535)`);
    return { name, host, port: Number(port) };
  };
  if (!lines.has('reducer')) throw new ConfigError(`Cannot use ${file}: no [reducer] section (expected [reducer] with host = and port =)`);
  const mapperNames = [...lines.keys()].filter((name) => name.startsWith('mapper'));
  if (mapperNames.length === 0) throw new ConfigError(`Cannot use ${file}: no mappers (expected sections [mapper1], [mapper2], … with host = and port =)`);
  const mappers = mapperNames.sort((a, b) => Number(a.slice(6)) - Number(b.slice(6))).map(address);
  const seen = new Map<string, string>();
  for (const m of mappers) {
    const key = `${m.host}:${m.port}`;
    if (seen.has(key)) throw new ConfigError(`Cannot use ${file}: [${m.name}] and [${seen.get(key)}] are both ${key}`);
    seen.set(key, m.name);
  }
  return { reducer: address('reducer'), mappers };
}

/** Which config.ini to read: `--config` when given, else `./config.ini`, else ej14/config.ini. */
export function configPath(option: string | undefined, cwd = process.cwd()): string {
  return sharedConfigPath(option, BUNDLED_CONFIG, cwd);
}

/** Reads and parses a config file; a missing or bad one is a {@link CliError} with exit 2. */
export function loadConfig(file: string): Promise<Config> {
  return loadConfigFile(file, parseConfig);
}
