/**
 * The distributed document index's messages (version 1): small JSON objects,
 * one per UDP datagram, for discovery; one JSON line over TCP for a node's
 * whole document list.
 *
 * ## Datagrams (UDP, broadcast or unicast), at most {@link MAX_DATAGRAM} bytes
 *
 * One UTF-8 JSON object per datagram, no newline:
 *
 * | type    | fields                         | sent                                                        |
 * |---------|--------------------------------|-------------------------------------------------------------|
 * | `hello` | `v id port gen count`          | every interval; at once when the folder changes; unicast to a node first heard, and to a `query` |
 * | `bye`   | `v id port`                    | on exit (SIGINT, SIGTERM), twice                             |
 * | `query` | `v id port`                    | by `--list`: every node answers with a unicast `hello`       |
 *
 * - `v`: 1. Any other version is refused (a later version may change the fields).
 * - `id`: 16 lowercase hex digits, random per process: tells a restarted node
 *   from the one before, and a node its own broadcasts from others'.
 * - `port`: the node's port, UDP and TCP alike (8000–8005 in the assignment).
 *   The node's address is the datagram's source address: `ADDR:port` names it.
 * - `gen`: the generation of the node's document list, raised by one on every
 *   change; `count`: how many documents that list holds.
 *
 * A hello never carries the list itself, so a datagram stays small whatever
 * the folder holds: a node that sees a `gen` it does not have connects to
 * `ADDR:port` over TCP, and the node writes {@link ListMessage} as one JSON
 * line (`{"v":1,"type":"list","id":…,"gen":…,"docs":[…]}` + `\n`) and closes.
 * A reader stops at {@link MAX_LIST_BYTES}.
 *
 * ## With a shared key (optional; off by default, as in the assignment)
 *
 * Nodes given the same key (`--key-file`) add two fields to every datagram
 * and to the list line: `ts`, the sender's wall clock in ms (strictly rising
 * per sender), and `mac`, 64 hex digits of HMAC-SHA256 under the key over
 * the JSON of the other known fields in their fixed order (for a hello,
 * `{"v":1,"type":"hello","id":…,"port":…,"gen":…,"count":…,"ts":…}`; for a
 * list, `{"v":1,"type":"list","id":…,"gen":…,"ts":…,"docs":[…]}`). A
 * receiver with the key refuses a message without a mac or with a wrong one;
 * its node also refuses a datagram whose `ts` is more than
 * {@link REPLAY_WINDOW_MS} from its own clock or not newer than the last one
 * from that `id` (a replay). Without a key, discovery is unauthenticated:
 * anyone on the segment can announce anything.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The version this code speaks. */
export const VERSION = 1;
/** Largest datagram sent or accepted: well inside one Ethernet frame, never fragmented. */
export const MAX_DATAGRAM = 512;
/**
 * Largest list accepted over TCP: 1 MiB, room for 10 000 names (the most a
 * folder scan yields) of 100 bytes on average.
 */
export const MAX_LIST_BYTES = 2 ** 20;
/** How far a keyed datagram's `ts` may be from the receiver's clock. */
export const REPLAY_WINDOW_MS = 30_000;
/** Shortest key accepted, in bytes. */
export const MIN_KEY_BYTES = 16;
/** Largest document name accepted, in characters. */
export const MAX_NAME = 1024;

export interface Hello {
  v: 1;
  type: 'hello';
  id: string;
  port: number;
  gen: number;
  count: number;
  /** With a key: the sender's clock, in ms. */
  ts?: number;
}

export interface Bye {
  v: 1;
  type: 'bye';
  id: string;
  port: number;
  ts?: number;
}

export interface Query {
  v: 1;
  type: 'query';
  id: string;
  port: number;
  ts?: number;
}

/** A datagram. */
export type Message = Hello | Bye | Query;

/** A node's whole list, sent over TCP. */
export interface ListMessage {
  v: 1;
  type: 'list';
  id: string;
  gen: number;
  docs: string[];
  /** With a key: the sender's clock, in ms. */
  ts?: number;
}

