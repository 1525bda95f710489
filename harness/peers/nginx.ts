/**
 * nginx as a reference peer: a static server on a loopback port, started in
 * the foreground (`daemon off; master_process off`) from a configuration in
 * a temporary folder, so that the harness's supervisor owns and kills it and
 * nothing of the system's nginx (its config, logs, pid file) is touched.
 *
 * ```ts
 * const nginx = await startNginx(ctx, { root: '/tmp/site', extra: 'location = /old { return 301 /new; }' });
 * // nginx.url === 'http://127.0.0.1:40123'
 * ```
 *
 * The pure {@link nginxConfig} is exported for benchmarks, which start
 * nginx themselves.
 *
 * @module
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Proc } from '../proc.ts';
import type { Context } from '../scenario.ts';

/** What nginx serves, and how. */
export interface NginxSite {
  /** The folder served (an absolute path). */
  root: string;
  /** Directives added inside the `server` block (locations, returns). */
  extra?: string;
  /** Also listen with TLS on a second port, with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
  /** Worker processes; 1 (and no master) unless a benchmark asks for more. */
  workers?: number;
}

/** A running nginx. */
export interface Nginx {
  proc: Proc;
  host: string;
  port: number;
  /** `http://127.0.0.1:PORT` */
  url: string;
  tlsPort?: number;
  /** The temporary folder holding the configuration. */
  dir: string;
}

/** The text of an nginx.conf for `site`, with every path inside `dir`. */
export function nginxConfig(dir: string, site: NginxSite, port: number, tlsPort?: number, host = '127.0.0.1'): string {
  const tls =
    site.tls && tlsPort
      ? `    listen ${host}:${tlsPort} ssl;\n    ssl_certificate ${site.tls.cert};\n    ssl_certificate_key ${site.tls.key};\n`
      : '';
  const workers = site.workers ?? 1;
  return `# Written by harness/peers/nginx.ts for one run; deleted afterwards.
daemon off;
master_process ${workers > 1 ? 'on' : 'off'};
worker_processes ${workers};
error_log stderr warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {
        listen ${host}:${port};
${tls}        server_name localhost;
        root ${site.root};
${site.extra ?? ''}
    }
}
`;
}

/** Writes a configuration for `site` into a new temporary folder; returns the folder and the file. */
export async function writeNginxConfig(site: NginxSite, port: number, tlsPort?: number): Promise<{ dir: string; conf: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nginx-peer-'));
  await mkdir(path.join(dir, 'tmp'));
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(conf, nginxConfig(dir, site, port, tlsPort));
  return { dir, conf };
}

/** The command line that runs nginx in the foreground with `conf` (`-e stderr`: no system log is opened). */
export function nginxCommand(dir: string, conf: string): string[] {
  return ['nginx', '-e', 'stderr', '-p', dir, '-c', conf];
}

/**
 * Starts nginx for `site` on free ports of the requirement, waits until it
 * accepts connections, and removes its folder when the requirement ends.
 */
export async function startNginx(ctx: Context, site: NginxSite): Promise<Nginx> {
  const port = await ctx.port();
  const tlsPort = site.tls ? await ctx.port() : undefined;
  const { dir, conf } = await writeNginxConfig(site, port, tlsPort);
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  const proc = ctx.spawn('nginx', nginxCommand(dir, conf));
  await waitConnectable(proc, ctx.host, port);
  if (tlsPort) await waitConnectable(proc, ctx.host, tlsPort);
  return { proc, host: ctx.host, port, url: `http://${ctx.host}:${port}`, ...(tlsPort ? { tlsPort } : {}), dir };
}

/** Resolves once `host:port` accepts a TCP connection; rejects if `proc` exits first or after `timeoutMs`. */
export async function waitConnectable(proc: Proc, host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (proc.exit) throw new Error(`${proc.name} exited (code ${proc.exit.code ?? proc.exit.signal}) before listening on ${host}:${port}: ${proc.stderr.trim().slice(-300)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > deadline) throw new Error(`${proc.name} did not listen on ${host}:${port} within ${timeoutMs / 1000} s: ${proc.stderr.trim().slice(-300)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
