/**
 * Starting, watching and stopping the processes a scenario needs, with zx.
 *
 * Every process is started in a process group of its own (`detached`), so
 * that stopping it stops its whole tree: `tsx` runs the script in a child
 * node, `npx` and shells add more layers, and a SIGKILL to the top one alone
 * would leave the server holding its port. Every process also carries a
 * marker in its environment; after a scenario the harness looks for that
 * marker in `/proc` and fails a run that left anything behind, whatever
 * process group it escaped to.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import dgram from 'node:dgram';
import net from 'node:net';
import { $, Fail, type ProcessPromise } from 'zx';

/** How a process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Output kept per stream; a chatty process must not eat the harness's memory. */
const OUTPUT_CAP = 4 * 1024 * 1024;

/** Words for an exit, in zx's vocabulary: `exit 2 (misuse of shell builtins)`, `killed by SIGKILL`. */
export function describeExit({ code, signal }: Exit): string {
  if (signal) return `killed by ${signal}`;
  const info = code === null ? undefined : Fail.getExitCodeInfo(code);
  return info ? `exit ${code} (${info.toLowerCase()})` : `exit ${code}`;
}

/** A process started by a {@link Supervisor}: its output so far and how to wait for it or stop it. */
export class Proc {
  readonly name: string;
  readonly command: string[];
  readonly pid: number;
  stdout = '';
  stderr = '';
  /** Raw stdout bytes, for clients whose output is binary. */
  readonly stdoutChunks: Buffer[] = [];
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  /**
   * The requirement asked for this process to refuse its command line (an
   * unknown flag on purpose), so its usage error is no verdict of its own.
   */
  expectRefusal = false;
  readonly #promise: ProcessPromise;
  readonly #watchers = new Set<() => void>();

  constructor(name: string, command: string[], promise: ProcessPromise) {
    this.name = name;
    this.command = command;
    this.#promise = promise;
    const pid = promise.pid;
    if (pid === undefined) throw new Error(`Cannot start ${name}: no process was created for ${command.join(' ')}`);
    this.pid = pid;
    let stdoutBytes = 0;
    promise.stdout.on('data', (chunk: Buffer) => {
      if (stdoutBytes < OUTPUT_CAP) {
        this.stdoutChunks.push(chunk);
        this.stdout += chunk.toString('utf8');
      }
      stdoutBytes += chunk.length;
      this.#notify();
    });
    promise.stderr.on('data', (chunk: Buffer) => {
      if (this.stderr.length < OUTPUT_CAP) this.stderr += chunk.toString('utf8');
      this.#notify();
    });
    this.exited = promise.then(
      (output) => ({ code: output.exitCode, signal: output.signal }),
      (error: { exitCode?: number | null; signal?: NodeJS.Signals | null }) => ({
        code: error.exitCode ?? null,
        signal: error.signal ?? null,
      }),
    );
    void this.exited.then((exit) => {
      this.exit = exit;
      this.#notify();
    });
  }

  /** Feeds the process's stdin (and closes it unless `keepOpen`). */
  write(data: string | Uint8Array, { keepOpen = false } = {}): void {
    this.#promise.stdin.write(data);
    if (!keepOpen) this.#promise.stdin.end();
  }

  #notify() {
    for (const watcher of this.#watchers) watcher();
  }

