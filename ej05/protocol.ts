/**
 * The messages ej05's client and server exchange inside the secure channel
 * (lib/secure-channel.ts): one message per sealed frame, a type byte then
 * its payload.
 *
 * ```
 * client → server
 *   0x01 LOGIN      JSON {"user": NAME, "password": PASSWORD}
 *   0x02 RUN        UTF-8 command line, run by /bin/sh -c
 *   0x03 INTERRUPT  (empty) Ctrl-C: stop the running command's process group
 * server → client
 *   0x11 WELCOME    JSON {"user": NAME, "cwd": DIR}           login accepted
 *   0x12 DENIED     JSON {"message": TEXT, "retry": BOOLEAN}  login refused
 *   0x13 STDOUT     bytes of the command's standard output, as they come
 *   0x14 STDERR     bytes of its standard error
 *   0x15 EXIT       JSON {"code": N|null, "signal": NAME|null, "cwd": DIR}
 *   0x16 ERROR      UTF-8 text: the server cannot run this (busy, cannot start)
 * either way
 *   0x17 DISCONNECT UTF-8 text: why the sender is closing the session (a frame
 *                   that failed authentication, a replay), sent just before it does
 * ```
 *
 * Nothing here is ever sent outside the channel: the login included.
 *
 * @module
 */
import { MAX_PLAINTEXT } from '../lib/secure-channel.ts';

export const LOGIN = 0x01;
export const RUN = 0x02;
export const INTERRUPT = 0x03;
export const WELCOME = 0x11;
export const DENIED = 0x12;
export const STDOUT = 0x13;
export const STDERR = 0x14;
export const EXIT = 0x15;
export const ERROR = 0x16;
export const DISCONNECT = 0x17;

/** The most output bytes one STDOUT/STDERR message carries (a frame, less the type byte). */
export const MAX_CHUNK = MAX_PLAINTEXT - 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** A message as the type byte and its payload. */
export function encodeMessage(type: number, payload: Uint8Array | string | object = new Uint8Array(0)): Uint8Array {
  const bytes = payload instanceof Uint8Array ? payload : encoder.encode(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const out = new Uint8Array(1 + bytes.length);
  out[0] = type;
  out.set(bytes, 1);
  return out;
}

/** Splits a message into its type and payload; an empty message is malformed. */
export function decodeMessage(message: Uint8Array): { type: number; payload: Uint8Array } {
  if (message.length === 0) throw new SyntaxError('Cannot decode message: it is empty (a type byte was expected)');
  return { type: message[0]!, payload: message.subarray(1) };
}

/** A payload as text, refusing invalid UTF-8. */
export function payloadText(payload: Uint8Array): string {
  try {
    return decoder.decode(payload);
  } catch {
    throw new SyntaxError('Cannot decode message: its text is not valid UTF-8');
  }
}

/** A payload as a JSON object, refusing anything else. */
export function payloadJson(payload: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(payloadText(payload));
  } catch {
    throw new SyntaxError('Cannot decode message: its payload is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SyntaxError('Cannot decode message: a JSON object was expected');
  return value as Record<string, unknown>;
}
