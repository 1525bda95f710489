/**
 * A map node of ej14's word count: it listens on the `host port` it is
 * given (which must be one of config.ini's `[mapperN]` sections), receives a
 * piece of the text from the master, builds its term → frequency table with
 * wordcount.ts's tokeniser, announces the finished piece to the reducer
 * (config.ini's `[reducer]`), sends the table when the reducer allows it,
 * and tells the master how it went.
 *
 * ```sh
 * npx tsx ej14/mapper.ts 127.0.0.1 8001   # as the assignment: python nodo_mapper.py 127.0.0.1 8001
 * ```
 *
 * Prints `listening on 127.0.0.1:8001 (tcp)` on stdout when ready; one
 * timestamped line per piece received, counted, granted or denied on
 * stderr. While it works on a piece it sends the master a BEAT every
 * second (it counts in 1 MiB slices, yielding between them, so the beats go
 * out), so that the master can tell a slow mapper from a dead one. If the
 * master goes away (it got the piece from another mapper, or it stopped),
 * the mapper drops the piece. `--delay SECONDS` waits that long after
 * counting, before announcing: a slow mapper for demonstrations and tests.
 *
 * @module
 */
import net from 'node:net';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';
import { configPath, donePayload, encodeTable, type Frame, frame, loadConfig, type NodeAddress, Outcome, readFrames, readReason, text, Type, typeName } from './protocol.ts';
import { portInUseMessage } from './port-holder.ts';
import { countText, decodeText, splitPieces, type Table, totalTokens } from './wordcount.ts';

/** How often a busy mapper tells the master it is alive. */
export const BEAT_MS = 1000;

/** Bytes counted between two looks at the event loop. */
export const SLICE_BYTES = 1024 * 1024;

/** Options of {@link startMapper}. */
export interface MapperOptions {
  host: string;
  port: number;
  reducer: NodeAddress;
  log?: Logger;
  /** Extra wait after counting a piece, before announcing it. */
  delayMs?: number;
}

/** A running mapper. */
export interface Mapper {
  server: net.Server;
  port: number;
  close(): Promise<void>;
}

/** What the reducer said about a finished piece. */
export interface Delivery {
  outcome: (typeof Outcome)[keyof typeof Outcome];
  reason: string;
}

/**
 * Announces a counted piece to the reducer (OFFER), waits until it allows
 * the transfer (GRANT) or refuses it (DENY: a copy is already counted),
 * sends the TABLE and waits for STORED. `signal` aborts it (the master
 * went away). Never rejects: a failure is an outcome with its reason.
 */
export function deliver(reducer: NodeAddress, job: Uint8Array, piece: number, table: Table, label: string, signal: AbortSignal): Promise<Delivery> {
  return new Promise((resolve) => {
    const where = formatAddress(reducer.host, reducer.port);
    let settled = false;
    const socket = net.connect({ host: reducer.host, port: reducer.port });
    const done = (outcome: Delivery['outcome'], reason: string) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ outcome, reason });
    };
    const onAbort = () => done(Outcome.FAILED, 'aborted: the master went away');
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);
    // Only the connect is bounded: waiting for the turn may take long, and the master sees the BEATs meanwhile.
    socket.setTimeout(10_000, () => done(Outcome.FAILED, `cannot connect to the reducer ${where}: timed out`));
    socket.on('connect', () => {
      socket.setTimeout(0);
      socket.write(frame(Type.OFFER, job, piece, text(label)));
    });
    socket.on('error', (error: NodeJS.ErrnoException) => done(Outcome.FAILED, `reducer ${where}: ${error.code ?? error.message}`));
    socket.on('close', () => done(Outcome.FAILED, `the reducer ${where} closed the connection`));
    readFrames(
      socket,
      (f: Frame) => {
        if (f.type === Type.GRANT) socket.write(frame(Type.TABLE, job, piece, encodeTable(table)));
        else if (f.type === Type.STORED) done(Outcome.STORED, 'counted by the reducer');
        else if (f.type === Type.DENY) done(Outcome.DUPLICATE, readReason(f.payload));
        else if (f.type === Type.ERROR) done(Outcome.FAILED, `the reducer says: ${readReason(f.payload)}`);
        else done(Outcome.FAILED, `unexpected ${typeName(f.type)} from the reducer`);
      },
      (message) => done(Outcome.FAILED, `bad frame from the reducer: ${message}`),
    );
  });
}

