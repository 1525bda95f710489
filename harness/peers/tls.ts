/**
 * A self-signed certificate for TLS peers, made with `openssl req -x509`:
 * valid for `localhost` and 127.0.0.1, two days, in a temporary folder.
 *
 * @module
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Context } from '../scenario.ts';

/** PEM files of a certificate and its key. */
export interface Certificate {
  cert: string;
  key: string;
}

/** Makes a self-signed certificate (it is its own CA) for localhost and 127.0.0.1. */
export async function selfSignedCertificate(ctx: Context, commonName = 'localhost'): Promise<Certificate> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tls-peer-'));
  ctx.t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const run = await ctx.exec('openssl', [
    'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', key, '-out', cert, '-subj', `/CN=${commonName}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  if (run.exit.code !== 0) throw new Error(`openssl could not make a certificate: ${run.stderr.trim().slice(-300)}`);
  return { cert, key };
}
