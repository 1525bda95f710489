/**
 * Master of the replicated directory: holds the authoritative tree in
 * `--root`, runs the clients' commands on it and replicates every change to
 * every registered slave.
 *
 * ```sh
 * npx tsx ej12/master.ts --root /tmp/SERVIDOR                         # 127.0.0.1:8000
 * npx tsx ej12/slave.ts --port 8001 --root /tmp/r1 --master 127.0.0.1:8000
 * npx tsx ej12/slave.ts --port 8002 --root /tmp/r2 --master 127.0.0.1:8000
 * npx tsx ej12/client.ts --port 8000
 * ```
 *
 * Prints `listening on 127.0.0.1:8000 (tcp)` on stdout when ready, and one
 * line per event (registrations, replications, slaves lost) on stderr.
 *
 * A slave registers (REGISTRAR, giving the address it serves on) and gets a
 * node id; the master then connects to it, asks for its manifest (COPIAR),
 * and sends what differs (AGREGAR_ARCHIVO, MODIFICAR_ARCHIVO,
 * ELIMINAR_ARCHIVO), so a new slave gets a full copy and a returning one
 * only what changed while it was away. After that every change a client
 * makes is sent to each slave, in order, through one queue per slave, and the
 * client's answer waits until every live slave has acknowledged it. A slave
 * that fails to answer is dropped and the master serves on without it; it
 * catches up when it registers again. Protocol: ej12/protocol.ts.
 *
 * A registration is checked before the master connects anywhere: the
 * master connects back only to the address the REGISTRAR came from (the
 * port is the slave's word), never to a slave's address while a live slave
 * holds it (that one stays until its connection fails; a REGISTRAR naming it
 * only makes the master check it is alive), and each registration gets a
 * fresh random node id that the master's COPIAR must carry, so a slave can
 * tell its master's channel from a stranger's. With `--secret-file`, a
 * REGISTRAR is accepted only in the authenticated mode (ej12/link.ts), and
 * the master's channel to each slave speaks it too.
 *
 * @module
 */
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { defineCommand, formatAddress, parseHost, parsePort } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';
import { answer, Link, normalizeAddress, readSecretFile } from './link.ts';
import {
  ACTION_NAMES,
  AGREGAR_ARCHIVO,
  COPIAR,
  dataText,
  ERROR,
  type Message,
  message,
  MODIFICAR_ARCHIVO,
  REGISTRAR,
  REMOTO,
} from './protocol.ts';
import { type Change, diff, manifest, MUTATING, parseManifest, putFile, readChangeData, openRoot, runCommand } from './tree.ts';

/** How long a slave has to acknowledge one change before it is dropped. */
const REPLICA_TIMEOUT_MS = 15_000;
/** How long a live slave has to answer the check a REGISTRAR naming its address triggers. */
const PROBE_TIMEOUT_MS = 5_000;

const WILDCARDS = new Set(['', '0.0.0.0', '::']);

/** A registered slave: its connection and the queue of changes to send it, in order. */
class Replica {
  readonly id: number;
  readonly where: string;
  readonly link: Link;
  #queue: Promise<void> = Promise.resolve();
  #failed: Error | undefined;
  #probing = false;
  /** Set once the slave has its first full copy: only then does a client's answer wait for it. */
  synced = false;

  constructor(id: number, where: string, link: Link) {
    this.id = id;
    this.where = where;
    this.link = link;
  }

  get failed(): Error | undefined {
    return this.#failed ?? this.link.closed;
  }

  /** Checks, after what is queued, that the slave still answers (a listing of its root); one check at a time. */
  probe(): void {
    if (this.#probing) return;
    this.#probing = true;
    void this.enqueue(async () => {
      await this.link.request(message(REMOTO, '', JSON.stringify(['ls', '']), this.id), PROBE_TIMEOUT_MS);
    }).finally(() => {
      this.#probing = false;
    });
  }

  /** Runs `task` after everything queued before it; a failure drops the replica (later tasks are skipped). */
  enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(async () => {
      if (this.failed) return;
      try {
        await task();
      } catch (error) {
        this.#failed ??= error as Error;
        this.link.close();
      }
    });
    this.#queue = run;
    return run;
  }

  /** Sends one change and waits for its acknowledgement. */
  async send(change: Change): Promise<void> {
    const reply = await this.link.request(message(change.action, change.path, change.data, this.id), REPLICA_TIMEOUT_MS);
    if (reply.action !== change.action) {
      throw new Error(`slave ${this.id} refused ${ACTION_NAMES[change.action]} ${change.path}: ${reply.action === ERROR ? dataText(reply) : `answered ${ACTION_NAMES[reply.action] ?? reply.action}`}`);
    }
  }
}

