import t from 'tap';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatAddress } from '../lib/cli.ts';
import { listenTcp } from '../lib/server.ts';
import { Session, splitWords } from './client.ts';
import { Link } from './link.ts';
import { createMaster } from './master.ts';
import { PathError } from './protocol.ts';
import { createSlave } from './slave.ts';
import { diff, manifest } from './tree.ts';

t.test('splitWords() splits on spaces and keeps quoted words whole', async (t) => {
  t.same(splitWords('  put "my file.txt"  docs/ '), ['put', 'my file.txt', 'docs/']);
  t.same(splitWords("cat 'a b'"), ['cat', 'a b']);
  t.same(splitWords(''), []);
});

/** Waits until `replica` has the master's manifest (or 10 s), returning the remaining difference. */
async function converge(master: string, replica: string): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = diff(await manifest(master), await manifest(replica)).length;
    if (left === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('in one process: a master, two slaves and a session; a slave that leaves and returns converges', async (t) => {
  const base = await realpath(await mkdtemp(path.join(tmpdir(), 'ej12-cluster-')));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const roots = ['m', 's1', 's2'].map((n) => path.join(base, n));
  for (const r of roots) await mkdir(r);
  const [mRoot, s1Root, s2Root] = roots as [string, string, string];
  const master = createMaster({ root: mRoot });
  const m = await listenTcp(master.server, '127.0.0.1', 0);
  t.teardown(() => master.close());
  const startSlave = async (root: string) => {
    const slave = createSlave({ root, master: { host: '127.0.0.1', port: m.port }, retryMs: 100 });
    const a: AddressInfo = await listenTcp(slave.server, '127.0.0.1', 0);
    slave.start(formatAddress(a.address, a.port));
    return slave;
  };
  const s1 = await startSlave(s1Root);
  const s2 = await startSlave(s2Root);
  t.teardown(() => s2.close());

  const link = await Link.connect('127.0.0.1', m.port);
  t.teardown(() => link.close());
  let out = '';
  const session = new Session(link, (b) => (out += typeof b === 'string' ? b : new TextDecoder().decode(b)));
  const local = path.join(base, 'local.txt');
  await writeFile(local, 'contenido\n');
  for (const line of ['mkdir a', `put ${local} a/`, 'cd a', 'cp local.txt copy.txt', 'ls', 'pwd', 'cd ..', 'mv a b', 'ls b']) await session.run(splitWords(line));
  t.equal(out, 'copy.txt\nlocal.txt\n/a\ncopy.txt\nlocal.txt\n');
  await t.rejects(session.run(splitWords('cat ../x')), PathError, 'the client refuses to climb above the root');
  await t.rejects(session.run(splitWords('cat nope')), { message: '/nope: No such file or directory' });
  t.equal(await converge(mRoot, s1Root), 0, 'slave 1 converged');
  t.equal(await converge(mRoot, s2Root), 0, 'slave 2 converged');

  await s1.close();
  await session.run(splitWords('rm -r b'));
  await session.run(splitWords('mkdir c'));
  t.equal(await converge(mRoot, s2Root), 0, 'slave 2 follows while slave 1 is away');
  t.not(diff(await manifest(mRoot), await manifest(s1Root)).length, 0, 'slave 1 missed the changes');
  const back = await startSlave(s1Root);
  t.teardown(() => back.close());
  t.equal(await converge(mRoot, s1Root), 0, 'slave 1 converged after returning');
});
