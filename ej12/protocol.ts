/**
 * The replicated directory's protocol (ej12), shared by master, slaves and
 * client: the assignment's PDU, its actions, and the rules for paths on the
 * wire.
 *
 * Every message, in both directions and on every connection, is one PDU,
 * integers unsigned big-endian (network byte order):
 *
 * ```
 *  offset  size        field        meaning
 *  0       4           id_nodo      node id (the slave's, once REGISTRAR gave it one; 0 otherwise)
 *  4       4           accion       one of ACTIONS below
 *  8       4           bytes_path   length of path in bytes (at most 4096)
 *  12      bytes_path  path         UTF-8, a wire path (see below)
 *  12+P    4           bytes        length of data in bytes (at most 16 MiB)
 *  16+P    bytes       data         raw bytes: file contents, a listing, a message
 * ```
 *
 * The two length fields make the PDU its own length-prefixed frame on TCP:
 * a reader knows after 12 bytes how long the path is and after 16 + P how
 * long the data is, and refuses a frame over the limits as soon as the
 * length arrives, before buffering it. One request, one answer: every PDU a
 * peer sends is answered by exactly one PDU, in order.
 *
 * ```
 *  accion  name                sent by → to     path            data                         answer
 *  0       REGISTRAR           slave → master   ""              "HOST:PORT" it serves on     REGISTRAR, id_nodo = its id
 *  1       REMOTO              client → master  client's cwd    JSON ["cmd", "wire path"…]   REMOTO, data = output
 *  2       COPIAR              master → slave   ""              empty                        COPIAR, data = JSON manifest
 *  3       AGREGAR_ARCHIVO     master → slave   file or "dir/"  file contents                AGREGAR_ARCHIVO, empty
 *          (and client → master: put)
 *  4       ELIMINAR_ARCHIVO    master → slave   file or "dir/"  empty                        ELIMINAR_ARCHIVO, empty
 *  5       MODIFICAR_ARCHIVO   master → slave   file            file contents                MODIFICAR_ARCHIVO, empty
 *  6       ERROR (beyond the assignment)  any answer            UTF-8 message: what failed and why
 * ```
 *
 * A wire path is relative to the synchronised root: segments separated by
 * `/`, none empty, `.` or `..`, no NUL, no leading `/`; `""` is the root
 * itself and a trailing `/` marks a directory. Anything else is refused
 * before it touches a disk, so no PDU can name a file outside the root.
 *
 * @module
 */
import { type CodecValue, FrameReader, prefixedBytes, prefixedText, struct, u32 } from '../lib/pdu.ts';

/** The assignment's actions, by number. */
export const REGISTRAR = 0;
export const REMOTO = 1;
export const COPIAR = 2;
export const AGREGAR_ARCHIVO = 3;
export const ELIMINAR_ARCHIVO = 4;
export const MODIFICAR_ARCHIVO = 5;
/** An answer saying a request failed; `data` says why. Not in the assignment, which left errors open. */
export const ERROR = 6;

/** Action names, for logs and messages. */
export const ACTION_NAMES = ['REGISTRAR', 'REMOTO', 'COPIAR', 'AGREGAR_ARCHIVO', 'ELIMINAR_ARCHIVO', 'MODIFICAR_ARCHIVO', 'ERROR'] as const;

/** The longest path, in bytes of UTF-8 (Linux's PATH_MAX). */
export const MAX_PATH = 4096;
/** The largest `data` field: the largest file the directory holds. */
export const MAX_DATA = 16 * 1024 * 1024;
/** Size of the fixed part of a PDU: id_nodo, accion, bytes_path and bytes. */
export const HEADER_LENGTH = 16;
/** The largest PDU a reader accepts. */
export const MAX_FRAME = HEADER_LENGTH + MAX_PATH + MAX_DATA;

/** The PDU's fields, in order (the authenticated mode appends a MAC to them). */
export const MESSAGE_FIELDS = [
  ['id', u32],
  ['action', u32],
  ['path', prefixedText(u32, { max: MAX_PATH })],
  ['data', prefixedBytes(u32, { max: MAX_DATA })],
] as const;

/** The assignment's PDU: id_nodo, accion, bytes_path + path, bytes + data. */
export const Message = struct(MESSAGE_FIELDS, 'ej12 PDU');

/** One PDU. */
export type Message = CodecValue<typeof Message>;

/** A frame reader bounded to {@link MAX_FRAME}, for one TCP connection. */
export function messageReader(): FrameReader<Message> {
  return new FrameReader(Message, { maxFrameLength: MAX_FRAME });
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Builds a PDU; `data` may be text (sent as UTF-8). */
export function message(action: number, path = '', data: Uint8Array | string = new Uint8Array(0), id = 0): Message {
  return { id, action, path, data: typeof data === 'string' ? encoder.encode(data) : data };
}

/** The `data` field as text. */
export function dataText(m: Message): string {
  return decoder.decode(m.data);
}

/** A path refused: outside the root, malformed, or through a symlink. */
export class PathError extends Error {
  readonly code = 'ERR_PATH';
  constructor(message: string) {
    super(message);
    this.name = 'PathError';
  }
}

/**
 * Checks a wire path (see the module comment) and returns it without its
 * directory mark, with `dir` telling whether it had one. Throws
 * {@link PathError} for an absolute path, `..`, `.`, an empty segment or NUL.
 */
export function checkWirePath(path: string): { path: string; dir: boolean } {
  if (typeof path !== 'string') throw new PathError('path must be text');
  if (path === '') return { path: '', dir: true };
  if (path.startsWith('/')) throw new PathError(`${JSON.stringify(path)}: absolute paths are refused (paths are relative to the shared directory)`);
  if (path.includes('\0')) throw new PathError(`${JSON.stringify(path)}: NUL in a path is refused`);
  const dir = path.endsWith('/');
  const bare = dir ? path.slice(0, -1) : path;
  for (const segment of bare.split('/')) {
    if (segment === '..') throw new PathError(`${JSON.stringify(path)}: ".." is refused (a path may not leave the shared directory)`);
    if (segment === '' || segment === '.') throw new PathError(`${JSON.stringify(path)}: not a normalised path (empty or "." segment)`);
  }
  return { path: bare, dir };
}

/**
 * Resolves what a user typed at the client (`../a`, `/b/c`, `x`) against the
 * current directory `cwd` (a wire path) the way a shell in a chroot would:
 * `/` is the shared directory's root, `..` climbs but never above it. Returns
 * the wire path; throws {@link PathError} when the path would leave the root.
 */
export function resolveUserPath(cwd: string, typed: string): string {
  if (typed.includes('\0')) throw new PathError(`${typed}: NUL in a path is refused`);
  const parts = typed.startsWith('/') ? [] : cwd.split('/').filter(Boolean);
  for (const segment of typed.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (parts.length === 0) throw new PathError(`${typed}: path leaves the shared directory`);
      parts.pop();
    } else parts.push(segment);
  }
  const resolved = parts.join('/');
  if (encoder.encode(resolved).length > MAX_PATH) throw new PathError(`${typed}: path longer than ${MAX_PATH} bytes`);
  return resolved;
}

/** How a path is shown to the user: absolute from the shared root. */
export function displayPath(wire: string): string {
  return `/${wire}`;
}
