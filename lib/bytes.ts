/**
 * Small byte helpers the clients share: reading all of stdin, and saying
 * where two byte strings first differ.
 *
 * @module
 */

/** Reads standard input to its end, as bytes (binary-safe). */
export async function readStdin(maxBytes = 64 * 1024 * 1024): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of process.stdin as AsyncIterable<Uint8Array>) {
    length += chunk.length;
    if (length > maxBytes) throw new RangeError(`Standard input is too large: more than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return concat(chunks, length);
}

/** Joins chunks into one array (`length` may be given when the caller counted). */
export function concat(chunks: readonly Uint8Array[], length = chunks.reduce((n, c) => n + c.length, 0)): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** The index of the first byte where `a` and `b` differ, or -1 when they are equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * Says how an echo differs from what was sent, or returns undefined when it
 * is identical: `the echo differs from what was sent at byte 1024 (sent 8388608 bytes, got 1024)`.
 */
export function describeMismatch(sent: Uint8Array, got: Uint8Array): string | undefined {
  const at = firstDifference(sent, got);
  if (at < 0) return undefined;
  return `the echo differs from what was sent at byte ${at} (sent ${sent.length} bytes, got ${got.length})`;
}
