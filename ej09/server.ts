/**
 * Chat server: pairs users two by two as they arrive and relays each one's
 * lines to the other, many pairs at once, in one event loop.
 *
 * ```sh
 * npx tsx ej09/server.ts                 # 127.0.0.1:5009
 * npx tsx ej09/client.ts --name ana      # in one terminal
 * npx tsx ej09/client.ts --name beto     # in another: ana and beto are paired
 * ```
 *
 * Prints `listening on 127.0.0.1:5009 (tcp)` on stdout when ready, and one
 * line per event (connections, pairings, departures, protocol errors) on
 * stderr.
 *
 * The assignment's `select` is the event loop itself: one thread waits on
 * every socket at once and runs a handler for whichever is readable. A user
 * who arrives alone waits in a queue; the next arrival is paired with them.
 * When one leaves (QUIT or a dropped connection) the other is told (LEFT) and
 * queued again. Delivery is in order because each pair's messages travel on
 * the two TCP connections, which keep order, and the server forwards each
 * line as it is read. Flow control: when a partner reads slower than the
 * sender writes, the server stops reading the sender until the partner's
 * buffer drains, so one slow reader costs memory for one buffer, not more.
 *
 * The protocol is in ej09/protocol.ts.
 *
 * @module
 */
import net from 'node:net';
import { defineCommand, formatAddress, parseHost, parsePort, parsePositive } from '../lib/cli.ts';
import { createLogger, type Logger, silent } from '../lib/log.ts';
import { isMain, runMain } from '../lib/main.ts';
import { closeGracefully, listenTcp, onShutdown, readyLine, trackConnections } from '../lib/server.ts';
import { LineSplitter, MAX_LINE, NAME, parseLine, unescapeText } from './protocol.ts';

/** A connected user. */
interface User {
  socket: net.Socket;
  peer: string;
  name: string | undefined;
  partner: User | undefined;
  gone: boolean;
  /** Not read until the partner's send buffer drains (flow control). */
  paused: boolean;
}

/** Options of {@link createChatServer}. */
export interface ChatServerOptions {
  maxLine?: number;
  /** Time a new connection has to say its NAME. */
  helloTimeoutMs?: number;
  log?: Logger;
}

/** Creates (but does not start) the chat server. */
export function createChatServer({ maxLine = MAX_LINE, helloTimeoutMs = 30_000, log = silent }: ChatServerOptions = {}): net.Server {
  const waiting: User[] = [];
  let pairs = 0;

  const send = (user: User, line: string): boolean => (user.gone ? true : user.socket.write(`${line}\n`));

  const pair = (user: User) => {
    let other: User | undefined;
    while ((other = waiting.shift())) {
      if (!other.gone) break;
    }
    if (!other) {
      waiting.push(user);
      send(user, 'WAIT');
      return;
    }
    user.partner = other;
    other.partner = user;
    pairs++;
    log(`paired ${other.name} (${other.peer}) with ${user.name} (${user.peer}); ${pairs} pairs so far`);
    send(other, `PAIRED ${user.name}`);
    send(user, `PAIRED ${other.name}`);
  };

  const leave = (user: User, why: string) => {
    if (user.gone) return;
    user.gone = true;
    log(`${user.name ?? '?'} (${user.peer}) left: ${why}`);
    const partner = user.partner;
    user.partner = undefined;
    if (partner && !partner.gone) {
      partner.partner = undefined;
      // A sender paused for this user's sake must not stay paused.
      partner.paused = false;
      partner.socket.resume();
      send(partner, `LEFT ${user.name}`);
      pair(partner);
    }
  };

  const refuse = (user: User, message: string) => {
    log(`${user.name ?? '?'} (${user.peer}) cut off: ${message}`);
    send(user, `ERROR ${message}`);
    leave(user, 'protocol error');
    user.socket.end();
    // A peer that keeps sending after the ERROR is not read any more.
    user.socket.pause();
    setTimeout(() => user.socket.destroy(), 2000).unref();
  };

  const handle = (user: User, line: string) => {
    const { command, arg } = parseLine(line);
    if (user.name === undefined) {
      if (command !== 'NAME') throw new SyntaxError(`expected "NAME <name>" first, got ${JSON.stringify(line.slice(0, 40))}`);
      if (!NAME.test(arg)) throw new SyntaxError('a name is 1 to 32 letters, digits, _ . or -');
      user.name = arg;
      log(`${user.peer} is ${arg}`);
      pair(user);
      return;
    }
    if (command === 'MSG') {
      unescapeText(arg); // refuses a bad escape here, not at the partner
      const partner = user.partner;
      if (!partner) {
        send(user, 'INFO no partner yet: message not delivered');
        return;
      }
      if (!send(partner, line) && !user.paused) {
        user.paused = true;
        user.socket.pause();
        partner.socket.once('drain', () => {
          user.paused = false;
          if (!user.gone) user.socket.resume();
        });
      }
    } else if (command === 'QUIT') {
      leave(user, 'quit');
      user.socket.end();
    } else {
      throw new SyntaxError(`unknown command ${JSON.stringify(command.slice(0, 20))}`);
    }
  };

  return net.createServer((socket) => {
    const user: User = { socket, peer: formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0), name: undefined, partner: undefined, gone: false, paused: false };
    log(`${user.peer} connected`);
    const splitter = new LineSplitter(maxLine);
    const hello = setTimeout(() => {
      if (user.name === undefined) refuse(user, `no NAME within ${helloTimeoutMs / 1000} s`);
    }, helloTimeoutMs);
    socket.setNoDelay(true);
    // A partner whose machine vanished (no FIN, no RST) is found by keep-alive probes.
    socket.setKeepAlive(true, 30_000);
    socket.on('data', (chunk: Buffer) => {
      if (user.gone) return;
      try {
        for (const line of splitter.push(chunk)) {
          handle(user, line);
          if (user.gone) return;
        }
      } catch (error) {
        refuse(user, (error as Error).message);
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => leave(user, error.code ?? error.message));
    socket.on('end', () => leave(user, 'connection closed'));
    socket.on('close', () => {
      clearTimeout(hello);
      leave(user, 'connection lost');
    });
  });
}

const command = defineCommand({
  name: 'server.ts',
  summary: 'Chat server: pairs users two by two and relays their messages.',
  options: {
    host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
    port: { type: 'string', default: '5009', help: 'port to listen on; 0 picks a free one' },
    'max-line': { type: 'string', metavar: 'BYTES', default: String(MAX_LINE), help: 'longest line accepted; a longer one cuts the client off' },
    quiet: { type: 'boolean', short: 'q', help: 'do not log events on stderr' },
  },
  epilog: `Prints "listening on HOST:PORT (tcp)" on stdout when ready. Ctrl-C stops it.
Exit status: 0 stopped by Ctrl-C or SIGTERM, 1 cannot listen, 2 bad usage, 130 a second Ctrl-C or connections still open after the grace period.`,
});

async function main(argv: string[]): Promise<void> {
  const opts = command.parseOrExit(argv);
  const host = parseHost(opts.host);
  const port = parsePort(opts.port);
  const maxLine = parsePositive(opts['max-line'], 'max-line', { integer: true });
  const log = createLogger('ej09-server', { quiet: opts.quiet });
  const server = trackConnections(createChatServer({ maxLine, log }));
  console.log(readyLine(await listenTcp(server, host, port), 'tcp'));
  onShutdown(() => closeGracefully(server, 1000), { log });
}

if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
