/**
 * What the campaign watches of a server: the real server process (tsx's
 * child, not tsx; the runtime under prlimit and npx), its open descriptors
 * (/proc/PID/fd), its resident memory (VmRSS of /proc/PID/status), and stack
 * traces in what it printed.
 *
 * @module
 */
import { readdir, readFile, readlink } from 'node:fs/promises';

async function children(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const out: number[] = [];
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const word of text.trim().split(/\s+/)) if (/^\d+$/.test(word)) out.push(Number(word));
  }
  return out;
}

async function comm(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
}

/**
 * The process that runs the script: the deepest `node` or `deno` below
 * `root` (prlimit execs tsx, whose node starts a child node with the
 * script; deno runs it itself). Falls back to `root`.
 */
export async function serverPid(root: number): Promise<number> {
  let best = root;
  let bestDepth = (await comm(root)).match(/^(node|deno)/) ? 0 : -1;
  const walk = async (pid: number, depth: number) => {
    for (const child of await children(pid)) {
      if (/^(node|deno|MainThread)/.test(await comm(child)) && depth + 1 > bestDepth) {
        best = child;
        bestDepth = depth + 1;
      }
      await walk(child, depth + 1);
    }
  };
  await walk(root, 0);
  return best;
}

/** Whether `pid` is alive (and not a zombie). */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Open descriptors of `pid`, or undefined when it is gone. */
export async function openFds(pid: number): Promise<number | undefined> {
  try {
    return (await readdir(`/proc/${pid}/fd`)).length;
  } catch {
    return undefined;
  }
}

/** Resident memory of `pid` in bytes, or undefined when it is gone. */
export async function rssBytes(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** The soft open-file limit of `pid` (to show that prlimit took). */
export async function nofileLimit(pid: number): Promise<number | undefined> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8').catch(() => '');
  const match = /^Max open files\s+(\d+)/m.exec(limits);
  return match ? Number(match[1]) : undefined;
}

/**
 * The stack traces in `text`: a line `    at something (file:line:col)` or
 * `    at file:line:col` after an error line. Returns the first line of each
 * (the error's message) with its first frame.
 */
export function stackTraces(text: string): string[] {
  const found: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s+at .*(:\d+:\d+\)?|\(native\)|<anonymous>\)?)\s*$/.test(lines[i] ?? '')) continue;
    // The start of this trace: walk back over its other frames.
    let start = i;
    while (start > 0 && /^\s+at /.test(lines[start - 1] ?? '')) start--;
    if (start === i) {
      const message = (lines[start - 1] ?? '').trim();
      found.push(`${message.slice(0, 200)} | ${(lines[i] ?? '').trim().slice(0, 160)}`);
    }
  }
  return found;
}

/** What the open descriptors of `pid` are, grouped: `12 × socket, 3 × /tmp/x/big.bin, …` (for a leak's report). */
export async function describeFds(pid: number): Promise<string> {
  const names = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  const counts = new Map<string, number>();
  for (const name of names) {
    const target = await readlink(`/proc/${pid}/fd/${name}`).catch(() => '?');
    const kind = target.replace(/^(socket|pipe|anon_inode):.*$/, '$1').replace(/^\/dev\/pts\/\d+$/, '/dev/pts');
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} × ${k}`).join(', ');
}