  /**
   * Resolves when `check` returns something other than undefined, re-checked
   * on every output chunk and at exit; rejects after `timeoutMs` with `what`.
   */
  until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        clearInterval(tick);
        this.#watchers.delete(watcher);
      };
      const watcher = () => {
        const value = check();
        if (value !== undefined) {
          done();
          resolve(value);
        } else if (this.exit) {
          done();
          reject(new Error(`${this.name} ${describeExit(this.exit)} before ${what}${this.#tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs / 1000} s${this.#tail()}`));
      }, timeoutMs);
      // Output and exit re-check at once; the interval covers checks on
      // outside state, such as a port appearing in /proc/net.
      const tick = setInterval(watcher, 50);
      this.#watchers.add(watcher);
      watcher();
    });
  }

  /** Waits for a line of stdout (or stderr) matching `pattern`. */
  waitForOutput(pattern: RegExp, timeoutMs: number, stream: 'stdout' | 'stderr' = 'stdout'): Promise<RegExpMatchArray> {
    return this.until(() => pattern.exec(this[stream]) ?? undefined, timeoutMs, `output matching ${pattern}`);
  }

  /** Waits for the process to exit by itself; kills it and rejects after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<Exit> {
    try {
      return await this.until(() => this.exit, timeoutMs, 'exit');
    } catch (error) {
      await this.stop({ graceMs: 0 });
      throw error;
    }
  }

  /** Sends `signal` to the process's whole group. */
  signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  }

  /**
   * Stops the whole process group: `signal` (SIGTERM), then SIGKILL for
   * whatever is left after `graceMs`. Safe to call twice.
   */
  async stop({ signal = 'SIGTERM' as NodeJS.Signals, graceMs = 3000 } = {}): Promise<Exit> {
    if (!this.exit) this.signal(graceMs > 0 ? signal : 'SIGKILL');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    // The leader may be gone while children of its group live on.
    this.signal('SIGKILL');
    return exit;
  }

  #tail(): string {
    const last = (text: string) => text.trimEnd().split('\n').slice(-3).join(' | ').slice(-300);
    const parts = [this.stderr && `stderr: ${last(this.stderr)}`, this.stdout && `stdout: ${last(this.stdout)}`];
    const tail = parts.filter(Boolean).join('; ');
    return tail ? ` (${tail})` : '';
  }
}

/**
 * Lines that say a program refused its command line itself (not a value in
 * it): argparse's, getopt's, optparse's and this project's lib/cli.
 */
const REFUSAL_LINE = [
  /error: unrecognized arguments?:/i,
  /error: the following arguments are required/i,
  /error: ambiguous option/i,
  /\b(invalid|unrecognized|unknown|illegal) option\b/i,
  /\bno such option\b/i,
  /\boption -+\S+ not recognized\b/i,
  /\boption requires an argument\b/i,
];

/**
 * The line in which a process that exited 2 refused its own invocation, or
 * undefined: the first usage error line (argparse's `error: unrecognized
 * arguments: --root www`, getopt's `invalid option`), else a bare `usage:`
 * line when no other error is printed (a hand-written argument check). An
 * invalid value (`argument --port: invalid int value`) is not a refusal: the
 * invocation was understood.
 */
export function refusalLine(exit: Exit | undefined, ...texts: string[]): string | undefined {
  if (exit?.code !== 2) return undefined;
  const lines = texts.join('\n').split('\n').map((line) => line.trim()).filter(Boolean);
  const refused = lines.find((line) => REFUSAL_LINE.some((pattern) => pattern.test(line)));
  if (refused) return refused.slice(0, 300);
  const usage = lines.find((line) => /^(usage|uso|modo de uso)\s*:/i.test(line));
  if (usage && !lines.some((line) => /error|invalid|inv\u00e1lid/i.test(line))) return usage.slice(0, 300);
  return undefined;
}

/** Options for {@link Supervisor.start}. */
export interface StartOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Keep stdin open for {@link Proc.write}; otherwise it is closed at once. */
  stdin?: boolean;
}

/**
 * Owns every process of one scope (a scenario): starts them marked, stops
 * them all, and finds any that outlived their stop.
 */
export class Supervisor {
  readonly marker: string;
  readonly procs: Proc[] = [];
  readonly #env: Record<string, string>;

  constructor(env: Record<string, string> = {}) {
    this.marker = `SOCKETS_HARNESS_SCOPE=${randomUUID()}`;
    this.#env = env;
  }

