/**
 * Echo client over TCP (RFC 862): sends `--data`, closes its sending side,
 * and prints what the server sends back before it closes.
 *
 * ```sh
 * npx tsx ej01/tcp-client.ts --data "hola mundo"              # prints: hola mundo
 * head -c 1M /dev/urandom | npx tsx ej01/tcp-client.ts --data - > echo.bin   # binary, from stdin
 * ```
 *
 * Exits 0 when the echo equals what was sent, 1 on a network failure or a
 * different echo (with one line on stderr saying which), 2 on a bad option.
 *
 * Why half-close: TCP is a byte stream with no message boundaries, so the
 * client cannot know an echo is complete by waiting for "a reply". Sending
 * FIN after the data (`socket.end()`) tells the server there is no more;
 * the server's own FIN then marks the end of the echo.
 *
 * @module
 */
import net from 'node:net';
import { describeMismatch, readStdin } from '../lib/bytes.ts';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { describeConnectError } from '../lib/net-errors.ts';

/** Options of {@link tcpEcho}. */
export interface TcpEchoClientOptions {
  /** How long to wait for the connection, and for each next chunk of the echo. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Sends `data` to an echo server, half-closes, and resolves with every byte
 * received until the server closes. Rejects with a {@link CliError} saying
 * what went wrong: refused, timed out, reset, cut short.
 */
export function tcpEcho(host: string, port: number, data: Uint8Array, { timeoutMs = 5000, signal }: TcpEchoClientOptions = {}): Promise<Uint8Array> {
  const where = formatAddress(host, port);
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const chunks: Buffer[] = [];
    let received = 0;
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const fail = (error: Error) => {
      socket.destroy();
      signal?.removeEventListener('abort', onAbort);
      reject(error);
    };
    const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new CliError('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });

    socket.setTimeout(timeoutMs, () => {
      const seconds = timeoutMs / 1000;
      fail(
        new CliError(
          socket.connecting
            ? `cannot connect to ${where} within ${seconds} s`
            : `no echo from ${where} for ${seconds} s (received ${received} of ${data.length} bytes)`,
        ),
      );
    });
    socket.on('error', (error: NodeJS.ErrnoException) => fail(describeConnectError(error, where)));
    socket.on('connect', () => {
      socket.end(data);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
    });
    socket.on('end', () => {
      socket.end();
      signal?.removeEventListener('abort', onAbort);
      resolve(Buffer.concat(chunks, received));
    });
  });
}

const command = defineCommand({
  name: 'tcp-client.ts',
  summary: 'Echo client (RFC 862) over TCP: sends DATA and prints the echo.',
  options: {
    data: { type: 'string', required: true, help: 'text to send; "-" sends standard input as bytes and writes the echo raw' },
    host: { type: 'string', default: '127.0.0.1', help: 'echo server address' },
    port: { type: 'string', default: '7007', help: 'echo server port' },
    timeout: { type: 'string', default: '5', metavar: 'SECONDS', help: 'give up after this long without progress' },
  },
  epilog: 'Exit status: 0 echo received intact, 1 network failure or echo differs, 2 bad usage.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port, 'port', { zero: false });
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const raw = opts.data === '-';
  const data = raw ? await readStdin() : new TextEncoder().encode(opts.data);

  const echo = await tcpEcho(host, port, data, { timeoutMs });
  // Print what came back even when it differs: seeing it is how one debugs a server.
  process.stdout.write(raw ? echo : `${new TextDecoder().decode(echo)}\n`);
  const mismatch = describeMismatch(data, echo);
  if (mismatch) throw new CliError(mismatch);
  return 0;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