const ID = /^[0-9a-f]{16}$/;
const MAC = /^[0-9a-f]{64}$/;

/**
 * Characters that must not reach a terminal raw: C0 controls, DEL, C1
 * controls (U+009B is a one-byte CSI), the bidirectional overrides,
 * embeddings, isolates and marks, and the line and paragraph separators.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * `text` safe to print on a terminal: every character of {@link UNPRINTABLE}
 * becomes `\u{hex}` (U+009B → `\u{9b}`, U+202E → `\u{202e}`); the rest,
 * other Unicode included, is left as it is.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`);
}

/** A received value as an error message quotes it: JSON, made {@link printable}, at most 80 characters. */
function quote(value: unknown, fallback = 'none'): string {
  const text = JSON.stringify(value);
  return text === undefined ? fallback : printable(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}

function mac(key: Uint8Array, text: string): string {
  return createHmac('sha256', key).update(text).digest('hex');
}

/** The text a keyed message's mac covers: its known fields in their fixed order, `ts` included, `mac` not. */
function signedText(message: Message | ListMessage): string {
  switch (message.type) {
    case 'hello':
      return JSON.stringify({ v: message.v, type: message.type, id: message.id, port: message.port, gen: message.gen, count: message.count, ts: message.ts });
    case 'bye':
    case 'query':
      return JSON.stringify({ v: message.v, type: message.type, id: message.id, port: message.port, ts: message.ts });
    case 'list':
      return JSON.stringify({ v: message.v, type: message.type, id: message.id, gen: message.gen, ts: message.ts, docs: message.docs });
  }
}

/** `message` with its mac, for a key; throws TypeError without a `ts`. */
function sign<M extends Message | ListMessage>(message: M, key: Uint8Array): string {
  if (typeof message.ts !== 'number') throw new TypeError(`Cannot sign ${message.type}: expected a ts`);
  const text = signedText(message);
  return `${text.slice(0, -1)},"mac":"${mac(key, text)}"}`;
}

/** Checks the mac of a decoded message against `fields.mac`; throws if it is missing or wrong. */
function verify(message: Message | ListMessage, fields: Record<string, unknown>, key: Uint8Array, what: string): void {
  if (typeof fields.mac !== 'string' || !MAC.test(fields.mac)) throw new SyntaxError(`Cannot decode ${what}: no mac (this node has a key: expected 64 hex digits)`);
  if (typeof message.ts !== 'number') throw new SyntaxError(`Cannot decode ${what}: expected ts, the sender's clock in ms`);
  const expected = Buffer.from(mac(key, signedText(message)), 'hex');
  if (!timingSafeEqual(expected, Buffer.from(fields.mac, 'hex'))) throw new Error(`Cannot decode ${what}: wrong mac (another key, or altered)`);
}

/**
 * Encodes a datagram; with `key`, adds its mac (the message must then carry
 * a `ts`). Throws RangeError if it would exceed {@link MAX_DATAGRAM}.
 */
export function encodeMessage(message: Message, key?: Uint8Array): Uint8Array {
  const bytes = new TextEncoder().encode(key ? sign(message, key) : JSON.stringify(message));
  if (bytes.length > MAX_DATAGRAM) throw new RangeError(`Cannot encode ${message.type}: ${bytes.length} bytes, at most ${MAX_DATAGRAM}`);
  return bytes;
}

function object(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SyntaxError(`Cannot decode ${what}: not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SyntaxError(`Cannot decode ${what}: expected a JSON object`);
  return value as Record<string, unknown>;
}

function integer(fields: Record<string, unknown>, name: string, min: number, max: number, what: string): number {
  const value = fields[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new SyntaxError(`Cannot decode ${what}: expected ${name} an integer ${min}-${max}, got ${quote(value, 'nothing')}`);
  }
  return value;
}

function header(fields: Record<string, unknown>, what: string): { id: string } {
  if (fields.v !== VERSION) throw new RangeError(`Cannot decode ${what}: expected version ${VERSION}, got ${quote(fields.v)}`);
  if (typeof fields.id !== 'string' || !ID.test(fields.id)) throw new SyntaxError(`Cannot decode ${what}: expected id of 16 hex digits, got ${quote(fields.id)}`);
  return { id: fields.id };
}

/** The `ts` of a keyed message (undefined without a key: ignored like any unknown field). */
function timestamp(fields: Record<string, unknown>, key: Uint8Array | undefined, what: string): { ts?: number } {
  return key && fields.ts !== undefined ? { ts: integer(fields, 'ts', 0, Number.MAX_SAFE_INTEGER, what) } : {};
}

/**
 * Decodes one datagram. Throws RangeError for an oversized datagram or an
 * unknown version, SyntaxError for anything else malformed; unknown extra
 * fields are ignored (a later minor change may add some). With `key`, the
 * datagram must carry `ts` and a right `mac` (else SyntaxError, or Error for
 * a wrong mac); the caller checks `ts` for replays.
 */
export function decodeMessage(datagram: Uint8Array, key?: Uint8Array): Message {
  if (datagram.length > MAX_DATAGRAM) throw new RangeError(`Cannot decode datagram: ${datagram.length} bytes, at most ${MAX_DATAGRAM}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(datagram);
  } catch {
    throw new SyntaxError('Cannot decode datagram: not UTF-8');
  }
  const fields = object(text, 'datagram');
  const { id } = header(fields, 'datagram');
  const port = integer(fields, 'port', 1, 65535, 'datagram');
  let message: Message;
  switch (fields.type) {
    case 'hello':
      message = {
        v: VERSION,
        type: 'hello',
        id,
        port,
        gen: integer(fields, 'gen', 0, Number.MAX_SAFE_INTEGER, 'hello'),
        count: integer(fields, 'count', 0, Number.MAX_SAFE_INTEGER, 'hello'),
        ...timestamp(fields, key, 'hello'),
      };
      break;
    case 'bye':
    case 'query':
      message = { v: VERSION, type: fields.type, id, port, ...timestamp(fields, key, fields.type) };
      break;
    default:
      throw new SyntaxError(`Cannot decode datagram: unknown type ${quote(fields.type)}`);
  }
  if (key) verify(message, fields, key, message.type);
  return message;
}

/** Encodes a list as one JSON line (with its newline); with `key`, adds its mac (the list must carry a `ts`). */
export function encodeList(list: ListMessage, key?: Uint8Array): string {
  return `${key ? sign(list, key) : JSON.stringify(list)}\n`;
}

/**
 * Decodes a list line (with or without its newline). Names must be non-empty
 * strings of at most {@link MAX_NAME} characters without C0 control
 * characters (other unprintable ones are escaped when printed, see
 * {@link printable}); duplicates are dropped and the list comes back sorted.
 * With `key`, the line must carry `ts` and a right `mac`.
 */
export function decodeList(line: string, key?: Uint8Array): ListMessage {
  const fields = object(line, 'list');
  const { id } = header(fields, 'list');
  if (fields.type !== 'list') throw new SyntaxError(`Cannot decode list: expected type "list", got ${JSON.stringify(fields.type) ?? 'none'}`);
  const gen = integer(fields, 'gen', 0, Number.MAX_SAFE_INTEGER, 'list');
  if (!Array.isArray(fields.docs)) throw new SyntaxError('Cannot decode list: expected docs to be an array');
  const docs = new Set<string>();
  for (const name of fields.docs as unknown[]) {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
      throw new SyntaxError(`Cannot decode list: bad document name ${quote(name, 'undefined')}`);
    }
    docs.add(name);
  }
  if (key) verify({ v: VERSION, type: 'list', id, gen, ...timestamp(fields, key, 'list'), docs: fields.docs as string[] }, fields, key, 'list');
  return { v: VERSION, type: 'list', id, gen, ...timestamp(fields, key, 'list'), docs: [...docs].sort() };
}
