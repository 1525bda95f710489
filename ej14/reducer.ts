/**
 * The reduce node of ej14's word count: it listens where config.ini's
 * `[reducer]` says, takes a job from the master, lets mappers that announce
 * a finished piece send their term → frequency table one at a time, counts
 * exactly one copy of each piece, and when every piece is in sends the
 * merged table to the master, which writes out_file.
 *
 * ```sh
 * npx tsx ej14/reducer.ts            # as the assignment: python nodo_reducer.py
 * npx tsx ej14/reducer.ts --config other.ini
 * ```
 *
 * Prints `listening on 127.0.0.1:8000 (tcp)` on stdout when ready; one
 * timestamped line per job, offer, grant and piece on stderr. Runs until
 * Ctrl-C (it serves one job after another).
 *
 * "Send when it allows them": a mapper's OFFER waits in a queue (p-limit,
 * one transfer at a time, so memory holds one incoming table at once). When
 * its turn comes the reducer answers DENY if a copy of that piece is
 * already counted, else GRANT, and waits for the TABLE (at most
 * `--grant-timeout` seconds; a mapper that dies or stalls loses its turn and
 * the next copy is granted instead). The protocol is in protocol.ts and
 * README.md.
 *
 * @module
 */
import net from 'node:net';
import pLimit, { type LimitFunction } from 'p-limit';
import { defineCommand, formatAddress, parsePositive } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';
import { configPath, decodeTable, encodeTable, type Frame, frame, jobHex, loadConfig, readFrames, readReason, reasonBytes, Type, typeName } from './protocol.ts';
import { PieceCollector, totalTokens } from './wordcount.ts';
import { portInUseMessage } from './port-holder.ts';

/** Options of {@link startReducer}. */
export interface ReducerOptions {
  host: string;
  port: number;
  log?: Logger;
  /** How long a granted mapper may take to send its table. */
  grantTimeoutMs?: number;
}

interface Job {
  id: string;
  collector: PieceCollector;
  master: net.Socket;
  turns: LimitFunction;
  started: number;
}

/** A running reducer. */
export interface Reducer {
  server: net.Server;
  port: number;
  close(): Promise<void>;
}