/** Starts a mapper listening on `host:port`; resolves once it listens. */
export async function startMapper({ host, port, reducer, log = silent, delayMs = 0 }: MapperOptions): Promise<Mapper> {
  const server = trackConnections(net.createServer((socket) => serve(socket)));
  let label = formatAddress(host, port);

  function serve(socket: net.Socket): void {
    const abort = new AbortController();
    let busy = false;
    socket.on('error', () => {});
    socket.on('close', () => abort.abort());
    readFrames(
      socket,
      (f) => {
        if (f.type !== Type.ASSIGN || busy) {
          socket.end(frame(Type.ERROR, f.job, f.piece, text(`unexpected ${typeName(f.type)}: a mapper takes one ASSIGN per connection`)));
          return;
        }
        busy = true;
        // The error boundary: whatever goes wrong with one piece ends that connection, never the mapper.
        work(socket, f, abort.signal).catch((error: unknown) => {
          log(`piece ${f.piece}: failed (${error instanceof Error ? error.message : String(error)}); connection closed`);
          socket.destroy();
        });
      },
      (message) => log(`master ${socket.remoteAddress}: ${message}; connection closed`),
    );
  }

  async function work(socket: net.Socket, f: Frame, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    const beat = setInterval(() => socket.write(frame(Type.BEAT, f.job, f.piece)), BEAT_MS);
    signal.addEventListener('abort', () => clearInterval(beat));
    try {
      log(`piece ${f.piece}: received ${f.payload.length} bytes`);
      // Counted in slices cut like the master's pieces (so the count is the same),
      // yielding between them: the BEATs keep going out and a cancel is seen early.
      const table: Table = new Map();
      for (const slice of splitPieces(f.payload, Math.max(1, Math.ceil(f.payload.length / SLICE_BYTES)))) {
        countText(decodeText(f.payload.subarray(slice.start, slice.end)), table);
        await new Promise((resolve) => setImmediate(resolve));
        if (signal.aborted) {
          log(`piece ${f.piece}: dropped (the master went away)`);
          return;
        }
      }
      log(`piece ${f.piece}: counted ${totalTokens(table)} words, ${table.size} terms in ${(performance.now() - started).toFixed(0)} ms`);
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (signal.aborted) {
        log(`piece ${f.piece}: dropped (the master went away)`);
        return;
      }
      log(`piece ${f.piece}: announcing to the reducer ${formatAddress(reducer.host, reducer.port)}`);
      const { outcome, reason } = await deliver(reducer, f.job, f.piece, table, label, signal);
      const word = outcome === Outcome.STORED ? 'stored' : outcome === Outcome.DUPLICATE ? 'not sent' : 'failed';
      log(`piece ${f.piece}: ${word} (${reason})`);
      if (!signal.aborted) socket.end(frame(Type.DONE, f.job, f.piece, donePayload(outcome, reason)));
    } finally {
      clearInterval(beat);
    }
  }

  const address = await listenTcp(server, host, port);
  label = formatAddress(host, address.port);
  return { server, port: address.port, close: () => closeGracefully(server, 1000) };
}

// ---------------------------------------------------------------------------
// Command line

export const command = defineCommand({
  name: 'mapper.ts',
  summary: 'Map node of the map/reduce word count: counts the terms of the pieces the master sends and hands the tables to the reducer.',
  options: {
    config: { type: 'string', metavar: 'FILE', help: 'node addresses: [reducer] and [mapper1], [mapper2], … with host = and port = (default: ./config.ini, else ej14/config.ini)' },
    delay: { type: 'string', metavar: 'SECONDS', help: 'wait this long after counting a piece, before announcing it (a slow mapper, for demonstrations)' },
    quiet: { type: 'boolean', short: 'q', help: 'quiet: only errors on stderr (no progress lines)' },
  },
  positionals: [
    { name: 'host', help: 'address to listen on (must match a [mapperN] section of config.ini)' },
    { name: 'port', help: 'port to listen on (likewise)' },
  ],
  epilog: `Prints "listening on HOST:PORT (tcp)" on stdout when ready; progress on stderr. Ctrl-C stops it.
Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen (the port is fixed by its [mapperN] in config.ini), 2 bad usage or config.ini, or host port not a [mapperN] there, 130 a second Ctrl-C.`,
});

export async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const [hostArg, portArg] = opts._ as [string, string];
  // lib/cli's checks name options (`--port`); these are positionals.
  const positional = <T>(check: () => T): T => {
    try {
      return check();
    } catch (error) {
      throw error instanceof UsageError ? new UsageError(error.message.replace(/argument --/, 'argument ')) : error;
    }
  };
  const host = positional(() => parseHost(hostArg, 'host'));
  const port = positional(() => parsePort(portArg, 'port'));
  const delayMs = opts.delay === undefined ? 0 : parsePositive(opts.delay, 'delay') * 1000;
  const file = configPath(opts.config);
  const config = await loadConfig(file);
  const me = config.mappers.find((m) => m.host === host && m.port === port);
  if (!me) {
    const listed = config.mappers.map((m) => `[${m.name}] ${formatAddress(m.host, m.port)}`).join(', ');
    throw new CliError(`${formatAddress(host, port)} is not a mapper in ${file} (it lists ${listed}); the master only sends pieces to those`, 2);
  }
  const log = createLogger(me.name, { quiet: opts.quiet });
  const mapper = await startMapper({ host, port, reducer: config.reducer, log, delayMs }).catch(async (error: Error) => {
    // lib's message suggests --port 0, which a mapper does not have: its port is config.ini's.
    if ((error.cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') throw new CliError(await portInUseMessage(formatAddress(host, port), port, me.name, file, 'mapper'));
    throw error;
  });
  process.stdout.write(`${readyLine(mapper.server.address(), 'tcp')}\n`);
  onShutdown(() => mapper.close(), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
