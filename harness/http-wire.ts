/**
 * The harness's own minimal HTTP/1.1 reading, for raw-socket requirements
 * (path traversal, pipelining, malformed requests) where curl or fetch would
 * clean the request before sending it.
 *
 * Written apart from lib/http.ts on purpose: a grader that borrowed the
 * server's own parser would share its bugs.
 *
 * @module
 */
import { tcpConnect } from './wire.ts';

/** One response as the harness read it. */
export interface RawResponse {
  status: number;
  statusLine: string;
  /** Lower-cased names; repeated fields joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
  /**
   * What the response did that RFC 9112 allows a recipient to accept but a
   * sender should not do (bare LF line endings, §2.2), or that is worth
   * saying (a body delimited by the close, §6.3). Tolerated as curl, wget
   * and Chromium tolerate them: a requirement notes them, and fails on them
   * only when it is about them.
   */
  deviations: string[];
}

/** Where the head that starts at `offset` ends: the blank line, CRLF or bare LF (RFC 9112 §2.2). */
function headEnd(bytes: Buffer, offset: number): { end: number; next: number } | undefined {
  for (let at = bytes.indexOf(0x0a, offset); at >= 0; at = bytes.indexOf(0x0a, at + 1)) {
    // A line feed followed by a blank line: LF LF, or LF CR LF.
    if (bytes[at + 1] === 0x0a) return { end: at, next: at + 2 };
    if (bytes[at + 1] === 0x0d && bytes[at + 2] === 0x0a) return { end: at, next: at + 3 };
  }
  return undefined;
}

/** Notes each deviation of `response` on `t` (a comment, not a failure). */
export function noteDeviations(t: { comment(...args: unknown[]): void }, response: RawResponse | undefined, what = 'the response'): void {
  for (const deviation of response?.deviations ?? []) t.comment(`note: ${what}: ${deviation} (tolerated, as curl and browsers do)`);
}

/**
 * Sends `request` on a new connection and collects every byte until the
 * server closes or is silent for `idleMs`. Resolves with the bytes and
 * whether the server closed.
 */
export async function rawExchange(host: string, port: number, request: string | Uint8Array, { idleMs = 1500, timeoutMs = 10_000 } = {}): Promise<{ bytes: Buffer; closed: boolean }> {
  const socket = await tcpConnect(host, port, timeoutMs);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    let idle: ReturnType<typeof setTimeout>;
    const finish = () => {
      clearTimeout(idle);
      clearTimeout(limit);
      socket.destroy();
      resolve({ bytes: Buffer.concat(chunks), closed });
    };
    const limit = setTimeout(finish, timeoutMs);
    idle = setTimeout(finish, idleMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      clearTimeout(idle);
      idle = setTimeout(finish, idleMs);
    });
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('error', () => {
      closed = true;
      finish();
    });
    socket.write(typeof request === 'string' ? Buffer.from(request, 'latin1') : request);
  });
}

/**
 * Splits bytes into the responses they hold, in order, as tolerantly as
 * curl, wget and Chromium read them: lines may end in bare LF (RFC 9112
 * §2.2), noted in `deviations`. A body is taken by Content-Length;
 * responses to HEAD (say which with `methods`), 1xx, 204 and 304 have none;
 * without a length the body runs to the end (an HTTP/1.0 body ended by
 * close), noted too. Stops at the
 * first thing that is not a response, returning what is left in `rest`.
 */
export function splitResponses(bytes: Buffer, methods: string[] = []): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const found = headEnd(bytes, offset);
    if (!found) break;
    const head = bytes.subarray(offset, found.end).toString('latin1');
    const lines = head.split(/\r?\n/);
    const deviations: string[] = [];
    const terminators = bytes.subarray(offset, found.next).toString('latin1');
    const bareLf = (terminators.match(/\n/g)?.length ?? 0) - (terminators.match(/\r\n/g)?.length ?? 0);
    if (bareLf > 0) deviations.push(`its head has ${bareLf} line${bareLf === 1 ? '' : 's'} ended by a bare LF, not CRLF (RFC 9112 §2.2)`);
    const statusLine = lines[0] ?? '';
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!match) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const status = Number(match[1]);
    const method = methods[responses.length] ?? 'GET';
    let bodyEnd = found.next;
    if (method !== 'HEAD' && status >= 200 && status !== 204 && status !== 304) {
      const length = headers['content-length'];
      if (length !== undefined && /^\d+$/.test(length)) bodyEnd = Math.min(bytes.length, found.next + Number(length));
      else {
        bodyEnd = bytes.length;
        if (!/chunked/i.test(headers['transfer-encoding'] ?? '')) deviations.push('its body has no Content-Length and was ended by close (RFC 9112 §6.3)');
      }
    }
    responses.push({ status, statusLine, headers, body: bytes.subarray(found.next, bodyEnd), deviations });
    offset = bodyEnd;
  }
  return { responses, rest: bytes.subarray(offset) };
}