/** Starts a reducer listening on `host:port`; resolves once it listens. */
export async function startReducer({ host, port, log = silent, grantTimeoutMs = 30_000 }: ReducerOptions): Promise<Reducer> {
  const jobs = new Map<string, Job>();
  const server = trackConnections(net.createServer((socket) => serve(socket)));

  function serve(socket: net.Socket): void {
    const peer = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    let role: 'master' | 'mapper' | undefined;
    let job: Job | undefined;
    /** Set while this mapper holds the turn and its TABLE is awaited. */
    let awaitingTable: ((f: Frame | Error) => void) | undefined;
    socket.on('error', () => {});
    socket.on('close', () => {
      awaitingTable?.(new Error('the mapper closed the connection'));
      if (role === 'master' && job && jobs.get(job.id) === job) {
        jobs.delete(job.id);
        log(`job ${job.id.slice(0, 8)}: the master went away with ${job.collector.stored}/${job.collector.pieces} pieces counted; job dropped`);
      }
    });
    const refuse = (message: string) => {
      log(`${peer}: ${message}`);
      socket.end(frame(Type.ERROR, new Uint8Array(16), 0, reasonBytes(message)));
    };
    readFrames(
      socket,
      (f) => {
        if (role === undefined && f.type === Type.JOB) {
          role = 'master';
          const id = jobHex(f.job);
          if (f.piece < 1) return refuse(`JOB with ${f.piece} pieces: expected at least 1`);
          if (jobs.has(id)) return refuse(`job ${id} is already running`);
          job = { id, collector: new PieceCollector(f.piece), master: socket, turns: pLimit(1), started: performance.now() };
          jobs.set(id, job);
          log(`job ${id.slice(0, 8)} from master ${peer}: ${f.piece} piece(s)`);
          socket.write(frame(Type.JOB_OK, f.job, f.piece));
        } else if (role === undefined && f.type === Type.OFFER) {
          role = 'mapper';
          offer(socket, f, readReason(f.payload, 256) || peer, (waiter) => (awaitingTable = waiter));
        } else if (role === 'mapper' && f.type === Type.TABLE && awaitingTable) {
          const resolve = awaitingTable;
          awaitingTable = undefined;
          resolve(f);
        } else {
          refuse(`unexpected ${typeName(f.type)} from a ${role ?? 'new connection'}`);
        }
      },
      (message) => log(`${peer}: ${message}; connection closed`),
    );
  }

  /** Queues a mapper's announcement; its turn grants or denies it. */
  function offer(socket: net.Socket, f: Frame, label: string, setWaiter: (w: ((f: Frame | Error) => void) | undefined) => void): void {
    const id = jobHex(f.job);
    const job = jobs.get(id);
    const deny = (reason: string) => {
      log(`piece ${f.piece} from ${label}: denied (${reason})`);
      socket.end(frame(Type.DENY, f.job, f.piece, reasonBytes(reason)));
    };
    if (!job) return deny(`unknown job ${id.slice(0, 8)} (finished, or its master went away)`);
    if (!job.collector.valid(f.piece)) return deny(`piece ${f.piece} is not in job ${id.slice(0, 8)} (1-${job.collector.pieces})`);
    if (job.collector.has(f.piece)) return deny(`duplicate: piece ${f.piece} is already counted`);
    log(`piece ${f.piece} from ${label}: announced, waiting for its turn (${job.turns.pendingCount} ahead)`);
    void job.turns(async () => {
      if (socket.destroyed) return;
      if (jobs.get(id) !== job) return deny(`job ${id.slice(0, 8)} is over`);
      if (job.collector.has(f.piece)) return deny(`duplicate: piece ${f.piece} is already counted`);
      const table = await new Promise<Frame | Error>((resolve) => {
        const timer = setTimeout(() => resolve(new Error(`no table within ${grantTimeoutMs / 1000} s`)), grantTimeoutMs);
        setWaiter((result) => {
          clearTimeout(timer);
          resolve(result);
        });
        log(`piece ${f.piece} from ${label}: granted`);
        socket.write(frame(Type.GRANT, f.job, f.piece));
      });
      setWaiter(undefined);
      if (table instanceof Error) {
        log(`piece ${f.piece} from ${label}: turn lost (${table.message})`);
        socket.destroy();
        return;
      }
      let counts;
      try {
        counts = decodeTable(table.payload);
      } catch (error) {
        // The message may quote a term of the peer's, of any length: cut it.
        const message = readReason(reasonBytes(error instanceof Error ? error.message : String(error), 4 * 1024));
        log(`piece ${f.piece} from ${label}: bad table (${message})`);
        socket.end(frame(Type.ERROR, f.job, f.piece, reasonBytes(message)));
        return;
      }
      if (jobs.get(id) !== job) return deny(`job ${id.slice(0, 8)} is over`);
      job.collector.accept(f.piece, counts);
      socket.end(frame(Type.STORED, f.job, f.piece));
      log(`piece ${f.piece} from ${label}: counted (${counts.size} terms, ${totalTokens(counts)} words); ${job.collector.stored}/${job.collector.pieces} pieces`);
      job.master.write(frame(Type.PIECE_STORED, f.job, f.piece, reasonBytes(label)));
      if (job.collector.complete) finish(job);
    });
  }

  function finish(job: Job): void {
    const payload = encodeTable(job.collector.total);
    job.master.write(frame(Type.RESULT, Buffer.from(job.id, 'hex'), job.collector.pieces, payload));
    jobs.delete(job.id);
    const seconds = ((performance.now() - job.started) / 1000).toFixed(2);
    log(`job ${job.id.slice(0, 8)}: all ${job.collector.pieces} pieces counted; sent ${job.collector.total.size} terms (${totalTokens(job.collector.total)} words) to the master after ${seconds} s`);
  }

  const address = await listenTcp(server, host, port);
  return {
    server,
    port: address.port,
    close: () => closeGracefully(server, 1000),
  };
}

// ---------------------------------------------------------------------------
// Command line

export const command = defineCommand({
  name: 'reducer.ts',
  summary: 'Reduce node of the map/reduce word count: merges one table per piece and hands the result to the master.',
  options: {
    config: { type: 'string', metavar: 'FILE', help: 'node addresses: [reducer] and [mapper1], [mapper2], … with host = and port = (default: ./config.ini, else ej14/config.ini)' },
    'grant-timeout': { type: 'string', metavar: 'SECONDS', default: '30', help: 'how long a mapper allowed to send may take before its turn goes to the next' },
    quiet: { type: 'boolean', short: 'q', help: 'quiet: only errors on stderr (no progress lines)' },
  },
  epilog: `Listens on [reducer] host:port. Prints "listening on HOST:PORT (tcp)" on stdout when ready; progress on stderr. Ctrl-C stops it.
Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen (the port is fixed by [reducer] in config.ini), 2 bad usage or config.ini, 130 a second Ctrl-C.`,
});

export async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const grantTimeoutMs = parsePositive(opts['grant-timeout'], 'grant-timeout') * 1000;
  const file = configPath(opts.config);
  const config = await loadConfig(file);
  const log = createLogger('reducer', { quiet: opts.quiet });
  const { host, port } = config.reducer;
  const reducer = await startReducer({ host, port, log, grantTimeoutMs }).catch(async (error: Error) => {
    // lib's message suggests --port 0, which the reducer does not have: its port is config.ini's.
    if ((error.cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') throw new CliError(await portInUseMessage(formatAddress(host, port), port, 'reducer', file, 'reducer'));
    throw error;
  });
  process.stdout.write(`${readyLine(reducer.server.address(), 'tcp')}\n`);
  log(`${config.mappers.length} mapper(s) in the config; waiting for a master`);
  onShutdown(() => reducer.close(), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
