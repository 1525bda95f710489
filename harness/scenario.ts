/**
 * The vocabulary of scenario files: a scenario is an exercise's list of
 * requirements, and a requirement is a function that receives a
 * {@link Context} — the target's roles, free ports, real peers, a capture —
 * and checks behaviour with tap assertions.
 *
 * A requirement asks only for what the assignment and the contract make
 * observable (a port, a command line, bytes on the wire), so that it grades
 * any honest implementation, not just this project's.
 *
 * @module
 */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { Test } from 'tap';
import { which } from 'zx';
import { type Exit, Proc, Supervisor, freePort, refusalLine, waitReady } from './proc.ts';
import { type Target, declaresAll } from './target.ts';

/** A real program a requirement talks to, and how to get it on Debian. */
export interface Peer {
  name: string;
  /** The Debian package that provides it. */
  apt: string;
}

/** One requirement of an exercise: one row of the grading table. */
export interface Requirement {
  /** Stable identifier, unique in the exercise (`tcp-binary`). */
  id: string;
  /** What is required, in a sentence. */
  title: string;
  /** The target's roles it runs; a target without one of them skips it. */
  roles: readonly string[];
  /** Real programs it needs; absent ones skip it, naming the package. */
  peers?: readonly Peer[];
  /** Needs root (raw captures, namespaces). */
  root?: boolean;
  /** Upper bound on the whole requirement, processes included. */
  timeoutMs?: number;
  /**
   * Which tier it grades (CONTRACT: how the harness grades). `assignment`
   * (the default): observable through the assignment's command lines, file
   * names, files and defaults alone, so every submission is graded on it.
   * `beyond`: one of this project's extras, graded only for a target whose
   * manifest declares every one of {@link features}; otherwise `n/a`.
   */
  tier?: 'assignment' | 'beyond';
  /**
   * What a beyond requirement needs the target to have declared (`features`
   * in its manifest): the option or format it uses, named as the option is
   * (`--root`, `--json`) or as the format is (`pdu:project`). Empty for the
   * assignment tier.
   */
  features?: readonly string[];
  run(ctx: Context): Promise<void>;
}

/** A stack trace, Node's or Python's: what a user must never see for a mistake or a network failure. */
export const TRACEBACK = /Traceback \(most recent call last\)|^\s+at .+\(.*:\d+:\d+\)$|^\s+at .*:\d+:\d+$/m;

/**
 * Asserts that a running process's stderr (or stdout, or either) gets a line matching
 * `pattern`. A server writes its log line when it has acted, and the line
 * can reach us a moment after the client it served has exited, so wait for
 * it (bounded) before asserting.
 */
export async function checkLogged(
  t: Test,
  proc: Proc,
  pattern: RegExp,
  message: string,
  stream: 'stdout' | 'stderr' | 'both' = 'stderr',
  waitMs = 3_000,
): Promise<void> {
  const text = () => (stream === 'both' ? proc.stdout + proc.stderr : proc[stream]);
  await proc.until(() => (pattern.test(text()) ? true : undefined), waitMs, `output matching ${pattern}`).catch(() => undefined);
  t.match(text(), pattern, message);
}

/**
 * The `cli` requirement every exercise has (CONTRACT: command lines): each
 * role answers `-h` with exit 0, a usage line and the options the assignment
 * names (`options[role]`), and refuses an unknown flag with exit 2, saying
 * so on stderr without a stack trace. `more` adds the exercise's own checks.
 */
