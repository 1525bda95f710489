/**
 * Echo client over UDP (RFC 862): sends `--data` in one datagram and prints
 * the datagram that comes back, retrying when none does.
 *
 * ```sh
 * npx tsx ej01/udp-client.ts --data "hola mundo"          # prints: hola mundo
 * npx tsx ej01/udp-client.ts --data hi --port 9 --timeout 0.5 --retries 1
 * ```
 *
 * Exits 0 on an intact echo, 1 when no echo came (after `--retries` more
 * tries of `--timeout` seconds each) or nothing listens, 2 on a bad option.
 *
 * UDP gives no delivery guarantee and no connection to say "nobody is
 * there": a lost request, a lost reply and a dead server all look the same —
 * silence. So the client waits a bounded time, retries a bounded number of
 * times, and then says so. The socket is `connect()`ed to the server, which
 * makes the kernel drop datagrams from anyone else and report an ICMP "port
 * unreachable" as ECONNREFUSED instead of leaving us to time out.
 *
 * @module
 */
import dgram from 'node:dgram';
import { describeMismatch, readStdin } from '../lib/bytes.ts';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive } from '../lib/cli.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { describeConnectError } from '../lib/net-errors.ts';
import { MAX_UDP_PAYLOAD, udpType } from '../lib/server.ts';

/** Options of {@link udpEcho}. */
export interface UdpEchoClientOptions {
  /** How long each try waits for the echo. */
  timeoutMs?: number;
  /** How many times to send again after the first try goes unanswered. */
  retries?: number;
  /** Told before each retry. */
  onRetry?: (attempt: number) => void;
  signal?: AbortSignal;
}

/** What {@link udpEcho} got back. */
export interface UdpEchoResult {
  reply: Uint8Array;
  /** Which try was answered (1 = the first). */
  tries: number;
  /** Time from the answered try's send to its reply. */
  rttMs: number;
}

/**
 * Sends `data` as one datagram and resolves with the first reply equal to it.
 * A reply that differs is kept and, if nothing better comes, reported; a late
 * echo of an earlier try is identical and simply accepted.
 */
export function udpEcho(
  host: string,
  port: number,
  data: Uint8Array,
  { timeoutMs = 1000, retries = 3, onRetry, signal }: UdpEchoClientOptions = {},
): Promise<UdpEchoResult> {
  const where = formatAddress(host, port);
  if (data.length > MAX_UDP_PAYLOAD) {
    return Promise.reject(new CliError(`the data is ${data.length} bytes; one UDP datagram carries at most ${MAX_UDP_PAYLOAD}`));
  }
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const socket = dgram.createSocket(udpType(host));
    let tries = 0;
    let sentAt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let different: Uint8Array | undefined;

    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.close();
      outcome();
    };
    const onAbort = () => finish(() => reject(signal?.reason));
    signal?.addEventListener('abort', onAbort, { once: true });

    const send = () => {
      tries += 1;
      if (tries > 1) onRetry?.(tries);
      sentAt = performance.now();
      socket.send(data, (error) => {
        if (error) finish(() => reject(describeConnectError(error, where)));
      });
      timer = setTimeout(() => {
        if (tries <= retries) return send();
        const seconds = timeoutMs / 1000;
        const what = different
          ? `only a different reply from ${where} (${describeMismatch(data, different)})`
          : `no echo from ${where} after ${tries} ${tries === 1 ? 'try' : 'tries'} (${seconds} s each)`;
        finish(() => reject(new CliError(what)));
      }, timeoutMs);
    };

    socket.on('message', (message) => {
      if (describeMismatch(data, message) === undefined) {
        const rttMs = performance.now() - sentAt;
        finish(() => resolve({ reply: message, tries, rttMs }));
      } else {
        different = message;
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const refused = error.code === 'ECONNREFUSED';
      const failure = refused
        ? new CliError(`nothing listens on ${where} (the host answered ICMP port unreachable)`, 1, { cause: error })
        : describeConnectError(error, where);
      finish(() => reject(failure));
    });
    socket.connect(port, host, send);
  });
}

const command = defineCommand({
  name: 'udp-client.ts',
  summary: 'Echo client (RFC 862) over UDP: sends DATA in one datagram and prints the echo.',
  options: {
    data: { type: 'string', required: true, help: 'text to send; "-" sends standard input as bytes and writes the echo raw' },
    host: { type: 'string', default: '127.0.0.1', help: 'echo server address' },
    port: { type: 'string', default: '7007', help: 'echo server port' },
    timeout: { type: 'string', default: '1', metavar: 'SECONDS', help: 'how long each try waits for the echo' },
    retries: { type: 'string', default: '3', metavar: 'N', help: 'tries after the first one before giving up' },
    verbose: { type: 'boolean', short: 'v', help: 'say on stderr how many tries it took and the round-trip time' },
  },
  epilog: 'Exit status: 0 echo received intact, 1 no echo / nothing listening, 2 bad usage.',
});

async function main(argv: string[]): Promise<number> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port, 'port', { zero: false });
  const timeoutMs = parsePositive(opts.timeout, 'timeout') * 1000;
  const retries = opts.retries === '0' ? 0 : parsePositive(opts.retries, 'retries', { integer: true });
  const raw = opts.data === '-';
  const data = raw ? await readStdin() : new TextEncoder().encode(opts.data);

  const say = (message: string) => opts.verbose && process.stderr.write(`udp-client: ${message}\n`);
  const { reply, tries, rttMs } = await udpEcho(host, port, data, {
    timeoutMs,
    retries,
    onRetry: (attempt) => say(`no echo within ${timeoutMs / 1000} s; try ${attempt} of ${retries + 1}`),
  });
  say(`echo of ${reply.length} bytes after ${tries} ${tries === 1 ? 'try' : 'tries'}, round trip ${rttMs.toFixed(3)} ms`);
  process.stdout.write(raw ? reply : `${new TextDecoder().decode(reply)}\n`);
  return 0;
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
