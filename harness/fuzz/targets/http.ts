/** ej06 (static server), ej07 (caching forward proxy with a local origin) and ej08 (load balancer over two ej06 backends). @module */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { streamCaseFor } from '../cases.ts';
import { preview } from '../mutate.ts';
import { streamCase, tcpRequest } from '../net.ts';
import { Rng } from '../prng.ts';
import type { Case, Env, FuzzTarget, Running } from '../types.ts';
import { HOST, startHelper, startWatched, token, utf8 } from './common.ts';

const INDEX = '<!doctype html><title>fuzz</title><p>the fuzz campaign\'s page</p>\n';
const BIG_SIZE = 2 * 1024 * 1024;

/** A folder with index.html, big.bin (2 MiB) and a sub-folder, for ej06 to serve. */
async function makeSite(dir: string): Promise<string> {
  const root = path.join(dir, 'www');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await writeFile(path.join(root, 'index.html'), INDEX);
  await writeFile(path.join(root, 'big.bin'), Buffer.alloc(BIG_SIZE, 0x61));
  await writeFile(path.join(root, 'sub', 'a.txt'), 'a\n');
  return root;
}

const PATHS = ['/', '/index.html', '/big.bin', '/sub/', '/sub/a.txt', '/missing', '/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/sub/..%2f..%2f', '/?q=1', '/a%00b'];

/** A valid request to `target` (origin form, or absolute form for a proxy). */
function httpRequest(rng: Rng, prefix: string, host: string): Uint8Array {
  const method = rng.pick(['GET', 'GET', 'GET', 'HEAD', 'POST', 'OPTIONS', 'DELETE']);
  const body = method === 'POST' ? token(rng, rng.int(0, 100)) : '';
  const headers = [`Host: ${host}`, 'User-Agent: fuzz'];
  if (rng.chance(0.3)) headers.push('Connection: close');
  if (rng.chance(0.2)) headers.push(`Range: bytes=${rng.int(0, 100)}-${rng.int(100, 5000)}`);
  if (body || method === 'POST') headers.push(`Content-Length: ${body.length}`);
  const one = `${method} ${prefix}${rng.pick(PATHS)} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n${body}`;
  return utf8(rng.chance(0.15) ? one + one : one);
}

