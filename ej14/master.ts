/**
 * The master of ej14's map/reduce word count: it reads `in_file`, cuts it
 * into at most half as many pieces as config.ini lists mappers (on token
 * boundaries, never inside a word or a UTF-8 character), opens a job at the
 * reducer, hands every piece to `--copies` mappers at once (2 by default:
 * whichever finishes first is counted, the reducer discards the other copy),
 * hands a piece again to an idle mapper when one of its mappers dies or
 * falls silent, and writes the reducer's merged table to `out_file`.
 *
 * ```sh
 * npx tsx ej14/reducer.ts &                     # config.ini names them all
 * npx tsx ej14/mapper.ts 127.0.0.1 8001 &       # … one per [mapperN]
 * npx tsx ej14/master.ts ej14/data/pg2000.txt salida.txt  # as the assignment: python nodo_master.py pg2000.txt salida.txt
 * ```
 *
 * out_file has one line per term, `term<TAB>count`, sorted by count
 * descending then term (wordcount.ts defines what a term is). stdout gets
 * one summary line; stderr one timestamped line per assignment, piece
 * counted, mapper lost and reassignment.
 *
 * Bounded waits: the reducer must accept the job within `--task-timeout`;
 * a mapper must answer (a BEAT every second while it works, then DONE)
 * with no silence longer than `--task-timeout` seconds, else the master
 * gives it up and its piece goes to another mapper. With no mapper left and
 * pieces uncounted, the master exits 1 saying which.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { defineCommand, formatAddress, parsePositive, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { type Config, configPath, decodeTable, frame, jobHex, loadConfig, type NodeAddress, Outcome, readFrames, readReason, Type, typeName } from './protocol.ts';
import { formatTable, type Piece, splitPieces, type Table, totalTokens } from './wordcount.ts';

/** The assignment's "at most half as many pieces as mappers" (at least one). */
export function maxPieces(mappers: number): number {
  return Math.max(1, Math.floor(mappers / 2));
}

/** Options of {@link runJob}. */
export interface JobOptions {
  input: Uint8Array;
  config: Config;
  pieces?: number;
  copies?: number;
  taskTimeoutMs?: number;
  /**
   * How long a node that refuses connections may still be starting: the
   * reducer, and each mapper until it first accepts one, are tried again
   * every 250 ms for this long (bounded by `taskTimeoutMs` too). 0, the
   * default, gives them up at the first refusal.
   */
  waitMs?: number;
  log?: Logger;
}

/** What {@link runJob} returns. */
export interface JobResult {
  table: Table;
  pieces: Piece[];
  /** How many times a piece was handed to a mapper (copies and reassignments included). */
  assignments: number;
  /** Mappers given up on, with why. */
  lost: string[];
}

interface MapperState {
  node: NodeAddress;
  label: string;
  busy: boolean;
  dead: string | undefined;
  /** Pieces it could not deliver in a row (the reducer refused, say); three and it is given up. */
  failures: number;
  /** It accepted a connection in this job: a refusal now means it is gone, not still starting. */
  seen: boolean;
  /** Its refusal while starting was logged. */
  waitLogged: boolean;
}

interface PieceState {
  piece: Piece;
  done: boolean;
  /** A mapper working on it was lost: the next assignment is a reassignment. */
  orphaned: boolean;
  /** Cancels each running assignment of this piece (used once a copy is counted). */
  running: Map<MapperState, () => void>;
}

/**
 * Runs one word count over the mappers and reducer of `config` and resolves
 * with the reducer's merged table. Rejects with a {@link CliError} when the
 * reducer cannot be reached or no mapper is left for an uncounted piece.
 */
