/**
 * Trying an interactive program as a person would: in a real terminal
 * (tmux), typing keys (`send-keys`) and reading the screen (`capture-pane`).
 *
 * Each session has a tmux server of its own (`-L` with a random name), so
 * nothing touches the user's tmux; {@link TmuxSession.kill} ends it. The
 * tmux server is started through the requirement's supervisor, so it carries
 * its marker and is found if it is ever left behind.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Context } from './scenario.ts';

/** A program running in a detached tmux session. */
export class TmuxSession {
  readonly ctx: Context;
  readonly socket: string;

  private constructor(ctx: Context, socket: string) {
    this.ctx = ctx;
    this.socket = socket;
  }

  /** Starts `command` (already split into words) in a `width`×`height` terminal in `cwd`. */
  static async start(ctx: Context, command: string[], { cwd = ctx.target.cwd, width = 120, height = 40 }: { cwd?: string; width?: number; height?: number } = {}): Promise<TmuxSession> {
    const session = new TmuxSession(ctx, `harness-${randomUUID().slice(0, 8)}`);
    // remain-on-exit keeps the last screen readable after the program ends.
    const run = await session.#tmux(['new-session', '-d', '-s', 'main', '-x', String(width), '-y', String(height), '-c', cwd, ...command]);
    if (run.exit.code !== 0) throw new Error(`tmux could not start ${command.join(' ')}: ${run.stderr.trim()}`);
    await session.#tmux(['set-option', '-t', 'main', 'remain-on-exit', 'on']);
    return session;
  }

  #tmux(args: string[]) {
    return this.ctx.exec('tmux', ['tmux', '-L', this.socket, ...args], { timeoutMs: 10_000 });
  }

  /** Types `keys` (tmux key names such as `Enter`, `C-c`, or literal text with `literal`). */
  async send(keys: string[], { literal = false } = {}): Promise<void> {
    await this.#tmux(['send-keys', '-t', 'main', ...(literal ? ['-l'] : []), ...keys]);
  }

  /** Types a line of text and Enter. */
  async line(text: string): Promise<void> {
    await this.send([text], { literal: true });
    await this.send(['Enter']);
  }

  /** The screen as text, trailing blank lines removed. */
  async screen(): Promise<string> {
    const run = await this.#tmux(['capture-pane', '-p', '-J', '-t', 'main', '-S', '-200']);
    return run.stdout.replace(/\s+$/, '');
  }

  /** Whether the program in the pane has exited. */
  async dead(): Promise<boolean> {
    const run = await this.#tmux(['display-message', '-p', '-t', 'main', '#{pane_dead}']);
    return run.stdout.trim() === '1';
  }

  /**
   * Waits until the screen matches `pattern` (re-read every 100 ms) and
   * returns it; rejects after `timeoutMs` with the screen as it was.
   */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let screen = '';
    while (Date.now() < deadline) {
      screen = await this.screen();
      if (pattern.test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the terminal did not show ${pattern} within ${timeoutMs / 1000} s; it showed:\n${screen}`);
  }

  /** Ends the session and its tmux server (safe to call twice). */
  async kill(): Promise<void> {
    await this.#tmux(['kill-server']);
  }
}
