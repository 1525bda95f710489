/**
 * A server's memory, read from `/proc` and summed over its process group.
 *
 * The group is the unit because a server under test is rarely one process:
 * tsx keeps a relay `node` beside the one running the script, and socat
 * forks a child per connection. Two figures are kept, because they answer
 * different questions:
 *
 * - RSS (`VmRSS`, and `VmHWM`, the peak RSS the kernel remembers per
 *   process): what each process has resident. Summed over processes it counts
 *   shared pages (libc, the node binary) once per process.
 * - PSS (`Pss` in `smaps_rollup`): each shared page divided among the
 *   processes sharing it, so a sum over processes is the memory the group
 *   really takes. It matters for socat's hundred near-identical children.
 *
 * `VmHWM` is exact but dies with its process; socat's children come and go,
 * so the monitor also samples the live sum every few hundred milliseconds and
 * keeps the highest (which can miss a spike shorter than the interval).
 *
 * @module
 */
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/** One process's memory at one moment, in KiB as `/proc` gives it. */
export interface ProcessMemory {
  pid: number;
  /** `tsx (relay)`, `node`, `deno`, `socat`: what the process is, for the breakdown. */
  role: string;
  rssKiB: number;
  /** Peak RSS over the process's life so far. */
  hwmKiB: number;
  pssKiB: number;
}

/** What {@link GroupMemoryMonitor.stop} reports, in MiB. */
export interface GroupMemory {
  /**
   * The peak figure reported as "RSS": the larger of the sampled peak of the
   * live RSS sum and the sum of `VmHWM` at the end. For a fixed set of
   * processes (Node, Deno) the second is the exact peak of each, summed.
   */
  peakRssMiB: number;
  /** Highest sampled sum of PSS. */
  peakPssMiB: number;
  /** Sum of `VmHWM` over the processes alive at the last sample. */
  hwmSumMiB: number;
  /** Most processes seen in the group at one sample (socat: 1 + open connections). */
  maxProcesses: number;
  /** Distinct processes seen over the whole life of the monitor. */
  processesSeen: number;
  /** The processes alive at the last sample, with their peak RSS. */
  final: { pid: number; role: string; hwmMiB: number }[];
}

const mib = (kib: number) => kib / 1024;

/** The PIDs of the live processes whose process group is `pgid` (read from `/proc/PID/stat`). */
export async function groupMembers(pgid: number): Promise<number[]> {
  const members: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'latin1').catch(() => '');
    // The command name in parentheses may itself hold spaces and ')'; fields after the last one are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid) members.push(Number(name));
  }
  return members;
}

function field(text: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

function roleOf(cmdline: string[]): string {
  // `node …/.bin/tsx script.ts` only relays signals to the `node` child that runs the script.
  if (/(^|\/)tsx(\/dist\/cli\.mjs)?$/.test(cmdline[1] ?? '')) return 'tsx (relay)';
  const program = cmdline[0]?.split('/').pop() ?? '?';
  return program || '?';
}

/** One process's memory now; `undefined` if it has already gone. */
export async function readProcessMemory(pid: number): Promise<ProcessMemory | undefined> {
  try {
    const [status, rollup, cmdline] = await Promise.all([
      readFile(`/proc/${pid}/status`, 'latin1'),
      readFile(`/proc/${pid}/smaps_rollup`, 'latin1'),
      readFile(`/proc/${pid}/cmdline`, 'utf8'),
    ]);
    const rssKiB = field(status, 'VmRSS');
    // A zombie has no memory left; it is not part of the server any more.
    if (rssKiB === 0) return undefined;
    return {
      pid,
      role: roleOf(cmdline.split('\0')),
      rssKiB,
      hwmKiB: field(status, 'VmHWM'),
      pssKiB: field(rollup, 'Pss'),
    };
  } catch {
    return undefined;
  }
}

/** The memory of every live process of group `pgid`. */
export async function sampleGroup(pgid: number): Promise<ProcessMemory[]> {
  const members = await groupMembers(pgid);
  const memories = await Promise.all(members.map(readProcessMemory));
  return memories.filter((memory) => memory !== undefined);
}

/**
 * Samples a process group's memory from {@link start} to {@link stop}, one
 * sample at a time (a slow `/proc` walk delays the next sample rather than
 * piling up), and reports the peaks.
 */
export class GroupMemoryMonitor {
  readonly pgid: number;
  readonly intervalMs: number;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #peakRssKiB = 0;
  #peakPssKiB = 0;
  #maxProcesses = 0;
  readonly #seen = new Set<number>();
  #last: ProcessMemory[] = [];

  constructor(pgid: number, intervalMs = 250) {
    this.pgid = pgid;
    this.intervalMs = intervalMs;
  }

  /** Starts sampling; a second call does nothing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = (async () => {
      while (this.#running) {
        await this.#sample();
        await delay(this.intervalMs);
      }
    })();
  }

  async #sample(): Promise<void> {
    const memories = await sampleGroup(this.pgid);
    if (memories.length === 0) return;
    let rss = 0;
    let pss = 0;
    for (const memory of memories) {
      rss += memory.rssKiB;
      pss += memory.pssKiB;
      this.#seen.add(memory.pid);
    }
    this.#peakRssKiB = Math.max(this.#peakRssKiB, rss);
    this.#peakPssKiB = Math.max(this.#peakPssKiB, pss);
    this.#maxProcesses = Math.max(this.#maxProcesses, memories.length);
    this.#last = memories;
  }

  /** Takes a last sample (call it while the server still runs) and reports the peaks. */
  async stop(): Promise<GroupMemory> {
    this.#running = false;
    await this.#loop;
    await this.#sample();
    const hwmSumKiB = this.#last.reduce((sum, memory) => sum + memory.hwmKiB, 0);
    return {
      peakRssMiB: mib(Math.max(this.#peakRssKiB, hwmSumKiB)),
      peakPssMiB: mib(this.#peakPssKiB),
      hwmSumMiB: mib(hwmSumKiB),
      maxProcesses: this.#maxProcesses,
      processesSeen: this.#seen.size,
      final: this.#last.map(({ pid, role, hwmKiB }) => ({ pid, role, hwmMiB: mib(hwmKiB) })),
    };
  }
}