export function runJob({ input, config, pieces: wanted, copies = 2, taskTimeoutMs = 10_000, waitMs = 0, log = silent }: JobOptions): Promise<JobResult> {
  const pieces = splitPieces(input, wanted ?? maxPieces(config.mappers.length));
  const job = randomBytes(16);
  const mappers: MapperState[] = config.mappers.map((node) => ({ node, label: `${node.name} ${formatAddress(node.host, node.port)}`, busy: false, dead: undefined, failures: 0, seen: false, waitLogged: false }));
  const states: PieceState[] = pieces.map((piece) => ({ piece, done: false, orphaned: false, running: new Map() }));
  const reducerAt = formatAddress(config.reducer.host, config.reducer.port);
  let assignments = 0;
  const waitUntil = performance.now() + waitMs;
  const stillStarting = (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED' && performance.now() < waitUntil;
  log(`job ${jobHex(job).slice(0, 8)}: ${input.length} bytes in ${pieces.length} piece(s) (${pieces.map((p) => p.end - p.start).join(', ')} bytes) for ${mappers.length} mapper(s), ${copies} cop${copies === 1 ? 'y' : 'ies'} each`);

  return new Promise<JobResult>((resolve, reject) => {
    let finished = false;
    let accepted = false;
    let refusals = 0;
    let reducer: net.Socket | undefined;
    let retry: NodeJS.Timeout | undefined;
    const end = (error: Error | undefined, table?: Table) => {
      if (finished) return;
      finished = true;
      clearTimeout(jobTimer);
      clearTimeout(retry);
      for (const state of states) for (const cancel of state.running.values()) cancel();
      reducer?.destroy();
      if (error) reject(error);
      else resolve({ table: table as Table, pieces, assignments, lost: mappers.filter((m) => m.dead).map((m) => `${m.label}: ${m.dead}`) });
    };
    const jobTimer = setTimeout(
      () =>
        end(
          new CliError(
            refusals > 0
              ? `cannot connect to the reducer ${reducerAt}: connection refused for ${taskTimeoutMs / 1000} s (is reducer.ts running?)`
              : `the reducer ${reducerAt} did not accept the job within ${taskTimeoutMs / 1000} s`,
          ),
        ),
      taskTimeoutMs,
    );
    const connectReducer = () => {
      const socket = net.connect({ host: config.reducer.host, port: config.reducer.port });
      reducer = socket;
      let refused = false;
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (!accepted && stillStarting(error)) {
          // Started together with the nodes (`reducer & mappers & master`): it may not listen yet.
          refused = true;
          if (refusals++ === 0) log(`reducer ${reducerAt}: connection refused; trying again for up to ${Math.min(waitMs, taskTimeoutMs) / 1000} s (is it still starting?)`);
          retry = setTimeout(() => finished || connectReducer(), 250);
          return;
        }
        end(new CliError(error.code === 'ECONNREFUSED' ? `cannot connect to the reducer ${reducerAt}: connection refused (is reducer.ts running?)` : `reducer ${reducerAt}: ${error.code ?? error.message}`));
      });
      socket.on('close', () => refused || end(new CliError(`the reducer ${reducerAt} closed the connection before sending the result`)));
      socket.on('connect', () => socket.write(frame(Type.JOB, job, pieces.length)));
      readFrames(
        socket,
        (f) => {
          if (f.type === Type.JOB_OK) {
            clearTimeout(jobTimer);
            accepted = true;
            log(`reducer ${reducerAt} accepted the job`);
            pump();
          } else if (f.type === Type.PIECE_STORED) {
            const state = states[f.piece - 1];
            if (state) markDone(state, `from ${readReason(f.payload, 256)}`);
          } else if (f.type === Type.RESULT) {
            let table: Table;
            try {
              table = decodeTable(f.payload);
            } catch (error) {
              return end(new CliError(`bad result from the reducer: ${error instanceof Error ? error.message : String(error)}`));
            }
            end(undefined, table);
          } else if (f.type === Type.ERROR) {
            end(new CliError(`the reducer refused the job: ${readReason(f.payload)}`));
          } else {
            end(new CliError(`unexpected ${typeName(f.type)} from the reducer`));
          }
        },
        (message) => end(new CliError(`bad frame from the reducer: ${message}`)),
      );
    };
    connectReducer();

    /**
     * A copy of the piece is counted: the reducer said so, or a mapper
     * reports that the reducer stored its copy or refused it as a
     * duplicate (the reducer's own notice may still be on its way).
     */
    function markDone(state: PieceState, how: string): void {
      if (state.done) return;
      state.done = true;
      log(`piece ${state.piece.id}: counted by the reducer (${how}); ${states.filter((s) => s.done).length}/${states.length}`);
      // The other copies are of no use now: free their mappers.
      for (const cancel of [...state.running.values()]) cancel();
      pump();
    }

    /** Gives every idle mapper the piece that most needs a copy; fails when nothing can progress. */
    function pump(): void {
      if (finished) return;
      for (const mapper of mappers) {
        if (mapper.busy || mapper.dead) continue;
        const open = states.filter((s) => !s.done && s.running.size < copies && !s.running.has(mapper));
        if (open.length === 0) break;
        const state = open.reduce((a, b) => (b.running.size < a.running.size ? b : a));
        assign(mapper, state);
      }
      const pending = states.filter((s) => !s.done);
      if (pending.length > 0 && pending.every((s) => s.running.size === 0) && mappers.every((m) => m.dead || !m.busy)) {
        const lost = mappers.filter((m) => m.dead).map((m) => `${m.label}: ${m.dead}`);
        end(new CliError(`no mapper left for piece(s) ${pending.map((s) => s.piece.id).join(', ')}; mappers lost: ${lost.join('; ')}`));
      }
    }

    function assign(mapper: MapperState, state: PieceState): void {
      const { piece } = state;
      mapper.busy = true;
      assignments++;
      log(`piece ${piece.id}: ${piece.end - piece.start} bytes → ${mapper.label}${state.orphaned ? ' (reassigned)' : ''}`);
      let socket: net.Socket | undefined;
      let settled = false;
      let refusedWhileStarting = false;
      let timer: NodeJS.Timeout | undefined;
      let retry: NodeJS.Timeout | undefined;
      const silence = () => {
        clearTimeout(timer);
        timer = setTimeout(() => fail(refusedWhileStarting ? `connection refused for ${taskTimeoutMs / 1000} s` : `no answer within ${taskTimeoutMs / 1000} s`), taskTimeoutMs);
      };
      const settle = () => {
        settled = true;
        clearTimeout(timer);
        clearTimeout(retry);
        state.running.delete(mapper);
        mapper.busy = false;
        socket?.destroy();
      };
      const fail = (why: string) => {
        if (settled) return;
        settle();
        mapper.dead = why;
        state.orphaned = true;
        log(`${mapper.label}: given up (${why}); piece ${piece.id} ${state.done ? 'is counted already' : 'goes to another mapper'}`);
        pump();
      };
      state.running.set(mapper, () => {
        if (settled) return;
        settle();
        if (!finished) log(`${mapper.label}: piece ${piece.id} dropped (another copy was counted)`);
      });
      silence();
      const open = () => {
        const s = net.connect({ host: mapper.node.host, port: mapper.node.port });
        socket = s;
        let refused = false;
        s.on('connect', () => {
          mapper.seen = true;
          refusedWhileStarting = false;
          s.write(frame(Type.ASSIGN, job, piece.id, input.subarray(piece.start, piece.end)));
        });
        s.on('error', (error: NodeJS.ErrnoException) => {
          if (!mapper.seen && stillStarting(error)) {
            // Never reached in this job: it may still be starting. The silence timer bounds the wait.
            refused = refusedWhileStarting = true;
            if (!mapper.waitLogged) log(`${mapper.label}: connection refused; trying again for up to ${Math.min(waitMs, taskTimeoutMs) / 1000} s (is it still starting?)`);
            mapper.waitLogged = true;
            retry = setTimeout(() => settled || open(), 250);
            return;
          }
          fail(error.code === 'ECONNREFUSED' ? 'connection refused' : (error.code ?? error.message));
        });
        s.on('close', () => refused || fail('connection closed before DONE'));
        readFrames(
          s,
          (f) => {
            if (f.type === Type.BEAT) return silence();
            if (f.type !== Type.DONE) return fail(`unexpected ${typeName(f.type)}`);
            const outcome = f.payload[0];
            const reason = readReason(f.payload.subarray(1));
            settle();
            if (outcome === Outcome.FAILED) {
              // The mapper lives but could not deliver (the reducer refused it, say): not its fault, try again.
              log(`${mapper.label}: piece ${piece.id} failed (${reason})`);
              state.orphaned = true;
              if (++mapper.failures >= 3) mapper.dead = `three pieces in a row not delivered, the last: ${reason}`;
            } else {
              mapper.failures = 0;
              log(`${mapper.label}: piece ${piece.id} ${outcome === Outcome.STORED ? 'delivered' : `not sent (${reason})`}`);
              markDone(state, `${mapper.label} reports it`);
            }
            pump();
          },
          (message) => fail(`bad frame: ${message}`),
        );
      };
      open();
    }
  });
}