/** Requests that declare hostile lengths: a Content-Length of 2^32 − 1 and worse, chunk sizes of ffffffff. */
function hostileHttp(rng: Rng, id: string, prefix: string, host: string, port: (r: Running) => number): Case {
  const forms = [
    `POST ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4294967295\r\n\r\nabc`,
    `POST ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 18446744073709551616\r\n\r\n`,
    `POST ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: -1\r\n\r\n`,
    `POST ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1e3\r\n\r\n`,
    `POST ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello`,
    `POST ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\nabc`,
    `POST ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n`,
    `GET ${prefix}/ HTTP/1.1\r\nHost: ${host}\r\n${'X-Long: '.concat('a'.repeat(rng.int(8000, 200_000)))}\r\n\r\n`,
    `GET ${prefix}/ HTTP/1.1\r\n${Array.from({ length: rng.int(100, 3000) }, (_, i) => `X-${i}: v`).join('\r\n')}\r\nHost: ${host}\r\n\r\n`,
    `GET ${prefix}/${'a/'.repeat(rng.int(1000, 40_000))} HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    `GET ${prefix}/ HTTP/9.9\r\nHost: ${host}\r\n\r\n`,
    `GET ${prefix}/ HTTP/1.1\nHost: ${host}\n\n`,
  ];
  const text = rng.pick(forms);
  const bytes = utf8(text);
  return {
    id,
    kind: 'hostile-length',
    detail: `tcp: ${preview(bytes, 60)} (${JSON.stringify(text.slice(0, 90))})`,
    run: async (running) => void (await streamCase(HOST, port(running), bytes, { mode: rng.pick(['end', 'open'] as const), timeoutMs: 3000 })),
  };
}

/** GET `pathName` with Connection: close; returns status and body. */
async function get(port: number, target: string, host: string): Promise<{ status: number; body: Buffer; head: string }> {
  const raw = await tcpRequest(HOST, port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, (_b, ended) => ended, 10_000);
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, split < 0 ? raw.length : split).toString('latin1');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, body: split < 0 ? Buffer.alloc(0) : raw.subarray(split + 4), head };
}

async function expectIndex(port: number, target: string, host: string, what: string): Promise<void> {
  const { status, body, head } = await get(port, target, host);
  if (status !== 200) throw new Error(`${what} GET ${target}: status ${status || 'none'} (${JSON.stringify(head.slice(0, 120))})`);
  if (body.toString('utf8') !== INDEX) throw new Error(`${what} GET ${target}: body ${JSON.stringify(body.subarray(0, 80).toString('utf8'))}, expected the index page`);
}

export const ej06: FuzzTarget = {
  name: 'ej06',
  title: 'ej06 static HTTP server',
  async setup(env) {
    const root = await makeSite(env.dir);
    const { proc, port } = await startWatched(env, 'ej06', 'server-root', (p) => ['--host', HOST, '--port', String(p), '--root', root, '--idle-timeout', '2', '--request-timeout', '3']);
    return { proc, port, state: undefined };
  },
  generate(rng, index) {
    const id = `ej06#${index}`;
    if (rng.chance(0.12)) return hostileHttp(rng, id, '', 'localhost', (r) => r.port);
    return streamCaseFor(rng, id, { label: 'tcp', port: (r) => r.port, valid: (g) => httpRequest(g, '', 'localhost') });
  },
  check: (running) => expectIndex(running.port, '/index.html', 'localhost', 'ej06'),
};

/** ej07's state: the origin's address. */
interface ProxyState {
  origin: string;
}

/**
 * Only loopback: a mutated request could name another host for the proxy
 * to connect to (a bit flip in 127.0.0.1, garbage after "http://"). Every
 * authority in a case must be the local origin, or the case is made again.
 */
export function namesOnlyOrigin(bytes: Uint8Array, origin: string): boolean {
  // A linear scan (a regular expression backtracks quadratically over a megabyte of letters).
  const text = Buffer.from(bytes).toString('latin1').toLowerCase();
  const want = origin.toLowerCase();
  const authorityAt = (at: number): string => {
    let end = at;
    while (end < text.length && !' \t\r\n\f\v/?#'.includes(text[end] as string)) end++;
    return text.slice(at, end);
  };
  const skipBlanks = (at: number): number => {
    while (text[at] === ' ' || text[at] === '\t') at++;
    return at;
  };
  for (let at = text.indexOf('://'); at >= 0; at = text.indexOf('://', at + 3)) if (authorityAt(at + 3) !== want) return false;
  for (let at = text.indexOf('connect'); at >= 0; at = text.indexOf('connect', at + 7)) {
    const next = skipBlanks(at + 7);
    if (next > at + 7 && authorityAt(next) !== want) return false;
  }
  for (let at = text.indexOf('host'); at >= 0; at = text.indexOf('host', at + 4)) {
    const colon = skipBlanks(at + 4);
    if (text[colon] === ':' && authorityAt(skipBlanks(colon + 1)) !== want) return false;
  }
  return true;
}

