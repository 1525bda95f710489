/**
 * The host lists of exercise 4: `IPsUDP.txt` and `IpsTCP.txt` hold hosts
 * separated by `;` (on one line or several), each `host` or `host:port`
 * (`[v6]:port` for an IPv6 address with a port). Empty entries and lines
 * starting with `#` are ignored.
 *
 * @module
 */
import { isIP } from 'node:net';

/** One host to probe, as written (`label`) and as reached. */
export interface HostTarget {
  label: string;
  host: string;
  port: number;
}

/** A bad entry in a host list; the message names the source and the line. */
export class HostListError extends SyntaxError {
  readonly line: number;
  constructor(message: string, line: number) {
    super(message);
    this.name = 'HostListError';
    this.line = line;
  }
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;

/** Reads one entry (`host`, `host:port`, `[v6]:port`, `v6`), or undefined when it is not one. */
export function parseHostEntry(entry: string, defaultPort: number): HostTarget | undefined {
  let host = entry;
  let port = defaultPort;
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(entry);
  const withPort = /^([^:]+):(\d{1,5})$/.exec(entry);
  if (bracketed) {
    host = bracketed[1] as string;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
    if (isIP(host) !== 6) return undefined;
  } else if (withPort) {
    host = withPort[1] as string;
    port = Number(withPort[2]);
  } else if (isIP(entry) === 6) {
    host = entry;
  }
  if (port < 1 || port > 65535) return undefined;
  if (isIP(host) === 0 && !HOSTNAME.test(host)) return undefined;
  if (isIP(host) === 0 && /^[\d.]+$/.test(host)) return undefined; // 300.1.2.3 is no host name
  return { label: entry, host, port };
}

/**
 * Parses a `;`-separated host list. `source` names it in errors:
 * `IPsUDP.txt, line 2: expected host or host:port, got 'a b'`.
 */
export function parseHostList(text: string, { source, defaultPort }: { source: string; defaultPort: number }): HostTarget[] {
  const targets: HostTarget[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, index) => {
    if (/^\s*#/.test(line)) return;
    for (const raw of line.split(';')) {
      const entry = raw.trim();
      if (entry === '') continue;
      const target = parseHostEntry(entry, defaultPort);
      if (!target) {
        throw new HostListError(`${source}, line ${index + 1}: expected host or host:port (port 1-65535), got '${entry}'`, index + 1);
      }
      targets.push(target);
    }
  });
  return targets;
}
