/**
 * An NTP server for scenarios that can lie on purpose: answer some seconds
 * ahead of the real clock, with a wrong origin timestamp, with a
 * kiss-o'-death, or not at all. Written from RFC 5905 without the project's
 * lib/ntp.ts, so that a bug there cannot hide itself.
 *
 * @module
 */
import dgram from 'node:dgram';

/** How the fake misbehaves. */
export interface FakeNtpOptions {
  /** Milliseconds its clock is ahead of the real one (negative: behind). */
  aheadMs?: number;
  stratum?: number;
  /** Copy a wrong origin timestamp into replies (a spoofed or stale reply). */
  wrongOrigin?: boolean;
  /** Answer with this kiss code (stratum 0) instead of the time. */
  kiss?: string;
  silent?: boolean;
}

/** A running fake and the requests it has seen. */
export interface FakeNtp {
  host: string;
  port: number;
  requests: number;
  close(): Promise<void>;
}

const NTP_UNIX_OFFSET = 2_208_988_800;

/** Writes an NTP timestamp (seconds since 1900 and a 32-bit fraction) for `ms` since 1970. */
function writeTimestamp(buf: Buffer, at: number, ms: number): void {
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - seconds * 1000) / 1000) * 2 ** 32);
  buf.writeUInt32BE((seconds + NTP_UNIX_OFFSET) >>> 0, at);
  buf.writeUInt32BE(fraction >>> 0, at + 4);
}

/** Starts a fake NTP server on an ephemeral loopback port (or `port`). */
export async function startFakeNtp(options: FakeNtpOptions = {}, port = 0): Promise<FakeNtp> {
  const host = '127.0.0.1';
  const socket = dgram.createSocket('udp4');
  const now = () => performance.timeOrigin + performance.now() + (options.aheadMs ?? 0);
  const fake: FakeNtp = {
    host,
    port: 0,
    requests: 0,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (request, peer) => {
    if (request.length < 48) return;
    fake.requests += 1;
    if (options.silent) return;
    const received = now();
    const reply = Buffer.alloc(48);
    reply[0] = (0 << 6) | (4 << 3) | 4; // no leap warning, version 4, mode 4 (server)
    reply[1] = options.kiss ? 0 : (options.stratum ?? 2);
    reply[2] = request[2] ?? 0;
    reply[3] = 0xec; // precision 2^-20 s
    if (options.kiss) reply.write(options.kiss.padEnd(4, '\0').slice(0, 4), 12, 'latin1');
    else reply.write('FAKE', 12, 'latin1');
    writeTimestamp(reply, 16, received - 1000); // reference: a second ago
    request.copy(reply, 24, 40, 48); // origin = the client's transmit timestamp
    if (options.wrongOrigin) reply.writeUInt32BE((reply.readUInt32BE(24) - 1) >>> 0, 24); // one second off
    writeTimestamp(reply, 32, received);
    writeTimestamp(reply, 40, now());
    socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve());
  });
  fake.port = socket.address().port;
  return fake;
}
