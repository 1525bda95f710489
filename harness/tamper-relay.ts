/**
 * A TCP relay that sits between a client and a server and, on request,
 * does what an attacker on the path could: flip a bit in one frame, send a
 * frame twice, or send the client to another server altogether.
 *
 * It understands only the framing every length-prefixed protocol of the
 * suite shares (a big-endian u32 length, then that many bytes), so it can
 * pick "the third frame the client sends"; it never knows any key.
 *
 * @module
 */
import net from 'node:net';

/** What to do to one frame. */
export interface Tamper {
  /** Client to server, or server to client. */
  direction: 'c2s' | 's2c';
  /** Index of the frame in that direction, from 0 (the first hello). */
  frame: number;
  /** `flip` the lowest bit of its last byte, or `replay` it (send it twice). */
  action: 'flip' | 'replay';
}

/** A running relay. */
export interface Relay {
  port: number;
  /** Where new connections go; change it to redirect the next client. */
  targetPort: number;
  /** How many frames were tampered with so far. */
  readonly tampered: number;
  close(): Promise<void>;
}

/** Frames bigger than this are passed through untouched (garbage, not frames). */
const MAX_FRAME = 16 * 1024 * 1024;

/** Forwards `from` → `to` frame by frame, applying `tamper` when it names this direction. */
function forward(from: net.Socket, to: net.Socket, direction: 'c2s' | 's2c', tamper: Tamper | undefined, onTamper: () => void): void {
  let buffer = Buffer.alloc(0);
  let index = 0;
  let raw = false;
  from.on('data', (chunk: Buffer) => {
    if (raw || !tamper || tamper.direction !== direction) {
      to.write(chunk);
      return;
    }
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 4) {
      const length = buffer.readUInt32BE(0);
      if (length > MAX_FRAME) {
        raw = true;
        to.write(buffer);
        buffer = Buffer.alloc(0);
        return;
      }
      if (buffer.length < 4 + length) break;
      const frame = Buffer.from(buffer.subarray(0, 4 + length));
      buffer = buffer.subarray(4 + length);
      if (index++ === tamper.frame && length > 0) {
        onTamper();
        if (tamper.action === 'flip') {
          frame[frame.length - 1]! ^= 0x01;
          to.write(frame);
        } else {
          to.write(frame);
          to.write(frame);
        }
      } else {
        to.write(frame);
      }
    }
  });
  from.on('end', () => to.end());
}

/** Starts a relay on `host` in front of `targetPort`, tampering as `tamper` says (or not at all). */
export async function startTamperRelay(host: string, targetPort: number, tamper?: Tamper): Promise<Relay> {
  const sockets = new Set<net.Socket>();
  let tampered = 0;
  const relay: Relay = {
    port: 0,
    targetPort,
    get tampered() {
      return tampered;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer({ allowHalfOpen: true }, (inbound) => {
    const outbound = net.connect({ host, port: relay.targetPort, allowHalfOpen: true });
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        // One side gone: the other is cut too, as a real path would be.
        inbound.destroy();
        outbound.destroy();
      });
    }
    forward(inbound, outbound, 'c2s', tamper, () => tampered++);
    forward(outbound, inbound, 's2c', tamper, () => tampered++);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => resolve());
  });
  relay.port = (server.address() as net.AddressInfo).port;
  return relay;
}