  /** Starts `command` (already split into words) as `name`. */
  start(name: string, command: string[], { cwd, env = {}, stdin = false }: StartOptions = {}): Proc {
    const [key, value] = this.marker.split('=') as [string, string];
    const promise = $({
      cwd: cwd ?? process.cwd(),
      env: { ...process.env, ...this.#env, ...env, [key]: value },
      detached: true,
      nothrow: true,
      quiet: true,
      verbose: false,
      stdio: ['pipe', 'pipe', 'pipe'],
    })`exec ${command}`;
    const proc = new Proc(name, command, promise);
    if (!stdin) promise.stdin.end();
    this.procs.push(proc);
    return proc;
  }

  /** Stops every process this supervisor started, in reverse order of start. */
  async stopAll(graceMs = 3000): Promise<void> {
    await Promise.all([...this.procs].reverse().map((proc) => proc.stop({ graceMs })));
  }

  /**
   * Processes still alive that carry this supervisor's marker: what a run
   * leaves behind. Each is SIGKILLed (by its PID; it is ours by the marker)
   * and returned as `pid command`.
   */
  async reapLeftovers(): Promise<string[]> {
    const left: string[] = [];
    for (const pid of await findByEnvironment(this.marker)) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      left.push(`${pid} ${cmdline.split('\0').join(' ').trim()}`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    return left;
  }
}

/** The PIDs of the processes whose environment holds `entry` (`NAME=value`), this one excepted. */
export async function findByEnvironment(entry: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const environ = await readFile(`/proc/${name}/environ`, 'latin1').catch(() => '');
    if (environ.split('\0').includes(entry)) found.push(Number(name));
  }
  return found;
}

/**
 * A port that is free for TCP and for UDP on `host` right now. The kernel
 * picks it (port 0), so parallel runs do not collide; there is a short window
 * before the server binds it, which a retry of the scenario would cover.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ host, port: 0, exclusive: true }, () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      socket.once('error', () => resolve(false));
      socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error(`Cannot find a port free for both TCP and UDP on ${host}`);
}

/**
 * Whether some socket is bound to `port`: listening for TCP, or bound for
 * UDP. Read from `/proc/net`, so a submission that prints no ready line is
 * still seen to be ready, and nothing is sent to it. With `pid`, the tables
 * are those of that process's network namespace (`/proc/PID/net`), which is
 * how a server started inside another namespace is seen.
 */
export async function isPortBound(port: number, protocol: 'tcp' | 'udp', pid?: number): Promise<boolean> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const base = pid === undefined ? '/proc/net' : `/proc/${pid}/net`;
  for (const file of [`${base}/${protocol}`, `${base}/${protocol}6`]) {
    const table = await readFile(file, 'utf8').catch(() => '');
    for (const line of table.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const state = fields[3];
      if (!local?.endsWith(`:${hexPort}`)) continue;
      // TCP must be listening (0A); a UDP socket is bound in state 07 (closed).
      if (protocol === 'tcp' ? state === '0A' : true) return true;
    }
  }
  return false;
}

/** How long a bound port with no ready line must stay bound to count as ready. */
const SILENT_READY_MS = 1000;

/**
 * Waits until `proc` is ready to serve on `port`: it printed the ready line
 * (`listening on …`), or the port has stayed bound in `/proc/net`
 * for a second without one.
 */
export async function waitReady(proc: Proc, port: number, protocol: 'tcp' | 'udp', timeoutMs: number): Promise<void> {
  // The ready line wins: a port can be bound a moment before the program has
  // finished starting (its signal handlers, say). A bound port alone is taken
  // as ready only once it has stayed bound for SILENT_READY_MS with no line,
  // so that a submission that prints nothing can still be graded.
  let boundSince: number | undefined;
  const poll = setInterval(() => {
    void isPortBound(port, protocol, proc.pid).then((bound) => {
      if (!bound) boundSince = undefined;
      else boundSince ??= performance.now();
    });
  }, 50);
  try {
    await proc.until(
      () =>
        /^listening on /m.test(proc.stdout) || (boundSince !== undefined && performance.now() - boundSince >= SILENT_READY_MS)
          ? true
          : undefined,
      timeoutMs,
      `${protocol.toUpperCase()} port ${port} bound (nor a "listening on" line)`,
    );
  } finally {
    clearInterval(poll);
  }
}
