/**
 * A path with real kernel loss, for TCP and UDP alike: two network
 * namespaces joined by a veth pair (10.77.0.1 ↔ 10.77.0.2, addresses that
 * exist only inside them), and an nftables rule on the receiving side's input
 * hook, `numgen random mod 100 < N drop`, that drops about N % of the packets
 * arriving there. (Dropping on output would make `send` fail with EPERM
 * instead of losing the packet; `tc netem` is not available on these
 * machines, so delay on this path comes from the relay if at all.)
 *
 * ```ts
 * const reason = await namespaceSupport();       // undefined, or why it cannot run
 * const path = await createNetnsPair();
 * t.teardown(() => path.destroy());              // also on failure
 * await path.setLoss('b', 5);                    // 5 % of packets into b dropped
 * supervisor.start('server', path.exec('b', ['tsx', 'ej11/server.ts', '--host', path.addrB]));
 * ```
 *
 * Names carry the creating process's PID and a random part, so parallel runs
 * never clash, and a later run deletes the namespaces of runs that died
 * without cleaning up ({@link removeStale}).
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hasProgram } from './scenario.ts';

/** Prefix of every namespace this module creates. */
export const NETNS_PREFIX = 'sockp';

/** The two ends of the path. */
export interface NetnsPair {
  /** Namespace names. */
  a: string;
  b: string;
  /** Addresses inside them: a is 10.77.0.1, b is 10.77.0.2. */
  addrA: string;
  addrB: string;
  /** `command` run inside namespace `side`: `ip netns exec NAME …command`. */
  exec(side: 'a' | 'b', command: string[]): string[];
  /** Drops about `percent` % of the packets arriving in `side` from the veth (0 removes the rule). */
  setLoss(side: 'a' | 'b', percent: number): Promise<void>;
  /** Deletes both namespaces (and so the veth pair and the rules). Safe to call twice. */
  destroy(): Promise<void>;
}

/** Runs a command, rejecting with its stderr in the message. */
export function run(command: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Why namespaces cannot be made here (not root, `ip` or `nft` missing), or undefined when they can. */
export async function namespaceSupport(): Promise<string | undefined> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces need root (run as root, as CI does)';
  for (const [program, pkg] of [['ip', 'iproute2'], ['nft', 'nftables']] as const) {
    if (!(await hasProgram(program))) return `${program} is not installed (apt-get install ${pkg})`;
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes namespaces left by runs whose process is gone; returns their names. */
export async function removeStale(): Promise<string[]> {
  const names = (await run('ip', ['netns', 'list']).catch(() => ''))
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(NETNS_PREFIX));
  const stale = names.filter((name) => {
    const pid = Number(/^sockp(\d+)x/.exec(name)?.[1]);
    return Number.isInteger(pid) && pid > 0 && !alive(pid);
  });
  for (const name of stale) await run('ip', ['netns', 'del', name]).catch(() => {});
  return stale;
}

/** The nft ruleset that drops `percent` % of what arrives on `device`. */
export function lossRuleset(device: string, percent: number): string {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new RangeError(`Cannot set loss: expected an integer percent 0-100, got ${percent}`);
  return [
    'table inet impair {',
    '  chain input {',
    '    type filter hook input priority 0; policy accept;',
    `    iifname "${device}" numgen random mod 100 < ${percent} counter drop`,
    '  }',
    '}',
  ].join('\n');
}

/**
 * Creates two namespaces joined by a veth pair, both up, with 10.77.0.1/24
 * in `a` and 10.77.0.2/24 in `b`. On a failure half-way it removes what it
 * made before rejecting.
 */
export async function createNetnsPair(): Promise<NetnsPair> {
  await removeStale();
  const id = `${NETNS_PREFIX}${process.pid}x${randomBytes(3).toString('hex')}`;
  const a = `${id}a`;
  const b = `${id}b`;
  // Interface names have at most 15 characters.
  const short = randomBytes(4).toString('hex');
  const devA = `sv${short}a`;
  const devB = `sv${short}b`;
  const devices = { a: devA, b: devB };
  const names = { a, b };
  let destroyed = false;
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await run('ip', ['netns', 'del', a]).catch(() => {});
    await run('ip', ['netns', 'del', b]).catch(() => {});
  };
  try {
    await run('ip', ['netns', 'add', a]);
    await run('ip', ['netns', 'add', b]);
    await run('ip', ['link', 'add', devA, 'netns', a, 'type', 'veth', 'peer', 'name', devB, 'netns', b]);
    for (const [ns, dev, addr] of [[a, devA, '10.77.0.1/24'], [b, devB, '10.77.0.2/24']] as const) {
      // One TCP segment per packet, as on a real link: without this, veth carries TCP as
      // 64 KiB GSO packets and the loss rule would drop 45 segments at a time, UDP one datagram.
      await run('ip', ['-n', ns, 'link', 'set', dev, 'gso_max_segs', '1', 'gso_max_size', '1500']);
      await run('ip', ['-n', ns, 'addr', 'add', addr, 'dev', dev]);
      await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
  } catch (error) {
    await destroy();
    throw error;
  }
  return {
    a,
    b,
    addrA: '10.77.0.1',
    addrB: '10.77.0.2',
    exec: (side, command) => ['ip', 'netns', 'exec', names[side], ...command],
    async setLoss(side, percent) {
      const ruleset = lossRuleset(devices[side], percent);
      await run('ip', ['netns', 'exec', names[side], 'nft', 'delete', 'table', 'inet', 'impair']).catch(() => {});
      if (percent > 0) await run('ip', ['netns', 'exec', names[side], 'nft', '-f', '-'], ruleset);
    },
    destroy,
  };
}