// ---------------------------------------------------------------------------
// Command line

export const command = defineCommand({
  name: 'master.ts',
  summary: 'Master of the map/reduce word count: splits in_file among the mappers of config.ini and writes the reducer\'s merged term counts to out_file.',
  options: {
    config: { type: 'string', metavar: 'FILE', help: 'node addresses: [reducer] and [mapper1], [mapper2], … with host = and port = (default: ./config.ini, else ej14/config.ini)' },
    pieces: { type: 'string', metavar: 'N', help: 'number of pieces (default and maximum: half the number of mappers, at least 1)' },
    copies: { type: 'string', metavar: 'N', default: '2', help: 'mappers that work on the same piece at once; the first to finish is counted' },
    'task-timeout': { type: 'string', metavar: 'SECONDS', default: '10', help: 'silence after which a mapper (or the reducer, for the job) is given up' },
    wait: { type: 'string', metavar: 'SECONDS', default: '10', help: 'how long the reducer, and a mapper not reached yet, may refuse connections while they start (at most --task-timeout)' },
    quiet: { type: 'boolean', short: 'q', help: 'quiet: only errors on stderr (no progress lines)' },
  },
  positionals: [
    { name: 'in_file', help: 'UTF-8 text to count (the assignment asks for at least 5 MB)' },
    { name: 'out_file', help: 'where to write the counts: "term<TAB>count" lines, most frequent first' },
  ],
  epilog: `Prints one summary line on stdout; progress on stderr. in_file and out_file are checked before any node is contacted.
Exit status: 0 out_file written, 1 the reducer or every mapper failed (or out_file could not be written at the end), 2 bad usage, config.ini, in_file or out_file.`,
});