export const ej07: FuzzTarget<ProxyState> = {
  name: 'ej07',
  title: 'ej07 caching forward proxy (origin: an ej06 server)',
  async setup(env) {
    const root = await makeSite(env.dir);
    const origin = await startHelper(env, 'ej06', 'server-root', (p) => ['--host', HOST, '--port', String(p), '--root', root, '--quiet']);
    const originAddress = `${HOST}:${origin.port}`;
    const { proc, port } = await startWatched(env, 'ej07', 'proxy', (p) => [
      '--host', HOST, '--port', String(p), '--cache-dir', path.join(env.dir, 'cache'), '--cache-size', '16M', '--connect-ports', String(origin.port), '--timeout', '5',
    ]);
    return { proc, port, state: { origin: originAddress } };
  },
  generate(rng, index) {
    const id = `ej07#${index}`;
    // The origin's port is known only once it runs: cases name it through a placeholder swapped at run time.
    return placeholderCase(rng, id);
  },
  async check(running) {
    const origin = running.state.origin;
    await expectIndex(running.port, `http://${origin}/index.html`, origin, 'ej07 (proxy)');
  },
};

/**
 * An ej07 case is made when it runs, from its own seed, against the origin's
 * real address (its port is known only then); its kind and detail are made
 * at generation against a stand-in address of the same length. A case whose
 * bytes name any other authority is made again (see {@link namesOnlyOrigin}).
 */
function placeholderCase(rng: Rng, id: string): Case<ProxyState> {
  const seed = (rng.next() * 4294967296) >>> 0;
  const make = (origin: string): Case => {
    const g = new Rng(seed);
    if (g.chance(0.12)) return hostileHttp(g, id, `http://${origin}`, origin, (r) => r.port);
    if (g.chance(0.1)) {
      const bytes = utf8(`CONNECT ${origin} HTTP/1.1\r\nHost: ${origin}\r\n\r\n${Buffer.from(g.bytes(g.size(4096))).toString('latin1')}`);
      return { id, kind: 'connect-garbage', detail: `tcp: CONNECT to the origin, then ${bytes.length} bytes of garbage through the tunnel`, run: async (r) => void (await streamCase(HOST, r.port, bytes, { mode: 'end', timeoutMs: 3000 })) };
    }
    return streamCaseFor(g, id, {
      label: 'tcp',
      port: (r) => r.port,
      valid: (v) => httpRequest(v, `http://${origin}`, origin),
      reject: (bytes) => !namesOnlyOrigin(bytes, origin),
    });
  };
  const shown = make(`${HOST}:65535`);
  return { id, kind: shown.kind, detail: shown.detail, run: (running) => make(running.state.origin).run(running as Running) };
}

/** ej08's state: nothing beyond its port. */
export const ej08: FuzzTarget = {
  name: 'ej08',
  title: 'ej08 HTTP load balancer (two ej06 backends)',
  async setup(env: Env) {
    const root = await makeSite(env.dir);
    const b1 = await startHelper(env, 'ej06', 'server-root', (p) => ['--host', HOST, '--port', String(p), '--root', root, '--quiet']);
    const b2 = await startHelper(env, 'ej06', 'server-root', (p) => ['--host', HOST, '--port', String(p), '--root', root, '--quiet']);
    const config = path.join(env.dir, 'config.ini');
    await writeFile(config, `[backend1]\nhost = ${HOST}\nport = ${b1.port}\n\n[backend2]\nhost = ${HOST}\nport = ${b2.port}\n`);
    const { proc, port } = await startWatched(env, 'ej08', 'balancer', (p) => ['--host', HOST, '--port', String(p), '--config', config, '--check-interval', '1', '--response-timeout', '5']);
    // The backends are healthy once checked: wait (bounded) for a first 200.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ok = await get(port, '/index.html', 'localhost').then((r) => r.status === 200, () => false);
      if (ok || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    return { proc, port, state: undefined };
  },
  generate(rng, index) {
    const id = `ej08#${index}`;
    if (rng.chance(0.12)) return hostileHttp(rng, id, '', 'localhost', (r) => r.port);
    return streamCaseFor(rng, id, { label: 'tcp', port: (r) => r.port, valid: (g) => httpRequest(g, '', 'localhost') });
  },
  check: (running) => expectIndex(running.port, '/index.html', 'localhost', 'ej08 (balancer)'),
};
