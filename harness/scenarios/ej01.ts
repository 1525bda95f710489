/**
 * Exercise 1: echo (RFC 862) over TCP and UDP. Roles: tcp-server,
 * tcp-client, udp-server, udp-client, and (optional) tcp-server-iterative.
 *
 * Servers are driven by the harness's own sockets (wire.ts), clients are run
 * against the target's servers and against socat, the reference peer.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { readPackets, startCapture, summarize, tcpFlags, type Packet } from '../capture.ts';
import { createNetnsPair, run } from '../netns.ts';
import { waitReady } from '../proc.ts';
import { type ClientRun, type Context, cliRequirement, defineScenario, PEERS, TRACEBACK } from '../scenario.ts';
import { closeUdp, collectFor, compareBytes, readExactly, tcpConnect, tcpExchange, udpExchange, udpSocket } from '../wire.ts';

const TEXT = 'hola mundo';
/** What the backpressure check tries to push at a server through a client that never reads. */
const BACKPRESSURE_FLOOD = 96 * 2 ** 20;
/**
 * Loopback's socket buffers hold about 20 MiB at most (tcp_wmem and tcp_rmem
 * maxima, both ends); a server within its own bounded queue stays well below.
 */
const BACKPRESSURE_LIMIT = 48 * 2 ** 20;

/** Messages that name a failure's cause, in English or Spanish (what the checks below accept). */
const CAUSES = {
  // Not `timeout` inside an option's name (`--timeout` in a usage line).
  noAnswer: /no (echo|answer|reply|response)|(?<![-\w])timed? ?out(?![-\w])|(?<![-\w])time-out|sin (respuesta|eco)|no (hubo|se recibi[oó]|lleg[oó])|tiempo (de espera|agotado)|gave up/i,
  refused: /refused|rechaz|ECONNREFUSED|nothing listens|not running|unreachable|inalcanzable|no (se )?(pudo|puede) conectar|cannot connect|could not connect|unable to connect/i,
};

/**
 * Checks that a client ran to a clean failure: gave up by itself, non-zero
 * exit, a message on stderr that names `cause`, no stack trace. A usage
 * message is no such failure (a client refusing its command line is not
 * one that tried and failed).
 */
function checkCleanFailure(ctx: Context, run: ClientRun, what: string, cause: RegExp): void {
  ctx.t.notOk(run.timedOut, `${what}: the client gave up by itself (took ${(run.durationMs / 1000).toFixed(1)} s)`);
  ctx.t.ok(run.exit.code !== 0 && run.exit.code !== null, `${what}: exit status is non-zero (was ${run.exit.code ?? run.exit.signal})`);
  const said = run.stderr.trim().split('\n').slice(-3).join(' | ') || 'nothing';
  ctx.t.notMatch(run.stderr, /^usage:/im, `${what}: it failed, not refused its command line (stderr: ${said})`);
  ctx.t.match(run.stderr.replace(/^usage:.*$/gim, ''), cause, `${what}: stderr names the cause (observed: ${said})`);
  ctx.t.notMatch(run.stderr, TRACEBACK, `${what}: no stack trace`);
}

function checkEchoed(ctx: Context, run: ClientRun, text: string, what: string): void {
  ctx.t.notOk(run.timedOut, `${what}: the client finished`);
  ctx.t.equal(run.exit.code, 0, `${what}: exit status 0 (stderr: ${run.stderr.trim().slice(0, 200) || 'empty'})`);
  ctx.t.ok(run.stdout.includes(text), `${what}: printed "${text}" (printed ${JSON.stringify(run.stdout.slice(0, 200))})`);
}

/** Distinct random payloads of random sizes, so crossed replies cannot pass. */
function payloads(count: number, maxBytes: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const size = 1 + ((randomBytes(4).readUInt32BE(0) % maxBytes) || i);
    const payload = randomBytes(Math.min(size, maxBytes));
    payload.writeUInt16BE(i % 65536, 0);
    return payload;
  });
}

