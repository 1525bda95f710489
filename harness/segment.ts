/**
 * A network segment with broadcast, for tests that need more than loopback
 * (which has no broadcast between hosts): N network namespaces, each one
 * host with one veth interface, all plugged into one Linux bridge that lives
 * in a namespace of its own (the switch). Host i has 10.78.0.(i+1)/24; the
 * segment's broadcast address is 10.78.0.255. These addresses exist only
 * inside the namespaces. Each host's default route is its segment device
 * (no gateway), so the limited broadcast 255.255.255.255 leaves by the
 * segment too, and nothing can be routed beyond the bridge.
 *
 * ```ts
 * const reason = await segmentSupport();        // undefined, or why it cannot run
 * const segment = await createSegment(3);
 * try {
 *   supervisor.start('a', segment.exec(0, ['tsx', 'ej15/node.ts', '--host', segment.hosts[0].address]));
 * } finally {
 *   await segment.destroy();                    // also on failure
 * }
 * ```
 *
 * Names carry the creating process's PID (`sockp<PID>x<random>…`, as
 * netns.ts's), so parallel runs never clash and {@link removeStale} deletes
 * what a run that died left behind.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { NETNS_PREFIX, removeStale, run } from './netns.ts';
import { hasProgram } from './scenario.ts';

/** The subnet of every segment. */
export const SEGMENT_SUBNET = '10.78.0.0/24';
/** Its broadcast address. */
export const SEGMENT_BROADCAST = '10.78.0.255';

/** One host of the segment. */
export interface SegmentHost {
  /** Namespace name. */
  ns: string;
  /** Its interface on the segment. */
  device: string;
  /** Its address, 10.78.0.(i+1). */
  address: string;
}

/** A segment made by {@link createSegment}. */
export interface Segment {
  hosts: SegmentHost[];
  /** The namespace that holds the bridge. */
  switchNs: string;
  broadcast: string;
  /** `command` run on host `i`: `ip netns exec NAME …command`. */
  exec(i: number, command: string[]): string[];
  /** Deletes every namespace (and so the veths and the bridge). Safe to call twice. */
  destroy(): Promise<void>;
}

/** Why a segment cannot be made here (not root, `ip` missing), or undefined when it can. */
export async function segmentSupport(): Promise<string | undefined> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces need root (run as root, as CI does)';
  if (!(await hasProgram('ip'))) return 'ip is not installed (apt-get install iproute2)';
  return undefined;
}

/**
 * Creates a segment of `count` hosts (1–200) on one bridge, every link up.
 * On a failure half-way it deletes what it made before rejecting.
 */
export async function createSegment(count: number): Promise<Segment> {
  if (!Number.isInteger(count) || count < 1 || count > 200) throw new RangeError(`Cannot create a segment: expected 1-200 hosts, got ${count}`);
  await removeStale();
  const id = `${NETNS_PREFIX}${process.pid}x${randomBytes(3).toString('hex')}`;
  const switchNs = `${id}s`;
  // Interface names have at most 15 characters.
  const short = randomBytes(3).toString('hex');
  const hosts: SegmentHost[] = Array.from({ length: count }, (_, i) => ({ ns: `${id}h${i}`, device: `sg${short}h${i}`, address: `10.78.0.${i + 1}` }));
  const made: string[] = [];
  let destroyed = false;
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    for (const ns of made.reverse()) await run('ip', ['netns', 'del', ns]).catch(() => {});
  };
  try {
    await run('ip', ['netns', 'add', switchNs]);
    made.push(switchNs);
    await run('ip', ['-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    await run('ip', ['-n', switchNs, 'link', 'set', 'br0', 'up']);
    await run('ip', ['-n', switchNs, 'link', 'set', 'lo', 'up']);
    for (const [i, host] of hosts.entries()) {
      await run('ip', ['netns', 'add', host.ns]);
      made.push(host.ns);
      const port = `sg${short}p${i}`;
      await run('ip', ['link', 'add', host.device, 'netns', host.ns, 'type', 'veth', 'peer', 'name', port, 'netns', switchNs]);
      await run('ip', ['-n', switchNs, 'link', 'set', port, 'master', 'br0']);
      await run('ip', ['-n', switchNs, 'link', 'set', port, 'up']);
      await run('ip', ['-n', host.ns, 'addr', 'add', `${host.address}/24`, 'brd', SEGMENT_BROADCAST, 'dev', host.device]);
      await run('ip', ['-n', host.ns, 'link', 'set', host.device, 'up']);
      await run('ip', ['-n', host.ns, 'link', 'set', 'lo', 'up']);
      // A default route through the segment's own device, no gateway: a send to
      // 255.255.255.255 from an unbound socket (Python's '<broadcast>') needs a
      // route or fails with ENETUNREACH. It leads only to the bridge: any other
      // address is asked for by ARP on the segment and never answered.
      await run('ip', ['-n', host.ns, 'route', 'add', 'default', 'dev', host.device]);
    }
  } catch (error) {
    await destroy();
    throw error;
  }
  return {
    hosts,
    switchNs,
    broadcast: SEGMENT_BROADCAST,
    exec(i, command) {
      const host = hosts[i];
      if (!host) throw new RangeError(`No host ${i} on this segment (it has ${hosts.length})`);
      return ['ip', 'netns', 'exec', host.ns, ...command];
    },
    destroy,
  };
}