export function cliRequirement(options: Record<string, readonly RegExp[]>, more?: (ctx: Context) => Promise<void>): Requirement {
  const roles = Object.keys(options);
  return {
    id: 'cli',
    title: `${roles.length === 1 ? 'the script answers' : 'every script answers'} -h with its usage and refuses an unknown flag with exit 2`,
    roles,
    async run(ctx) {
      for (const [role, expected] of Object.entries(options)) {
        const help = await ctx.client(role, ['-h']);
        ctx.t.equal(help.exit.code, 0, `${role} -h exits 0`);
        ctx.t.match(help.stdout, /usage:/, `${role} -h prints a usage line`);
        for (const option of expected) ctx.t.match(help.stdout, option, `${role} -h shows ${option.source}`);
        const bad = await ctx.client(role, ['--no-such-flag'], { expectRefusal: true });
        ctx.t.equal(bad.exit.code, 2, `${role} --no-such-flag exits 2`);
        ctx.t.match(bad.stderr, /usage:|--no-such-flag/, `${role} --no-such-flag says what was wrong on stderr`);
        ctx.t.notMatch(bad.stderr, TRACEBACK, `${role} --no-such-flag prints no stack trace`);
      }
      // The exercise's own command-line checks may refuse on purpose (no --url).
      if (more) await ctx.expectingRefusals(() => more(ctx));
    },
  };
}

/** An exercise's requirements. */
export interface Scenario {
  exercise: string;
  title: string;
  requirements: Requirement[];
}

/** Declares a scenario; gives scenario files one obvious shape. */
export function defineScenario(exercise: string, title: string, requirements: Requirement[]): Scenario {
  const ids = new Set<string>();
  for (const { id } of requirements) {
    if (ids.has(id)) throw new Error(`Scenario ${exercise}: requirement id '${id}' is used twice`);
    ids.add(id);
  }
  return { exercise, title, requirements };
}

/** A server started by {@link Context.server}. */
export interface Server {
  proc: Proc;
  host: string;
  port: number;
}

/** What {@link Context.client} returns once the process has exited (or was killed). */
export interface ClientRun {
  exit: Exit;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  /** True when the harness killed it for running past its time limit. */
  timedOut: boolean;
  durationMs: number;
}

/** Where a requirement stands while it runs. */
/**
 * Thrown by {@link Context.skip}: the requirement cannot be judged on this
 * target, for a reason found only once it runs (another exercise's role, an
 * option the target's script lacks). The runner reports it as a skip.
 */
export class RequirementSkip extends Error {
  override name = 'RequirementSkip';
}

/**
 * Thrown by {@link Context.notApplicable}: the requirement does not apply to
 * this target, such as an input the assignment leaves open that the target's
 * manifest does not declare. The runner reports it as `n/a`, never a failure.
 */
export class RequirementNotApplicable extends Error {
  override name = 'RequirementNotApplicable';
}

/** Options of {@link Context.server}. */
export interface ServerOptions {
  readyTimeoutMs?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Wraps the command, e.g. `ip netns exec NS …` to start it in a namespace. */
  wrap?: (command: string[]) => string[];
  /** A port from {@link Context.port} already (one a capture filters on), instead of a new one. */
  port?: number;
  /** The requirement asks for the command line to be refused (see {@link ClientOptions.expectRefusal}). */
  expectRefusal?: boolean;
}

/** Options of {@link Context.client}. */
export interface ClientOptions {
  input?: string | Uint8Array;
  timeoutMs?: number;
  /**
   * The requirement passes a command line to be refused on purpose (an
   * unknown flag). Otherwise a role that exits 2 with a usage error fails
   * its requirement as "did not accept …", whatever the checks said.
   */
  expectRefusal?: boolean;
}

export class Context {
  readonly t: Test;
  readonly exercise: string;
  readonly target: Target;
  readonly supervisor: Supervisor;
  readonly host = '127.0.0.1';
  /** Ports handed out in this requirement, in order (a capture filters on them). */
  readonly ports: number[] = [];
  readonly #pool: number[];
  #refusalsExpected = 0;

  constructor(t: Test, exercise: string, target: Target, supervisor: Supervisor, pool: number[]) {
    this.t = t;
    this.exercise = exercise;
    this.target = target;
    this.supervisor = supervisor;
    this.#pool = pool;
  }

  /** Ends the requirement as a skip that says why (the runner still stops every process). */
  skip(reason: string): never {
    throw new RequirementSkip(reason);
  }

