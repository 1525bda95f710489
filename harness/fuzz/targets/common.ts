/**
 * What the targets share: starting the watched server on a free port and
 * waiting for it, small line readers, and text helpers.
 *
 * @module
 */
import net from 'node:net';
import { freePort, type Proc, waitReady } from '../../proc.ts';
import type { Rng } from '../prng.ts';
import type { Env } from '../types.ts';

export const HOST = '127.0.0.1';
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const READY_MS = 60_000;

/** Starts `role` on a free port under the open-file limit and waits until it listens. */
export async function startWatched(
  env: Env,
  exercise: string,
  role: string,
  args: (port: number) => string[],
  protocol: 'tcp' | 'udp' = 'tcp',
  options: { port?: number; stdin?: boolean } = {},
): Promise<{ proc: Proc; port: number }> {
  const port = options.port ?? (await freePort());
  const proc = env.start(`${exercise} ${role}`, exercise, role, args(port), { limited: true, ...(options.stdin ? { stdin: true } : {}) });
  await waitReady(proc, port, protocol, READY_MS);
  return { proc, port };
}

/** Starts a helper (not watched, no limit) and waits until it listens. */
export async function startHelper(env: Env, exercise: string, role: string, args: (port: number) => string[], protocol: 'tcp' | 'udp' = 'tcp'): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const proc = env.start(`${exercise} ${role} (helper)`, exercise, role, args(port));
  await waitReady(proc, port, protocol, READY_MS);
  return { proc, port };
}

/** A random token of letters and digits, for names and texts the check recognises. */
export function token(rng: Rng | undefined, n = 8): string {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < n; i++) out += chars[Math.floor((rng ? rng.next() : Math.random()) * chars.length)];
  return out;
}

/** A connected socket whose lines are waited for one pattern at a time. */
export class LineClient {
  readonly socket: net.Socket;
  #buffer = '';
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, timeoutMs = 5000): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: HOST, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`cannot connect to ${HOST}:${port} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new LineClient(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`cannot connect to ${HOST}:${port}: ${error.message}`));
      });
    });
  }

  /** Waits for a line matching `pattern` (lines before it are dropped). */
  async line(pattern: RegExp, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.#buffer.split('\n');
      for (let i = 0; i < lines.length - 1; i++) {
        const l = (lines[i] ?? '').replace(/\r$/, '');
        if (pattern.test(l)) {
          this.#buffer = lines.slice(i + 1).join('\n');
          return l;
        }
      }
      if (this.#closed) throw new Error(`connection closed before a line matching ${pattern} (had: ${JSON.stringify(this.#buffer.slice(-200))})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line matching ${pattern} within ${timeoutMs / 1000} s (had: ${JSON.stringify(this.#buffer.slice(-200))})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  write(text: string): void {
    this.socket.write(text);
  }

  close(): void {
    this.socket.destroy();
  }
}
