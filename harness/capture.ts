/**
 * Packet captures on loopback: tcpdump records a pcap, tshark decodes it,
 * both real tools a student would use themselves. A capture filters on the
 * requirement's own ports, so nothing else on the machine ends up in it.
 *
 * @module
 */
import { $ } from 'zx';
import type { Proc, Supervisor } from './proc.ts';

/** One captured packet, as tshark decodes it. */
export interface Packet {
  number: number;
  /** Seconds since the first packet. */
  time: number;
  protocol: 'tcp' | 'udp';
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** TCP flags as tshark writes them (`·······A··S·`), empty for UDP. */
  flags: string;
  payload: Buffer;
}

/** A capture in progress; {@link stop} ends it and returns the file. */
export interface Capture {
  file: string;
  stop(): Promise<string>;
}

/** Where {@link startCapture} listens, when not on this machine's loopback. */
export interface CaptureOptions {
  /** Interface to capture on (default `lo`). */
  iface?: string;
  /** Wraps the tcpdump command, e.g. to run it inside a network namespace. */
  wrap?: (command: string[]) => string[];
  /** Also record ARP, which a path over Ethernet shows and loopback never does. */
  arp?: boolean;
}

/**
 * Starts tcpdump on the loopback interface (or `options.iface`) writing
 * `file`, filtered on `ports`, and resolves once it is really capturing (its
 * "listening on" line).
 */
export async function startCapture(supervisor: Supervisor, ports: readonly number[], file: string, options: CaptureOptions = {}): Promise<Capture> {
  if (ports.length === 0) throw new Error('Cannot capture: no ports to filter on');
  const { iface = 'lo', wrap = (command: string[]) => command, arp = false } = options;
  const filter = `((tcp or udp) and (${ports.map((port) => `port ${port}`).join(' or ')}))${arp ? ' or arp' : ''}`;
  // --immediate-mode and -U hand each packet over and write it as it comes (by
  // default libpcap delivers in blocks, and a stop would lose the last second);
  // -s 0 keeps whole packets; -Z root stops it dropping to a user that cannot
  // write in our folder.
  const proc: Proc = supervisor.start('tcpdump', wrap(['tcpdump', '-i', iface, '-n', '--immediate-mode', '-U', '-s', '0', '-Z', 'root', '-w', file, filter]));
  await proc.waitForOutput(/listening on/, 10_000, 'stderr');
  return {
    file,
    async stop() {
      // tcpdump flushes and reports its counts on SIGINT; give the last packets a moment to land.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await proc.stop({ signal: 'SIGINT', graceMs: 5000 });
      return file;
    },
  };
}

/** tshark's one-line-per-packet summary of a capture, for people to read. */
export async function summarize(file: string): Promise<string> {
  const output = await $({ quiet: true, nothrow: true })`tshark -n -r ${file}`;
  return output.stdout.replaceAll('\u2192', '->');
}

/** Every TCP and UDP packet of a capture, decoded by tshark (other packets, such as ARP, are left out). */
export async function readPackets(file: string): Promise<Packet[]> {
  const fields = [
    'frame.number', 'frame.time_relative', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst',
    'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport', 'tcp.flags.str', 'tcp.payload', 'udp.payload',
  ];
  const output = await $({ quiet: true })`tshark -n -r ${file} -T fields -E separator=/t ${fields.flatMap((f) => ['-e', f])}`;
  return output.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split('\t'))
    // Neither TCP nor UDP ports: ARP and the like, which this list does not describe.
    .filter((f) => Boolean(f[6] || f[8]))
    .map((f) => {
      const [number, time, ip4src, ip4dst, ip6src, ip6dst, tcpSrc, tcpDst, udpSrc, udpDst, flags, tcpPayload, udpPayload] = f;
      const tcp = Boolean(tcpSrc);
      return {
        number: Number(number),
        time: Number(time),
        protocol: tcp ? 'tcp' : 'udp',
        src: ip4src || ip6src || '',
        dst: ip4dst || ip6dst || '',
        srcPort: Number(tcp ? tcpSrc : udpSrc),
        dstPort: Number(tcp ? tcpDst : udpDst),
        flags: flags ?? '',
        payload: Buffer.from((tcp ? tcpPayload : udpPayload)?.replaceAll(':', '') ?? '', 'hex'),
      } satisfies Packet;
    });
}

/** Which TCP flags a packet carries, from tshark's flag string, as `SYN,ACK`. */
export function tcpFlags(packet: Packet): string[] {
  const names: [string, string][] = [['S', 'SYN'], ['A', 'ACK'], ['F', 'FIN'], ['R', 'RST'], ['P', 'PSH']];
  return names.filter(([letter]) => packet.flags.includes(letter)).map(([, name]) => name);
}