  /**
   * Ends the requirement as `n/a` that says why: for an input the assignment
   * leaves open and the target did not declare (`[ejNN.declare]`), never for
   * a behaviour the assignment fixes.
   */
  notApplicable(reason: string): never {
    throw new RequirementNotApplicable(reason);
  }

  /** The command of `role` in this exercise (the runner has checked it exists). */
  command(role: string): string[] {
    const command = this.target.roles.get(this.exercise)?.get(role);
    if (!command) throw new Error(`Target '${this.target.name}' has no role ${role} in [${this.exercise}]`);
    return command;
  }

  /** Whether the target declares `feature` (a beyond option or format) for this exercise. */
  feature(feature: string): boolean {
    return declaresAll(this.target, this.exercise, [feature]);
  }

  /** What the target declares for `key` of this exercise (`[ejNN.declare]`), if anything. */
  declared(key: string): string | undefined {
    return this.target.declared.get(this.exercise)?.get(key);
  }

  /**
   * Runs `body` with every process it starts allowed to refuse its command
   * line (the cli requirement's own checks of usage errors).
   */
  async expectingRefusals<T>(body: () => Promise<T>): Promise<T> {
    const from = this.supervisor.procs.length;
    this.#refusalsExpected++;
    try {
      return await body();
    } finally {
      this.#refusalsExpected--;
      for (const proc of this.supervisor.procs.slice(from)) proc.expectRefusal = true;
    }
  }

  #mark(proc: Proc, expectRefusal: boolean | undefined): Proc {
    if (expectRefusal || this.#refusalsExpected > 0) proc.expectRefusal = true;
    return proc;
  }

  /** A port free for TCP and UDP, from the requirement's pool while it lasts. */
  async port(): Promise<number> {
    const port = this.#pool.shift() ?? (await freePort(this.host));
    this.ports.push(port);
    return port;
  }

  /**
   * Starts `role` as a server on a free port (`--host 127.0.0.1 --port P`
   * appended to its command, then `args`) and waits until it is ready: its
   * "listening on" line, or the port seen bound.
   */
  async server(role: string, protocol: 'tcp' | 'udp', args: string[] = [], { readyTimeoutMs = 20_000, host = this.host, wrap, port: chosen, expectRefusal }: ServerOptions = {}): Promise<Server> {
    const port = chosen ?? (await this.port());
    const command = [...this.command(role), '--host', host, '--port', String(port), ...args];
    const proc = this.#mark(this.supervisor.start(role, wrap ? wrap(command) : command, { cwd: this.target.cwd }), expectRefusal);
    await waitReady(proc, port, protocol, readyTimeoutMs);
    return { proc, host, port };
  }

  /** Runs `role` like {@link client}, its command wrapped (to run it in a network namespace, say). */
  async clientWrapped(role: string, args: string[], wrap: (command: string[]) => string[], { timeoutMs = 20_000, expectRefusal }: Omit<ClientOptions, 'input'> = {}): Promise<ClientRun> {
    return this.exec(role, wrap([...this.command(role), ...args]), { timeoutMs, cwd: this.target.cwd, ...(expectRefusal ? { expectRefusal } : {}) });
  }

  /**
   * Runs `role` with `args` to completion, feeding `input` on stdin. A client
   * still running after `timeoutMs` is killed (whole tree) and reported as
   * `timedOut`, never left to hang the run.
   */
  async client(role: string, args: string[], { input, timeoutMs = 20_000, expectRefusal }: ClientOptions = {}): Promise<ClientRun> {
    return this.exec(role, [...this.command(role), ...args], { ...(input === undefined ? {} : { input }), timeoutMs, cwd: this.target.cwd, ...(expectRefusal ? { expectRefusal } : {}) });
  }