/** Options of {@link createMaster}. */
export interface MasterOptions {
  /** The synchronised directory, as a real path. */
  root: string;
  log?: Logger;
  /** The shared secret of the authenticated mode: REGISTRAR only with it, and the channels to the slaves use it. */
  secret?: Uint8Array | undefined;
}

/** The master: a TCP server for clients and slaves, and its replicas. */
export interface Master {
  server: net.Server;
  /** Live replicas by address. */
  replicas: Map<string, Replica>;
  close(): Promise<void>;
}

/** Creates (but does not start) the master. */
export function createMaster({ root, log = silent, secret }: MasterOptions): Master {
  const replicas = new Map<string, Replica>();
  /** Addresses the master is connecting to for a registration. */
  const connecting = new Set<string>();
  let lock: Promise<unknown> = Promise.resolve();
  /** Runs `task` alone: commands, and a sync's reads, see the tree between commands, never mid-command. */
  const exclusive = <T>(task: () => Promise<T>): Promise<T> => {
    const run = lock.then(task);
    lock = run.catch(() => {});
    return run;
  };

  const live = () => [...replicas.values()].filter((r) => !r.failed);

  /**
   * Queues `changes` on every live replica; resolves when each replica in sync
   * has acknowledged or been dropped. A replica still being synchronised gets
   * them in order after its copy, but a client is not kept waiting for it: a
   * REGISTRAR naming a port that accepts and never answers would otherwise
   * hold every change up for REPLICA_TIMEOUT_MS (found by the fuzz campaign).
   */
  const replicate = (changes: Change[]): Promise<unknown> =>
    Promise.all(live().flatMap((r) => {
      const sent = changes.map((c) => r.enqueue(() => r.send(c)));
      return r.synced ? sent : [];
    }));

  const sync = async (replica: Replica) => {
    const reply = await replica.link.request(message(COPIAR, '', '', replica.id), REPLICA_TIMEOUT_MS);
    if (reply.action !== COPIAR) throw new Error(`slave ${replica.id} did not send its manifest: ${dataText(reply)}`);
    const theirs = parseManifest(dataText(reply));
    const ours = await exclusive(() => manifest(root));
    const changes = diff(ours, theirs);
    for (const change of changes) {
      // Read at send time, between commands: a file gone since is left to the change that removed it.
      const data = await exclusive(() => readChangeData(root, change));
      if (data === null) continue;
      await replica.send({ ...change, ...(data ? { data } : {}) });
    }
    replica.synced = true;
    log(`slave ${replica.id} (${replica.where}) in sync: ${theirs.length} entries there, ${changes.length} changes sent`);
  };

  const register = async (m: Message, socket: net.Socket, authenticated: boolean): Promise<Message> => {
    if (secret && !authenticated) throw new Error('REGISTRAR refused: this master takes registrations only in the authenticated mode (start the slave with the same --secret-file)');
    const text = dataText(m);
    const match = /^(.*):(\d{1,5})$/.exec(text);
    if (!match) throw new Error(`REGISTRAR: expected "HOST:PORT" in data, received ${JSON.stringify(text.slice(0, 80))}`);
    let host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
    const port = Number(match[2]);
    if (port < 1 || port > 65535) throw new Error(`REGISTRAR: port out of range: ${port}`);
    const source = normalizeAddress(socket.remoteAddress ?? '');
    // A slave listening on every address is reached where its registration came from; any other
    // address must be that one, or anyone could make the master connect wherever they like.
    if (WILDCARDS.has(host)) host = source;
    else if (normalizeAddress(host) !== source) {
      throw new Error(`REGISTRAR refused: a slave is reached back at the address it registers from (${source}), not at ${host}`);
    }
    const where = formatAddress(host, port);
    const existing = replicas.get(where);
    if (existing && !existing.failed) {
      existing.probe();
      log(`${formatAddress(source, socket.remotePort ?? 0)}: REGISTRAR for ${where} refused: slave ${existing.id} is live there (checking it)`);
      throw new Error(`REGISTRAR refused: a live slave is registered at ${where}; it stays until its connection fails (try again later)`);
    }
    if (connecting.has(where)) throw new Error(`REGISTRAR refused: the master is still connecting to ${where} for an earlier registration (try again later)`);
    // A fresh random id per registration: the master's COPIAR carries it, and the slave takes its channel only with it.
    const nodeId = randomInt(1, 2 ** 32);
    connecting.add(where);
    // Connect after answering: the slave learns its id first.
    setImmediate(() => {
      Link.connect(host, port, 10_000, { secret }).then(
        (link) => {
          connecting.delete(where);
          const replica = new Replica(nodeId, where, link);
          replicas.set(where, replica);
          link.onClose((why) => {
            if (replicas.get(where) === replica) replicas.delete(where);
            log(`slave ${nodeId} (${where}) down: ${replica.failed?.message ?? why.message}; it gets what it missed when it registers again`);
          });
          log(`slave ${nodeId} registered at ${where}; synchronising`);
          void replica.enqueue(() => sync(replica));
        },
        (error: Error) => {
          connecting.delete(where);
          log(`slave ${nodeId} registered at ${where} but cannot be reached: ${error.message}`);
        },
      );
    });
    return message(REGISTRAR, '', '', nodeId);
  };

  const handle = async (m: Message, socket: net.Socket, authenticated: boolean): Promise<Message> => {
    if (m.action === REGISTRAR) return register(m, socket, authenticated);
    if (m.action === REMOTO) {
      let argv: unknown;
      try {
        argv = JSON.parse(dataText(m));
      } catch {
        throw new Error('REMOTO: data is not a JSON array of strings');
      }
      if (!Array.isArray(argv) || argv.length === 0 || argv.length > 8 || !argv.every((a) => typeof a === 'string')) {
        throw new Error('REMOTO: expected a JSON array of 1 to 8 strings');
      }
      const outcome = await exclusive(async () => {
        const result = await runCommand(root, argv as string[]);
        if (MUTATING.has(argv[0] as string)) log(`${(argv as string[]).join(' ')}: ${result.changes.length} changes to replicate`);
        return { ...result, replicated: replicate(result.changes) };
      });
      await outcome.replicated;
      return message(REMOTO, m.path, outcome.output);
    }
    if (m.action === AGREGAR_ARCHIVO || m.action === MODIFICAR_ARCHIVO) {
      const outcome = await exclusive(async () => {
        const result = await putFile(root, m.path, m.data);
        log(`put ${m.path} (${m.data.length} bytes)`);
        return { ...result, replicated: replicate(result.changes) };
      });
      await outcome.replicated;
      return message(m.action, m.path);
    }
    throw new Error(`action ${ACTION_NAMES[m.action] ?? m.action} is not accepted by the master`);
  };

  const server = trackConnections(
    net.createServer({ allowHalfOpen: true }, (socket) => {
      const peer = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
      answer(socket, (m, authenticated) => handle(m, socket, authenticated), (why) => log(`${peer}: malformed PDU, connection closed: ${why}`), { secret });
    }),
  );
  return {
    server,
    replicas,
    async close() {
      for (const r of replicas.values()) r.link.close();
      await closeGracefully(server, 1000);
    },
  };
}

