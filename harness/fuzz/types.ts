/**
 * The shapes the campaign works with: a target (one server of the suite, how
 * to start it, how to make its cases, how to check it answers), a running
 * server, and a case.
 *
 * @module
 */
import type { Proc, Supervisor } from '../proc.ts';
import type { Target } from '../target.ts';
import type { Rng } from './prng.ts';

/** What a target's setup gets: where to put files, how to start processes. */
export interface Env {
  supervisor: Supervisor;
  /** harness/targets/node.ini or deno.ini, loaded. */
  target: Target;
  runtime: 'node' | 'deno';
  /** A fresh folder for this target's files. */
  dir: string;
  /** The soft and hard open-file limit of the watched server. */
  nofile: number;
  /** Starts `role` of `exercise` with `args`; `limited` runs it under prlimit (the watched server). */
  start(name: string, exercise: string, role: string, args: string[], options?: { limited?: boolean; stdin?: boolean; cwd?: string }): Proc;
}

/** A server the campaign fuzzes, as its setup left it. */
export interface Running<S = unknown> {
  /** The watched process (its group holds prlimit, tsx, the server). */
  proc: Proc;
  /** The main port. */
  port: number;
  /** Whatever else the target's cases and check need (more ports, a fake peer, file names). */
  state: S;
  /** Stops what the setup started besides the supervisor's processes (listeners of its own). */
  close?: () => Promise<void>;
}

/** One case: a bounded exchange with the server. */
export interface Case<S = unknown> {
  /** `TARGET#N` for generated cases, `TARGET:NAME` for fixed ones. */
  id: string;
  /** The mutation or scenario: random, bit-flips, concurrent-200, reset-mid-transfer, … */
  kind: string;
  /** Enough words and bytes to redo it by hand. */
  detail: string;
  run(running: Running<S>): Promise<void>;
}

/** A named input that once found something: run first, always, as its own batch. */
export interface FixedCase<S = unknown> extends Case<S> {
  /** The finding it reproduces (`issue 11 #17`). */
  finding: string;
}

/** One server of the suite, as the campaign sees it. */
export interface FuzzTarget<S = unknown> {
  name: string;
  title: string;
  setup(env: Env): Promise<Running<S>>;
  /** The `index`th generated case (its own Rng, so `--case` redoes one alone). */
  generate(rng: Rng, index: number): Case<S>;
  fixed?: FixedCase<S>[];
  /** A valid request and its expected answer; throws saying what was wrong. */
  check(running: Running<S>, attempt: number): Promise<void>;
  /** Tries of the valid request before it counts as failed (UDP may lose a datagram; default 1, 3 for UDP). */
  checkAttempts?: number;
  /** Extra slack of descriptors this server may hold after a batch (open sessions that time out). */
  fdSlack?: number;
  /** How long after a batch its sessions take to time out (descriptors are counted after at most this). */
  settleMs?: number;
}