/** Why `file` cannot be written, in words. */
function outFileProblem(error: NodeJS.ErrnoException, file: string): string {
  const folder = path.dirname(path.resolve(file));
  if (error.code === 'ENOENT') return `the folder ${folder} does not exist`;
  if (error.code === 'ENOTDIR') return `${folder} is not a folder`;
  if (error.code === 'EISDIR') return 'it is a folder';
  if (error.code === 'EACCES' || error.code === 'EPERM') return 'permission denied';
  if (error.code === 'ENOSPC') return 'no space left on the device';
  return error.code ?? error.message;
}

/**
 * Checks, before any work, that out_file can be written: its folder exists
 * and may be written to, and out_file, if it exists, is a file that may be.
 * Nothing is created or truncated: a job that fails leaves an old out_file
 * as it was. A problem is a {@link CliError} with exit 2, as for in_file.
 */
export async function checkOutFile(file: string): Promise<void> {
  const folder = path.dirname(path.resolve(file));
  try {
    const found = await stat(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (found?.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
    if (found) await access(file, constants.W_OK);
    else {
      if (!(await stat(folder)).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
      await access(folder, constants.W_OK);
    }
  } catch (error) {
    throw new CliError(`cannot write out_file ${file}: ${outFileProblem(error as NodeJS.ErrnoException, file)}`, 2);
  }
}

function parseWait(text: string): number {
  if (text === '0') return 0;
  return parsePositive(text, 'wait');
}

export async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const [inFile, outFile] = opts._ as [string, string];
  const copies = parsePositive(opts.copies, 'copies', { integer: true });
  const taskTimeoutMs = parsePositive(opts['task-timeout'], 'task-timeout') * 1000;
  const file = configPath(opts.config);
  const config = await loadConfig(file);
  const most = maxPieces(config.mappers.length);
  const pieces = opts.pieces === undefined ? most : parsePositive(opts.pieces, 'pieces', { integer: true });
  if (pieces > most) throw new UsageError(`argument --pieces: at most ${most} with ${config.mappers.length} mapper(s) in ${file}, got ${pieces}`);
  let input: Buffer;
  try {
    input = await readFile(inFile);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read in_file ${inFile}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : (code ?? String(error))}`, 2);
  }
  await checkOutFile(outFile);
  const waitMs = parseWait(opts.wait) * 1000;
  const log = createLogger('master', { quiet: opts.quiet });
  if (input.length < 5 * 1024 * 1024) log(`note: ${inFile} has ${input.length} bytes; the assignment asks for at least 5 MB (counting it anyway)`);
  const started = performance.now();
  const result = await runJob({ input, config, pieces, copies, taskTimeoutMs, waitMs, log });
  try {
    await writeFile(outFile, formatTable(result.table));
  } catch (error) {
    throw new CliError(`cannot write out_file ${outFile}: ${outFileProblem(error as NodeJS.ErrnoException, outFile)}`);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  process.stdout.write(
    `${outFile}: ${result.table.size} terms, ${totalTokens(result.table)} words from ${input.length} bytes in ${result.pieces.length} piece(s), ${result.assignments} assignment(s), ${result.lost.length} mapper(s) lost, ${seconds} s\n`,
  );
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
