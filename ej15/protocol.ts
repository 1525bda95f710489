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
 * @module
 */

/** The version this code speaks. */
export const VERSION = 1;
/** Largest datagram sent or accepted: well inside one Ethernet frame, never fragmented. */
export const MAX_DATAGRAM = 512;
/** Largest list accepted over TCP. */
export const MAX_LIST_BYTES = 16 * 2 ** 20;
/** Largest document name accepted, in characters. */
export const MAX_NAME = 1024;

export interface Hello {
  v: 1;
  type: 'hello';
  id: string;
  port: number;
  gen: number;
  count: number;
}

export interface Bye {
  v: 1;
  type: 'bye';
  id: string;
  port: number;
}

export interface Query {
  v: 1;
  type: 'query';
  id: string;
  port: number;
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
}

const ID = /^[0-9a-f]{16}$/;

/** Encodes a datagram; throws RangeError if it would exceed {@link MAX_DATAGRAM}. */
export function encodeMessage(message: Message): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(message));
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
    throw new SyntaxError(`Cannot decode ${what}: expected ${name} an integer ${min}-${max}, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  return value;
}

function header(fields: Record<string, unknown>, what: string): { id: string } {
  if (fields.v !== VERSION) throw new RangeError(`Cannot decode ${what}: expected version ${VERSION}, got ${JSON.stringify(fields.v) ?? 'none'}`);
  if (typeof fields.id !== 'string' || !ID.test(fields.id)) throw new SyntaxError(`Cannot decode ${what}: expected id of 16 hex digits, got ${JSON.stringify(fields.id) ?? 'none'}`);
  return { id: fields.id };
}

/**
 * Decodes one datagram. Throws RangeError for an oversized datagram or an
 * unknown version, SyntaxError for anything else malformed; unknown extra
 * fields are ignored (a later minor change may add some).
 */
export function decodeMessage(datagram: Uint8Array): Message {
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
  switch (fields.type) {
    case 'hello':
      return {
        v: VERSION,
        type: 'hello',
        id,
        port,
        gen: integer(fields, 'gen', 0, Number.MAX_SAFE_INTEGER, 'hello'),
        count: integer(fields, 'count', 0, Number.MAX_SAFE_INTEGER, 'hello'),
      };
    case 'bye':
    case 'query':
      return { v: VERSION, type: fields.type, id, port };
    default:
      throw new SyntaxError(`Cannot decode datagram: unknown type ${JSON.stringify(fields.type) ?? 'none'}`);
  }
}

/** Encodes a list as one JSON line (with its newline). */
export function encodeList(list: ListMessage): string {
  return `${JSON.stringify(list)}\n`;
}

/**
 * Decodes a list line (with or without its newline). Names must be non-empty
 * strings of at most {@link MAX_NAME} characters without control characters;
 * duplicates are dropped and the list comes back sorted.
 */
export function decodeList(line: string): ListMessage {
  const fields = object(line, 'list');
  const { id } = header(fields, 'list');
  if (fields.type !== 'list') throw new SyntaxError(`Cannot decode list: expected type "list", got ${JSON.stringify(fields.type) ?? 'none'}`);
  const gen = integer(fields, 'gen', 0, Number.MAX_SAFE_INTEGER, 'list');
  if (!Array.isArray(fields.docs)) throw new SyntaxError('Cannot decode list: expected docs to be an array');
  const docs = new Set<string>();
  for (const name of fields.docs as unknown[]) {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
      throw new SyntaxError(`Cannot decode list: bad document name ${JSON.stringify(name)?.slice(0, 80) ?? 'undefined'}`);
    }
    docs.add(name);
  }
  return { v: VERSION, type: 'list', id, gen, docs: [...docs].sort() };
}
