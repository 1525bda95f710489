/**
 * Test helper for server.test.ts and server-tcp.test.ts (not a test itself:
 * tap runs `*.test.ts`): the server spawned as a user would run it (one node
 * process, so that its PID is the server's own), and raw `node:dgram` and
 * `node:net` peers that do what a faulty or hostile one does.
 *
 * @module
 */
import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { Child, ROOT } from '../lib/fixtures/spawn.ts';
import { encodePacket, Flag, MAX_DATA, Type } from './protocol.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const MiB = 1024 * 1024;
// The address-validation exchange (README, "The PDU"): a GET or PUT without a valid token is
// answered with RETRY, whose data is the token; the client sends its request again with the
// TOKEN flag and the token before its data.
export const RETRY = 9;
export const TOKEN_FLAG = 4;

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Served {
  child: Child;
  port: number;
  pid: number;
  root: string;
  outside: string;
}

/** Starts the server on port 0 over a fresh folder holding `files`; `outside` is a folder next to it. */
export async function startServer(t: Test, files: Record<string, string | Buffer>): Promise<Served> {
  const base = realpathSync(mkdtempSync(path.join(tmpdir(), 'ej11-server-')));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), content);
  }
  const child = new Child([process.execPath, '--import', 'tsx', path.join(HERE, 'server.ts'), '--host', '127.0.0.1', '--port', '0', '--dir', root]);
  t.teardown(async () => {
    await child.kill();
    rmSync(base, { recursive: true, force: true });
  });
  const port = await child.ready();
  return { child, port, pid: child.process.pid as number, root, outside };
}

export async function udpSocket(t: Test): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

export function rawPacket(type: number, flags: number, connection: number, data: Uint8Array, sequence = 7): Buffer {
  return Buffer.from(encodePacket({ sequence, ack: 0, ackBitfield: 0, type, flags, window: 1024, connection, through: 0, data }));
}

export const utf8 = (text: string) => new TextEncoder().encode(text);

/** Reads one TCP reply to the end: the status, then the error message or the file and its SHA-256. */
export async function tcpRequest(port: number, request: Buffer): Promise<{ all: Buffer; status: number | undefined; message?: string; body?: Buffer }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setTimeout(20_000, () => socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.write(request);
  await new Promise<void>((resolve) => socket.on('close', () => resolve()).on('error', () => {}));
  const all = Buffer.concat(chunks);
  const status = all[0];
  if (status === 1 && all.length >= 3) return { all, status, message: all.subarray(3, 3 + all.readUInt16BE(1)).toString('utf8') };
  if (status === 0 && all.length >= 9) return { all, status, body: all.subarray(9, 9 + Number(all.readBigUInt64BE(1))) };
  return { all, status };
}

/**
 * Sends a GET of `name` (bytes) from a raw socket, echoing the token if the server asks for
 * one, and resolves with the first ERROR's text (or undefined after 3 s).
 */
export async function rawGet(t: Test, port: number, name: (room: number) => Uint8Array): Promise<string | undefined> {
  const socket = await udpSocket(t);
  const connection = 0xc0ffee;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 3000);
    socket.on('message', (datagram) => {
      const type = datagram[12];
      if (type === RETRY) {
        const token = datagram.subarray(24);
        socket.send(rawPacket(Type.GET, Flag.SYN | TOKEN_FLAG, connection, Buffer.concat([token, name(MAX_DATA - token.length)])), port, '127.0.0.1');
      } else if (type === Type.ERROR) {
        clearTimeout(timer);
        resolve(datagram.subarray(24).toString('utf8'));
      }
    });
    socket.send(rawPacket(Type.GET, Flag.SYN, connection, name(MAX_DATA)), port, '127.0.0.1');
  });
}

/** Runs `node -e` swapping `dir` between a real folder and a symbolic link to `outside` until killed. */
export function swapper(t: Test, dir: string, outside: string): Child {
  symlinkSync(outside, `${dir}.link`);
  const code = `
    const { renameSync } = require('node:fs');
    const [dir] = process.argv.slice(1);
    const end = Date.now() + 60000;
    for (let i = 0; Date.now() < end; i++) {
      renameSync(dir, dir + '.dir'); renameSync(dir + '.link', dir);
      renameSync(dir, dir + '.link'); renameSync(dir + '.dir', dir);
    }`;
  const child = new Child([process.execPath, '-e', code, dir]);
  t.teardown(() => child.kill());
  return child;
}


/** The client as one node process (no tsx launcher): a SIGINT sent to it is the script's own. */
export function client(...args: string[]): Child {
  return new Child([process.execPath, '--import', 'tsx', path.join(ROOT, 'ej11', 'client.ts'), ...args]);
}

export function partSize(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.size ?? 0;
}

/** Waits until `file` holds at least `bytes` (or the child ends, or 60 s pass). */
export async function waitForPart(file: string, bytes: number, child: Child): Promise<void> {
  const started = performance.now();
  while (partSize(file) < bytes && child.process.exitCode === null && performance.now() - started < 60_000) await delay(20);
}

/** A fresh folder for what a client writes, removed at teardown. */
export function outFolder(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ej11-resume-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

