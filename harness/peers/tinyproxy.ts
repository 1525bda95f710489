/**
 * tinyproxy as a reference forward proxy (HTTP and CONNECT) on a loopback
 * port, in the foreground (`-d`) with a configuration in a temporary folder.
 *
 * ```ts
 * const proxy = await startTinyproxy(ctx);   // proxy.port; proxy.proc.stderr is its log
 * ```
 *
 * @module
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Proc } from '../proc.ts';
import type { Context } from '../scenario.ts';
import { waitConnectable } from './nginx.ts';

/** A running tinyproxy. */
export interface Tinyproxy {
  proc: Proc;
  host: string;
  port: number;
}

/** A tinyproxy.conf listening on `host:port`, allowing only that loopback address, logging to stderr. */
export function tinyproxyConfig(port: number, host = '127.0.0.1'): string {
  // No ConnectPort line: CONNECT is allowed to every port (the tests use high ones).
  return `# Written by harness/peers/tinyproxy.ts for one run.
Port ${port}
Listen ${host}
Allow ${host}
Timeout 30
MaxClients 50
LogLevel Info
`;
}

/** Starts tinyproxy on a free port of the requirement and waits until it accepts connections. */
export async function startTinyproxy(ctx: Context): Promise<Tinyproxy> {
  const port = await ctx.port();
  const dir = await mkdtemp(path.join(tmpdir(), 'tinyproxy-peer-'));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  const conf = path.join(dir, 'tinyproxy.conf');
  await writeFile(conf, tinyproxyConfig(port, ctx.host));
  const proc = ctx.spawn('tinyproxy', ['tinyproxy', '-d', '-c', conf]);
  await waitConnectable(proc, ctx.host, port);
  return { proc, host: ctx.host, port };
}