  /** Runs any program (a real peer such as socat) to completion, like {@link client}. */
  async exec(
    name: string,
    command: string[],
    { input, timeoutMs = 20_000, cwd, expectRefusal }: ClientOptions & { cwd?: string } = {},
  ): Promise<ClientRun> {
    const started = performance.now();
    const proc = this.#mark(this.supervisor.start(name, command, { stdin: input !== undefined, ...(cwd ? { cwd } : {}) }), expectRefusal);
    if (input !== undefined) proc.write(input);
    let timedOut = false;
    const exit = await proc.waitForExit(timeoutMs).catch(async () => {
      timedOut = true;
      return proc.exited;
    });
    // Output may still be in the pipe when the exit is seen.
    await new Promise((resolve) => setImmediate(resolve));
    return {
      exit,
      stdout: proc.stdout,
      stdoutBytes: Buffer.concat(proc.stdoutChunks),
      stderr: proc.stderr,
      timedOut,
      durationMs: performance.now() - started,
    };
  }

  /** Starts a long-running program that is not a target role (a peer server). */
  spawn(name: string, command: string[]): Proc {
    return this.#mark(this.supervisor.start(name, command), undefined);
  }

  /**
   * Each process of a target role that refused its invocation when the
   * requirement did not ask for that: "did not accept `ARGS`: LINE". Any
   * process counts whose command holds a role's command (a scenario may
   * start one through the supervisor, or wrapped in `ip netns exec`).
   */
  refusals(): string[] {
    const roleCommands = [...this.target.roles.values()].flatMap((roles) => [...roles.values()]).filter((c) => c.length > 0);
    const found: string[] = [];
    for (const proc of this.supervisor.procs) {
      if (proc.expectRefusal) continue;
      const line = refusalLine(proc.exit, proc.stderr, proc.stdout);
      if (line === undefined) continue;
      const args = argumentsAfterRole(proc.command, roleCommands);
      if (args === undefined) continue;
      const shown = args.join(' ').slice(0, 200);
      found.push(`did not accept \`${shown}\`: ${line}`);
    }
    return [...new Set(found)];
  }
}

/** The words after the longest role command found in `command`, or undefined when it runs no role. */
function argumentsAfterRole(command: readonly string[], roleCommands: readonly (readonly string[])[]): string[] | undefined {
  let best: { end: number; length: number } | undefined;
  for (const role of roleCommands) {
    for (let i = 0; i + role.length <= command.length; i++) {
      if (role.every((word, j) => command[i + j] === word) && (!best || role.length > best.length)) best = { end: i + role.length, length: role.length };
    }
  }
  return best ? command.slice(best.end) : undefined;
}

/** Peers the scenarios use, with the Debian package that installs each. */
export const PEERS = {
  socat: { name: 'socat', apt: 'socat' },
  tcpdump: { name: 'tcpdump', apt: 'tcpdump' },
  tshark: { name: 'tshark', apt: 'tshark' },
  python3: { name: 'python3', apt: 'python3' },
  curl: { name: 'curl', apt: 'curl' },
  wget: { name: 'wget', apt: 'wget' },
  nginx: { name: 'nginx', apt: 'nginx-light' },
  tinyproxy: { name: 'tinyproxy', apt: 'tinyproxy' },
  chronyd: { name: 'chronyd', apt: 'chrony' },
  nft: { name: 'nft', apt: 'nftables' },
  ip: { name: 'ip', apt: 'iproute2' },
  tmux: { name: 'tmux', apt: 'tmux' },
  wrk: { name: 'wrk', apt: 'wrk' },
  chromium: { name: 'chromium', apt: 'chromium' },
} satisfies Record<string, Peer>;

/** Whether a program is on PATH. */
export async function hasProgram(name: string): Promise<boolean> {
  return (await which(name, { nothrow: true })) !== null;
}

/** Makes a folder for captures and other artefacts of a run. */
export async function artefactDir(base: string, exercise: string): Promise<string> {
  const dir = path.join(base, exercise);
  await mkdir(dir, { recursive: true });
  return dir;
}