const command = defineCommand({
  name: 'master.ts',
  summary: 'Master of the replicated directory: runs the clients\' commands and replicates every change to the slaves.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '8000', help: 'port to listen on; 0 picks a free one' },
    root: { type: 'string', metavar: 'DIR', default: 'SERVIDOR', help: 'the synchronised directory (made if missing)' },
    'secret-file': { type: 'string', metavar: 'FILE', help: 'a shared secret (at least 16 bytes) also given to the slaves: registrations and replication then carry an HMAC-SHA256 per PDU; without it, the assignment\'s plain PDUs' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log events on stderr' },
  },
  epilog: 'Prints "listening on HOST:PORT (tcp)" on stdout when ready. Ctrl-C stops it.\nExit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen or use --root or --secret-file, 2 bad usage, 130 a second Ctrl-C or connections still open after the grace period.',
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const root = await openRoot(opts.root).catch((error: Error) => {
    throw new CliError(error.message);
  });
  const secret = opts['secret-file'] === undefined ? undefined : await readSecretFile(opts['secret-file']).catch((error: Error) => {
    throw new CliError(error.message);
  });
  const log = createLogger('ej12-master', { quiet: opts.quiet });
  const master = createMaster({ root, log, secret });
  console.log(readyLine(await listenTcp(master.server, host, port), 'tcp'));
  log(`serving ${root}${secret ? '; registrations and replication authenticated with the shared secret' : ''}`);
  onShutdown(() => master.close(), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
