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
 * Splits bytes into the responses they hold, in order. A body is taken by
 * Content-Length; responses to HEAD (say which with `methods`), 1xx, 204 and
 * 304 have none; without a length the body runs to the end. Stops at the
 * first thing that is not a response, returning what is left in `rest`.
 */
export function splitResponses(bytes: Buffer, methods: string[] = []): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', offset, 'latin1');
    if (end < 0) break;
    const lines = bytes.subarray(offset, end).toString('latin1').split('\r\n');
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
    let bodyEnd = end + 4;
    if (method !== 'HEAD' && status >= 200 && status !== 204 && status !== 304) {
      const length = headers['content-length'];
      bodyEnd = length !== undefined && /^\d+$/.test(length) ? Math.min(bytes.length, end + 4 + Number(length)) : bytes.length;
    }
    responses.push({ status, statusLine, headers, body: bytes.subarray(end + 4, bodyEnd) });
    offset = bodyEnd;
  }
  return { responses, rest: bytes.subarray(offset) };
}
