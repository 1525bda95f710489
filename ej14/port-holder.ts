/**
 * Which process listens on a TCP port, read from Linux's `/proc` (the way
 * `ss -ltnp` finds it), so that "address in use" can say what holds it.
 * Best effort: off Linux, or for another user's process without the right
 * to read its descriptors, the answer is `undefined`.
 *
 * @module
 */
import { readdir, readFile, readlink } from 'node:fs/promises';

/** A process holding a port: its id and command line (cut to 160 characters). */
export interface PortHolder {
  pid: number;
  command: string;
}

/** The socket inodes listening on TCP `port` (any address), from /proc/net/tcp and tcp6. */
async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; st 0A is LISTEN; the inode is the tenth field.
      if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A' && fields[9] && fields[9] !== '0') inodes.add(fields[9]);
    }
  }
  return inodes;
}

/** A command line without the loader flags tsx gives node (`--require …preflight.cjs --import …loader.mjs`). */
function readable(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (i > 0 && /^--(require|import|loader)$/.test(argv[i]!) && /node_modules/.test(argv[i + 1] ?? '')) i++;
    else out.push(argv[i]!);
  }
  return out;
}

/** The process listening on TCP `port`, if this process may see it. */
export async function portHolder(port: number): Promise<PortHolder | undefined> {
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return undefined;
  const wanted = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (!wanted.has(target)) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      const command = readable(cmdline.split('\0').filter(Boolean)).join(' ');
      return { pid: Number(pid), command: command.length > 160 ? `${command.slice(0, 159)}…` : command };
    }
  }
  return undefined;
}

/**
 * The sentence for a node whose port, fixed by config.ini's `[section]`,
 * is in use: what holds it (or how to find out) and what to change.
 */
export async function portInUseMessage(where: string, port: number, section: string, configFile: string, role: string): Promise<string> {
  const holder = await portHolder(port);
  const held = holder ? `by pid ${holder.pid} (${holder.command})` : `(ss -ltnp 'sport = :${port}' shows by what)`;
  return (
    `cannot listen on ${where}: the port is in use ${held}; the port is fixed by [${section}] of ${configFile}, ` +
    `so stop that process, or give [${section}] another port there${role === 'mapper' ? ' and start this mapper with it' : ' (every node reads it)'}`
  );
}