export default defineScenario('ej01', 'Echo (RFC 862) over TCP and UDP', [
  {
    ...cliRequirement({
      'tcp-server': [/--host HOST/, /--port PORT/],
      'udp-server': [/--host HOST/, /--port PORT/],
      'tcp-client': [/--data DATA/, /--host HOST/, /--port PORT/],
      'udp-client': [/--data DATA/, /--host HOST/, /--port PORT/],
    }),
    tier: 'assignment',
  },
  {
    id: 'tcp-text',
    tier: 'assignment',
    title: 'the TCP client prints the echo of --data "hola mundo"',
    roles: ['tcp-server', 'tcp-client'],
    async run(ctx) {
      const server = await ctx.server('tcp-server', 'tcp');
      const run = await ctx.client('tcp-client', ['--data', TEXT, '--host', server.host, '--port', String(server.port)]);
      checkEchoed(ctx, run, TEXT, 'tcp-client --data "hola mundo"');
    },
  },
  {
    id: 'udp-text',
    tier: 'assignment',
    title: 'the UDP client prints the echo of --data "hola mundo"',
    roles: ['udp-server', 'udp-client'],
    async run(ctx) {
      const server = await ctx.server('udp-server', 'udp');
      const run = await ctx.client('udp-client', ['--data', TEXT, '--host', server.host, '--port', String(server.port)]);
      checkEchoed(ctx, run, TEXT, 'udp-client --data "hola mundo"');
    },
  },
  {
    // RFC 862: whatever is received is sent back, and the TCP echo lasts until the client ends it.
    id: 'tcp-binary',
    tier: 'assignment',
    title: '8 MiB of random bytes on one TCP connection come back byte-identical',
    roles: ['tcp-server'],
    async run(ctx) {
      const server = await ctx.server('tcp-server', 'tcp');
      const data = randomBytes(8 * 1024 * 1024);
      const { received, ended } = await tcpExchange(server.host, server.port, data, { timeoutMs: 15_000 });
      ctx.t.ok(received.equals(data), `8 MiB echo: ${compareBytes(data, received)}`);
      ctx.t.ok(ended, 'the server closed its side after the client closed its own (FIN)');
    },
  },
  {
    // RFC 862: a datagram's data is sent back; 65507 bytes is the most a UDP datagram over IPv4 carries.
    id: 'udp-binary',
    tier: 'assignment',
    title: 'a 65507-byte datagram of random bytes comes back identical',
    roles: ['udp-server'],
    async run(ctx) {
      const server = await ctx.server('udp-server', 'udp');
      const socket = await udpSocket();
      try {
        const data = randomBytes(65507);
        const reply = await udpExchange(socket, server.host, server.port, data, { timeoutMs: 2000, tries: 3 });
        ctx.t.ok(reply !== undefined, 'a reply came (3 tries, 2 s each)');
        if (reply) ctx.t.ok(reply.equals(data), `65507-byte echo: ${compareBytes(data, reply)}`);
      } finally {
        await closeUdp(socket);
      }
    },
  },
  {
    // The assignment's "múltiples clientes simultáneos".
    id: 'tcp-many',
    tier: 'assignment',
    title: '200 concurrent TCP clients, each with its own payload, are each echoed exactly',
    roles: ['tcp-server'],
    timeoutMs: 90_000,
    async run(ctx) {
      const server = await ctx.server('tcp-server', 'tcp');
      const data = payloads(200, 64 * 1024);
      const results = await Promise.all(data.map((d) => tcpExchange(server.host, server.port, d, { timeoutMs: 20_000 }).catch(() => undefined)));
      const exact = results.filter((r, i) => r?.received.equals(data[i] as Buffer) && r.ended).length;
      const firstBad = results.findIndex((r, i) => !r?.received.equals(data[i] as Buffer));
      const detail = firstBad < 0 ? '' : ` (client ${firstBad}: ${results[firstBad] ? compareBytes(data[firstBad] as Buffer, results[firstBad].received) : 'could not connect'})`;
      ctx.t.equal(exact, 200, `${exact} of 200 concurrent clients got exactly their own bytes back${detail}`);
    },
  },
  {
    id: 'udp-many',
    tier: 'assignment',
    title: '200 UDP clients sending at once each get their own datagram back',
    roles: ['udp-server'],
    async run(ctx) {
      const server = await ctx.server('udp-server', 'udp');
      const sockets = await Promise.all(Array.from({ length: 200 }, () => udpSocket()));
      try {
        const data = payloads(200, 1400);
        const replies = await Promise.all(sockets.map((s, i) => udpExchange(s, server.host, server.port, data[i] as Buffer, { timeoutMs: 1000, tries: 3 })));
        const exact = replies.filter((r, i) => r?.equals(data[i] as Buffer)).length;
        ctx.t.equal(exact, 200, `${exact} of 200 UDP clients got exactly their own datagram back`);
      } finally {
        await Promise.all(sockets.map(closeUdp));
      }
    },
  },
  {
    id: 'tcp-concurrent',
    tier: 'assignment',
    title: 'the TCP server serves a second client while the first stays connected and idle, then serves the first again on its connection',
    roles: ['tcp-server'],
    async run(ctx) {
      // The assignment's "múltiples clientes simultáneos": A is served once and then sits idle on
      // its connection; B must be served meanwhile, and A still afterwards. A server that serves one
      // message per connection and drops it, or serves one connection at a time, fails here.
      const server = await ctx.server('tcp-server', 'tcp');
      const a = await tcpConnect(server.host, server.port);
      let aClosed = false;
      a.on('end', () => (aClosed = true));
      a.on('close', () => (aClosed = true));
      try {
        a.write('first-a');
        const echoA = await readExactly(a, 7, 5000).catch((error: Error) => error.message);
        ctx.t.equal(echoA.toString(), 'first-a', `client A is echoed its first message (A got ${JSON.stringify(echoA.toString())})`);
        const b = await tcpConnect(server.host, server.port).catch((error: Error) => error);
        if (b instanceof Error) {
          ctx.t.fail(`expected client B to connect while A is connected and idle, observed: ${b.message}`);
          return;
        }
        try {
          b.write('second-b');
          const echoB = await readExactly(b, 8, 5000).catch((error: Error) => `nothing: ${error.message}`);
          ctx.t.equal(echoB.toString(), 'second-b', `client B is echoed while A is still connected and idle (B got ${JSON.stringify(echoB.toString())})`);
        } finally {
          b.destroy();
        }
        const state = aClosed ? 'closed by the server' : 'open';
        ctx.t.equal(state, 'open', `A's connection stays open after B was served (observed: ${state})`);
        if (!a.destroyed) a.write('again-a');
        const again = await readExactly(a, 7, 5000).catch((error: Error) => `nothing: ${error.message}${aClosed ? ' (the server had closed it)' : ''}`);
        ctx.t.equal(again.toString(), 'again-a', `client A is echoed a second message on the same connection (A got ${JSON.stringify(again.toString())})`);
      } finally {
        a.destroy();
      }
    },
  },
  {
    // This project's --iterative server (role tcp-server-iterative), answering the assignment's question.
    id: 'tcp-iterative',
    tier: 'beyond',
    features: ['--iterative'],
    title: 'the --iterative TCP server makes a second client wait until the first leaves',
    roles: ['tcp-server-iterative'],
    async run(ctx) {
      const server = await ctx.server('tcp-server-iterative', 'tcp');
      const first = await tcpConnect(server.host, server.port);
      const second = await tcpConnect(server.host, server.port);
      try {
        first.write('first');
        ctx.t.equal((await readExactly(first, 5, 5000)).toString(), 'first', 'the first client is echoed');
        const waiting = collectFor(second, 1500);
        second.write('second');
        ctx.t.equal((await waiting).length, 0, 'the second client, connected (kernel backlog), gets nothing while the first is served');
        const echo = readExactly(second, 6, 5000).catch((error: Error) => error.message);
        first.end();
        ctx.t.equal((await echo).toString(), 'second', 'once the first client leaves, the second is echoed');
      } finally {
        first.destroy();
        second.destroy();
      }
    },
  },
  {
    id: 'udp-no-wait',
    tier: 'assignment',
    title: 'the UDP server answers a second client while the first keeps its socket open',
    roles: ['udp-server'],
    async run(ctx) {
      const server = await ctx.server('udp-server', 'udp');
      const [first, second] = [await udpSocket(), await udpSocket()];
      try {
        const a = await udpExchange(first, server.host, server.port, Buffer.from('first'));
        ctx.t.equal(a?.toString(), 'first', 'the first client is answered');
        const b = await udpExchange(second, server.host, server.port, Buffer.from('second'));
        ctx.t.equal(b?.toString(), 'second', 'the second client is answered at once: there is no connection to wait for');
      } finally {
        await Promise.all([closeUdp(first), closeUdp(second)]);
      }
    },
  },
  {
    // UDP confirms nothing (the assignment's own point): a client waiting forever for a lost echo is broken, seen through the assignment's command line.
    id: 'udp-client-timeout',
    tier: 'assignment',
    title: 'the UDP client gives up (with udp:retry declared: after retrying) and fails clearly, naming the cause, when no echo comes or nothing listens',
    roles: ['udp-client'],
    async run(ctx) {
      // A socket that swallows every datagram: silence, with no ICMP to give it away.
      const sink = await udpSocket(ctx.host, await ctx.port());
      let swallowed = 0;
      sink.on('message', () => swallowed++);
      try {
        const port = String(sink.address().port);
        // 20 s is far beyond any sensible timeout and retries, and keeps both
        // cases inside the requirement's own 60 s bound.
        const run = await ctx.client('udp-client', ['--data', TEXT, '--host', ctx.host, '--port', port], { timeoutMs: 20_000 });
        checkCleanFailure(ctx, run, 'no answer', CAUSES.noAnswer);
        // Retrying is this project's; the assignment asks only that it not hang.
        if (ctx.feature('udp:retry')) ctx.t.ok(swallowed >= 2, `it retried before giving up (${swallowed} datagrams sent)`);
        else ctx.t.comment(`note: ${swallowed} datagram(s) sent before giving up`);
      } finally {
        await closeUdp(sink);
      }
      const closed = await ctx.port();
      const run = await ctx.client('udp-client', ['--data', TEXT, '--host', ctx.host, '--port', String(closed)], { timeoutMs: 20_000 });
      // ICMP port unreachable may be reported as refused, or unseen (an unconnected socket): then a time-out.
      checkCleanFailure(ctx, run, 'closed port', new RegExp(`${CAUSES.refused.source}|${CAUSES.noAnswer.source}`, 'i'));
    },
  },
  {
    id: 'tcp-client-refused',
    tier: 'assignment',
    title: 'the TCP client against a closed port fails clearly',
    roles: ['tcp-client'],
    async run(ctx) {
      const closed = await ctx.port();
      const run = await ctx.client('tcp-client', ['--data', TEXT, '--host', ctx.host, '--port', String(closed)], { timeoutMs: 30_000 });
      checkCleanFailure(ctx, run, 'connection refused', CAUSES.refused);
    },
  },
  {
    // Many clients at once (the assignment) means one client's reset must not stop the others' service.
    id: 'tcp-robust',
    tier: 'assignment',
    title: 'clients that reset mid-echo do not stop the TCP server serving the others',
    roles: ['tcp-server'],
    async run(ctx) {
      const server = await ctx.server('tcp-server', 'tcp');
      const survivor = await tcpConnect(server.host, server.port);
      try {
        for (let i = 0; i < 5; i++) {
          const rude = await tcpConnect(server.host, server.port);
          rude.write(randomBytes(i === 0 ? 0 : 1 << (12 + i * 2))); // 0 B, 16 KiB … 4 MiB, then RST
          await new Promise((resolve) => setTimeout(resolve, 50));
          rude.resetAndDestroy();
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        survivor.write('still here');
        const echo = await readExactly(survivor, 10, 5000).catch((error: Error) => error.message);
        ctx.t.equal(echo.toString(), 'still here', 'a client connected before the resets is still echoed');
        const { received } = await tcpExchange(server.host, server.port, Buffer.from(TEXT));
        ctx.t.equal(received.toString(), TEXT, 'a new client after the resets is echoed');
        ctx.t.equal(server.proc.exit, undefined, 'the server process is still running');
      } finally {
        survivor.destroy();
      }
    },
  },
  {
    // Robustness of the multi-client server, seen through the assignment's command line alone: a client that never reads must not stop the others.
    id: 'tcp-backpressure',
    tier: 'assignment',
    title: 'a client that sends without reading is held back by TCP, not buffered by the server, and loses nothing',
    roles: ['tcp-server'],
    async run(ctx) {
      const server = await ctx.server('tcp-server', 'tcp');
      const greedy = await tcpConnect(server.host, server.port);
      try {
        // The client never reads. A server that stops reading when its echo
        // cannot be written leaves everything in the socket buffers (a few
        // MiB on loopback); one that reads on regardless keeps the flood in
        // its own memory, and accepts all of it.
        greedy.pause();
        const chunk = randomBytes(1 << 20);
        let queued = 0;
        await new Promise<void>((resolve) => {
          const deadline = setTimeout(resolve, 3000);
          const pump = () => {
            while (queued < BACKPRESSURE_FLOOD) {
              queued += chunk.length;
              if (!greedy.write(chunk)) return; // wait for 'drain', or for the deadline
            }
            clearTimeout(deadline);
            resolve();
          };
          greedy.on('drain', pump);
          pump();
        });
        const accepted = queued - greedy.writableLength;
        ctx.t.ok(
          accepted < BACKPRESSURE_LIMIT,
          `the server let in ${(accepted / 2 ** 20).toFixed(1)} MiB from a client that reads nothing (at most ${BACKPRESSURE_LIMIT / 2 ** 20} MiB: the socket buffers)`,
        );
        const { received } = await tcpExchange(server.host, server.port, Buffer.from(TEXT));
        ctx.t.equal(received.toString(), TEXT, 'meanwhile another client is echoed at once');
        // Now read: every byte the client sent comes back, in order.
        greedy.end();
        const reading = readExactly(greedy, queued, 30_000).catch((error: Error) => error);
        greedy.resume();
        const echoed = await reading;
        if (echoed instanceof Error) ctx.t.fail(`the stalled client's echo: ${echoed.message}`);
        else {
          const sent = Buffer.concat(Array.from({ length: queued / chunk.length }, () => chunk));
          ctx.t.match(compareBytes(sent, echoed), /^all \d+ bytes identical$/, `once it reads, the stalled client gets all ${queued / 2 ** 20} MiB back intact`);
        }
      } finally {
        greedy.destroy();
      }
    },
  },
  {
    id: 'udp-robust',
    tier: 'assignment',
    title: 'an empty datagram and a vanished sender do not stop the UDP server',
    roles: ['udp-server'],
    async run(ctx) {
      const server = await ctx.server('udp-server', 'udp');
      const gone = await udpSocket();
      gone.send(randomBytes(512), server.port, server.host);
      gone.send(Buffer.alloc(0), server.port, server.host);
      await closeUdp(gone); // its replies now meet a closed port (ICMP unreachable)
      await new Promise((resolve) => setTimeout(resolve, 200));
      const socket = await udpSocket();
      try {
        const reply = await udpExchange(socket, server.host, server.port, Buffer.from(TEXT));
        ctx.t.equal(reply?.toString(), TEXT, 'the next client is answered');
        ctx.t.equal(server.proc.exit, undefined, 'the server process is still running');
      } finally {
        await closeUdp(socket);
      }
    },
  },
  {
    // Ctrl-C is how the assignment's servers are stopped; the no-traceback part is graded only where clean-shutdown is declared.
    id: 'shutdown',
    tier: 'assignment',
    title: 'Ctrl-C (SIGINT) stops each server promptly, with no stack trace',
    roles: ['tcp-server', 'udp-server'],
    async run(ctx) {
      for (const [role, protocol] of [['tcp-server', 'tcp'], ['udp-server', 'udp']] as const) {
        const server = await ctx.server(role, protocol);
        // Ctrl-C reaches every process of the terminal's group, as here.
        server.proc.signal('SIGINT');
        const exit = await server.proc.waitForExit(5000).catch(() => undefined);
        ctx.t.equal(exit === undefined ? 'still running after 5 s' : 'exited', 'exited', `${role} exits within 5 s of SIGINT`);
        if (exit) {
          // What Ctrl-C gives: a clean 0, the shell's 130 (128 + SIGINT), or death by SIGINT itself.
          const status = exit.code ?? exit.signal;
          ctx.t.ok(exit.code === 0 || exit.code === 130 || exit.signal === 'SIGINT', `${role} ends as Ctrl-C ends a program: 0, 130 or killed by SIGINT (observed ${status})`);
        }
        // A KeyboardInterrupt traceback is untidy, not wrong: graded where clean-shutdown is declared.
        if (ctx.feature('clean-shutdown')) ctx.t.notMatch(server.proc.stderr, TRACEBACK, `${role} prints no stack trace on SIGINT`);
        else if (TRACEBACK.test(server.proc.stderr)) ctx.t.comment(`note: ${role} printed a stack trace on SIGINT`);
      }
    },
  },
  {
    id: 'socat-client',
    tier: 'assignment',
    title: 'socat, as a client, gets its echo from the TCP and UDP servers',
    roles: ['tcp-server', 'udp-server'],
    peers: [PEERS.socat],
    async run(ctx) {
      const tcp = await ctx.server('tcp-server', 'tcp');
      const udp = await ctx.server('udp-server', 'udp');
      const line = 'hola socat\n';
      const viaTcp = await ctx.exec('socat', ['socat', '-t', '3', '-', `TCP:${tcp.host}:${tcp.port}`], { input: line });
      ctx.t.equal(viaTcp.stdout, line, 'socat over TCP gets its line back');
      const viaUdp = await ctx.exec('socat', ['socat', '-t', '1', '-', `UDP:${udp.host}:${udp.port}`], { input: line });
      ctx.t.equal(viaUdp.stdout, line, 'socat over UDP gets its datagram back');
    },
  },
  {
    id: 'socat-server',
    tier: 'assignment',
    title: 'the TCP and UDP clients work against socat as the echo server',
    roles: ['tcp-client', 'udp-client'],
    peers: [PEERS.socat],
    async run(ctx) {
      const [tcpPort, udpPort] = [await ctx.port(), await ctx.port()];
      const tcp = ctx.spawn('socat-tcp', ['socat', `TCP-LISTEN:${tcpPort},bind=${ctx.host},fork,reuseaddr`, 'PIPE']);
      const udp = ctx.spawn('socat-udp', ['socat', `UDP-RECVFROM:${udpPort},bind=${ctx.host},fork`, 'PIPE']);
      await waitReady(tcp, tcpPort, 'tcp', 10_000);
      await waitReady(udp, udpPort, 'udp', 10_000);
      checkEchoed(ctx, await ctx.client('tcp-client', ['--data', TEXT, '--host', ctx.host, '--port', String(tcpPort)]), TEXT, 'tcp-client against socat');
      checkEchoed(ctx, await ctx.client('udp-client', ['--data', TEXT, '--host', ctx.host, '--port', String(udpPort)]), TEXT, 'udp-client against socat');
    },
  },
  {
    // The assignment's "luego en uno remoto", with the capture it asks for.
    id: 'remote',
    tier: 'assignment',
    title: 'client and server on two hosts (network namespaces joined by a veth pair): echo works, and the capture shows ARP and Ethernet',
    roles: ['tcp-server', 'tcp-client', 'udp-server', 'udp-client'],
    peers: [PEERS.ip, PEERS.tcpdump, PEERS.tshark],
    root: true,
    async run(ctx) {
      // The assignment asks for a test "en uno remoto" too. Two namespaces are
      // two hosts as far as the network stack goes: each has its own
      // interfaces, addresses and routes, and packets between them cross a
      // (virtual) Ethernet link instead of loopback.
      const hosts = await createNetnsPair();
      const dir = await mkdtemp(path.join(tmpdir(), 'ej01-remote-'));
      try {
        const inB = (command: string[]) => hosts.exec('b', command);
        const inA = (command: string[]) => hosts.exec('a', command);
        const veth = await vethOf(hosts.b);
        const capture = await startCapture(ctx.supervisor, [await ctx.port(), await ctx.port()], path.join(dir, 'remote.pcap'), { iface: veth, wrap: inB, arp: true });
        const [tcpPort, udpPort] = ctx.ports.slice(-2) as [number, number];
        const tcp = await ctx.server('tcp-server', 'tcp', [], { host: hosts.addrB, wrap: inB, port: tcpPort });
        const udp = await ctx.server('udp-server', 'udp', [], { host: hosts.addrB, wrap: inB, port: udpPort });
        const viaTcp = await ctx.clientWrapped('tcp-client', ['--data', TEXT, '--host', tcp.host, '--port', String(tcp.port)], inA);
        checkEchoed(ctx, viaTcp, TEXT, `tcp-client on ${hosts.addrA} to tcp-server on ${hosts.addrB}`);
        const viaUdp = await ctx.clientWrapped('udp-client', ['--data', TEXT, '--host', udp.host, '--port', String(udp.port)], inA);
        checkEchoed(ctx, viaUdp, TEXT, `udp-client on ${hosts.addrA} to udp-server on ${hosts.addrB}`);
        const file = await capture.stop();
        const summary = await summarize(file);
        ctx.t.comment(`capture on ${veth}, in ${hosts.addrB}'s namespace:\n${summary}`);
        ctx.t.match(summary, new RegExp(`Who has ${hosts.addrB.replaceAll('.', '\\.')}\\? Tell ${hosts.addrA.replaceAll('.', '\\.')}`), 'the first packet to the other host is an ARP request for its MAC address');
        ctx.t.match(summary, new RegExp(`${hosts.addrB.replaceAll('.', '\\.')} is at [0-9a-f:]{17}`), 'and the other host answers it');
        const packets = await readPackets(file);
        const tcpPackets = packets.filter((p) => p.protocol === 'tcp');
        ctx.t.ok(tcpPackets.every((p) => [hosts.addrA, hosts.addrB].includes(p.src)), `TCP travels between ${hosts.addrA} and ${hosts.addrB}, not over loopback`);
        checkTcpCapture(ctx, tcpPackets, tcp.port);
        checkUdpCapture(ctx, packets.filter((p) => p.protocol === 'udp'), udp.port);
      } finally {
        await hosts.destroy();
        await rm(dir, { recursive: true, force: true });
      }
    },
  },
  {
    // The assignment's "realice la captura": handshake, ACKs and plaintext, as its notes describe.
    id: 'capture',
    tier: 'assignment',
    title: "a capture shows TCP's handshake, ACKs and FINs, UDP's lone datagrams, and plaintext in both",
    roles: ['tcp-server', 'tcp-client', 'udp-server', 'udp-client'],
    peers: [PEERS.tcpdump, PEERS.tshark],
    root: true,
    async run(ctx) {
      const tcp = await ctx.server('tcp-server', 'tcp');
      const udp = await ctx.server('udp-server', 'udp');
      const dir = await mkdtemp(path.join(tmpdir(), 'ej01-capture-'));
      try {
        const capture = await startCapture(ctx.supervisor, [tcp.port, udp.port], path.join(dir, 'echo.pcap'));
        await ctx.client('tcp-client', ['--data', TEXT, '--host', tcp.host, '--port', String(tcp.port)]);
        await ctx.client('udp-client', ['--data', TEXT, '--host', udp.host, '--port', String(udp.port)]);
        const packets = await readPackets(await capture.stop());
        checkTcpCapture(ctx, packets.filter((p) => p.protocol === 'tcp'), tcp.port);
        checkUdpCapture(ctx, packets.filter((p) => p.protocol === 'udp'), udp.port);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  },
]);

/** The veth interface inside namespace `ns` (`ip -o link` prints `2: NAME@if3: <…>`). */
async function vethOf(ns: string): Promise<string> {
  const listing = await run('ip', ['-n', ns, '-o', 'link', 'show', 'type', 'veth']);
  const name = /^\d+:\s+([^@:\s]+)/.exec(listing)?.[1];
  if (!name) throw new Error(`Cannot find the veth interface in namespace ${ns}: ${listing.trim() || 'none listed'}`);
  return name;
}

function checkTcpCapture(ctx: Context, packets: Packet[], serverPort: number): void {
  const flags = packets.map((p) => tcpFlags(p).filter((f) => f !== 'PSH').join(','));
  ctx.t.same(flags.slice(0, 3), ['SYN', 'SYN,ACK', 'ACK'], `the connection opens with the three-way handshake (saw ${flags.slice(0, 3).join(' | ')})`);
  const toServer = packets.filter((p) => p.dstPort === serverPort);
  const fromServer = packets.filter((p) => p.srcPort === serverPort);
  ctx.t.ok(toServer.some((p) => p.payload.toString().includes(TEXT)), `the client's "${TEXT}" is readable in the capture (plaintext)`);
  ctx.t.ok(fromServer.some((p) => p.payload.toString().includes(TEXT)), `the server's echo "${TEXT}" is readable in the capture (plaintext)`);
  ctx.t.ok(toServer.some((p) => tcpFlags(p).includes('FIN')) && fromServer.some((p) => tcpFlags(p).includes('FIN')), 'each side closes with a FIN');
  const acksOnly = packets.filter((p) => p.payload.length === 0 && tcpFlags(p).join(',') === 'ACK').length;
  ctx.t.ok(acksOnly >= 1, `data is acknowledged: ${acksOnly} bare ACK segments`);
}

function checkUdpCapture(ctx: Context, packets: Packet[], serverPort: number): void {
  ctx.t.equal(packets.length, 2, `UDP: exactly two datagrams, request and reply, no handshake (saw ${packets.length})`);
  ctx.t.equal(packets[0]?.dstPort, serverPort, 'UDP: the first datagram goes to the server');
  ctx.t.ok(packets.every((p) => p.payload.toString() === TEXT), `UDP: both datagrams carry "${TEXT}" in plaintext`);
}
