/**
 * Slave of the replicated directory: keeps a copy of the master's tree in
 * `--root`, registers with the master (`--master HOST:PORT`) and applies the
 * changes the master sends.
 *
 * ```sh
 * npx tsx ej12/slave.ts --port 8001 --root /tmp/r1 --master 127.0.0.1:8000
 * ```
 *
 * Prints `listening on 127.0.0.1:8001 (tcp)` on stdout when ready, and one
 * line per event on stderr.
 *
 * Once listening it sends REGISTRAR (with the address it serves on) to the
 * master, which answers with this node's id and connects back. The one
 * connection that then opens with a COPIAR carrying that id, from the
 * master's address (and, with `--secret-file`, in the authenticated mode),
 * becomes the master's replication channel: the slave answers with its
 * manifest (every file's SHA-256) and then applies AGREGAR_ARCHIVO,
 * MODIFICAR_ARCHIVO and ELIMINAR_ARCHIVO as they come on it, acknowledging
 * each; any other connection's COPIAR or change is refused. An id is good for
 * one channel: a new one needs a new registration. When that channel closes (the master died or dropped
 * this slave) it registers again, every second until the master answers, and
 * the manifest exchange brings it up to date. Other connections may read
 * (REMOTO ls, cat, get, cd) but not change anything. Protocol:
 * ej12/protocol.ts.
 *
 * @module
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { defineCommand, formatAddress, parseHost, parsePort, UsageError } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { CliError, isMain, runMain } from '../lib/main.ts';
import { closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';
import { answer, Link, normalizeAddress, readSecretFile } from './link.ts';
import {
  ACTION_NAMES,
  AGREGAR_ARCHIVO,
  COPIAR,
  dataText,
  ELIMINAR_ARCHIVO,
  type Message,
  message,
  MODIFICAR_ARCHIVO,
  REGISTRAR,
  REMOTO,
} from './protocol.ts';
import { applyChange, manifest, MUTATING, openRoot, runCommand } from './tree.ts';

/** Parses `--master HOST:PORT`. */
export function parseMasterAddress(text: string): { host: string; port: number } {
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(text);
  if (!match || match[1] === '') throw new UsageError(`--master: expected HOST:PORT, received ${JSON.stringify(text)}`);
  return { host: parseHost(match[1] as string, 'master'), port: parsePort(match[2] as string, 'master') };
}

/** Options of {@link createSlave}. */
export interface SlaveOptions {
  root: string;
  master: { host: string; port: number };
  log?: Logger;
  retryMs?: number;
  /** The shared secret of the authenticated mode: registration and the replication channel then need it. */
  secret?: Uint8Array | undefined;
  /** How long the master has to open the replication channel after a registration before the slave registers again. */
  channelTimeoutMs?: number;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** A slave: its server, and registration once it knows the address it serves on. */
export function createSlave({ root, master, log = silent, retryMs = 1000, secret, channelTimeoutMs = 30_000 }: SlaveOptions) {
  let id = 0;
  let current: net.Socket | undefined; // the master's replication channel
  let ticket: number | undefined; // the id of the last registration, until a channel is opened with it
  let stopped = false;
  let registering: Promise<void> | undefined;
  let advertised = '';
  let listenHost = '';
  let timer: NodeJS.Timeout | undefined;
  let channelTimer: NodeJS.Timeout | undefined;
  const masterWhere = formatAddress(master.host, master.port);

  /** The addresses the master may connect from: its own (a name is looked up). */
  const masterAddresses = async (): Promise<string[]> => {
    if (net.isIP(master.host)) return [normalizeAddress(master.host)];
    return (await lookup(master.host, { all: true }).catch(() => [])).map((a) => normalizeAddress(a.address));
  };

  const register = (): Promise<void> => {
    if (registering || stopped) return registering ?? Promise.resolve();
    registering = (async () => {
      let complained = false;
      // Connect from the address this slave serves on, so the master's check of the source holds.
      const from = !WILDCARDS.has(listenHost) && net.isIP(listenHost) !== 0 && net.isIP(listenHost) === net.isIP(master.host) ? listenHost : undefined;
      while (!stopped) {
        try {
          const link = await Link.connect(master.host, master.port, 5000, { secret, localAddress: from });
          try {
            const reply = await link.request(message(REGISTRAR, '', advertised, id), 10_000);
            if (reply.action !== REGISTRAR) throw new Error(`master refused the registration: ${dataText(reply)}`);
            id = reply.id;
            ticket = id;
            clearTimeout(channelTimer);
            channelTimer = setTimeout(() => {
              if (ticket !== id || current || stopped) return;
              ticket = undefined;
              log(`the master did not open the replication channel within ${channelTimeoutMs / 1000} s; registering again`);
              void register();
            }, channelTimeoutMs);
            log(`registered with the master at ${masterWhere} as node ${id}`);
          } finally {
            link.close();
          }
          break;
        } catch (error) {
          if (!complained) log(`cannot register with the master at ${masterWhere} (${(error as Error).message}); retrying every ${retryMs / 1000} s`);
          complained = true;
          await new Promise((resolve) => (timer = setTimeout(resolve, retryMs)));
        }
      }
    })().finally(() => {
      registering = undefined;
    });
    return registering;
  };

  /** Makes `socket` the replication channel if its COPIAR is the master's; throws saying why not. */
  const claim = async (m: Message, socket: net.Socket, authenticated: boolean): Promise<void> => {
    if (secret && !authenticated) throw new Error('COPIAR refused: this slave takes its replication channel only in the authenticated mode, from its master');
    if (current && !current.destroyed) throw new Error('COPIAR refused: the replication channel from the master is already open');
    // The master connects right after answering our REGISTRAR; let that answer land first.
    if (registering) await Promise.race([registering, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (ticket === undefined || m.id !== ticket) throw new Error('COPIAR refused: it does not carry the node id the master gave this slave at its registration');
    const peer = normalizeAddress(socket.remoteAddress ?? '');
    if (!(await masterAddresses()).includes(peer)) throw new Error(`COPIAR refused: it comes from ${peer}, not from the master ${masterWhere}`);
    if (current && !current.destroyed) throw new Error('COPIAR refused: the replication channel from the master is already open');
    ticket = undefined;
    clearTimeout(channelTimer);
    current = socket;
    socket.once('close', () => {
      if (current !== socket || stopped) return;
      current = undefined;
      log('replication channel from the master closed; registering again');
      void register();
    });
  };

  const handle = async (m: Message, socket: net.Socket, authenticated: boolean): Promise<Message> => {
    if (m.action === COPIAR) {
      if (current !== socket) await claim(m, socket, authenticated);
      const entries = await manifest(root);
      log(`master asked for the manifest: ${entries.length} entries`);
      return message(COPIAR, '', JSON.stringify(entries), id);
    }
    if (m.action === AGREGAR_ARCHIVO || m.action === MODIFICAR_ARCHIVO || m.action === ELIMINAR_ARCHIVO) {
      if (socket !== current) throw new Error('this is a read-only replica: files change only through the master, on the replication channel it opened');
      await applyChange(root, { action: m.action, path: m.path, data: m.data });
      log(`${ACTION_NAMES[m.action]} ${m.path}${m.action === ELIMINAR_ARCHIVO || m.path.endsWith('/') ? '' : ` (${m.data.length} bytes)`}`);
      return message(m.action, m.path, '', id);
    }
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
      if (MUTATING.has(argv[0] as string)) throw new Error(`this is a read-only replica (node ${id}); make changes through the master`);
      return message(REMOTO, m.path, (await runCommand(root, argv as string[])).output, id);
    }
    throw new Error(`action ${ACTION_NAMES[m.action] ?? m.action} is not accepted by a slave`);
  };

  const server = trackConnections(
    net.createServer({ allowHalfOpen: true }, (socket) => {
      const peer = formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
      answer(
        socket,
        (m, authenticated) =>
          handle(m, socket, authenticated).catch((error: Error) => {
            const name = ACTION_NAMES[m.action] ?? String(m.action);
            if (m.action !== REMOTO) log(`${peer}: ${error.message.startsWith(name) ? error.message : `${name} refused: ${error.message}`}`);
            throw error;
          }),
        (why) => log(`${peer}: malformed PDU, connection closed: ${why}`),
        { secret },
      );
    }),
  );
  return {
    server,
    /** Registers with the master as serving at `address` (retrying until it answers). */
    start(address: string) {
      advertised = address;
      listenHost = /^\[?(.*?)\]?:\d+$/.exec(address)?.[1] ?? '';
      void register();
    },
    async close() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(channelTimer);
      current?.destroy();
      await closeGracefully(server, 1000);
    },
  };
}

const command = defineCommand({
  name: 'slave.ts',
  summary: 'Slave of the replicated directory: keeps a copy of the master\'s tree, up to date.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (the master connects here)' },
    port: { type: 'string', default: '8001', help: 'port to listen on; 0 picks a free one' },
    root: { type: 'string', metavar: 'DIR', default: 'REPLICA', help: 'where the copy is kept (made if missing)' },
    master: { type: 'string', metavar: 'HOST:PORT', default: '127.0.0.1:8000', help: 'the master to register with' },
    'secret-file': { type: 'string', metavar: 'FILE', help: 'the shared secret given to the master: registration and replication then carry an HMAC-SHA256 per PDU' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log events on stderr' },
  },
  epilog: 'Prints "listening on HOST:PORT (tcp)" on stdout when ready. Ctrl-C stops it.\nExit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen or use --root or --secret-file, 2 bad usage, 130 a second Ctrl-C or connections still open after the grace period.',
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const master = parseMasterAddress(opts.master);
  const root = await openRoot(opts.root).catch((error: Error) => {
    throw new CliError(error.message);
  });
  const secret = opts['secret-file'] === undefined ? undefined : await readSecretFile(opts['secret-file']).catch((error: Error) => {
    throw new CliError(error.message);
  });
  const log = createLogger('ej12-slave', { quiet: opts.quiet });
  const slave = createSlave({ root, master, log, secret });
  const address = await listenTcp(slave.server, host, port);
  console.log(readyLine(address, 'tcp'));
  log(`keeping a copy in ${root}`);
  slave.start(formatAddress(address.address, address.port));
  onShutdown(() => slave.close(), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
