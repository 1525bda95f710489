/**
 * ej01 end to end as a user runs it: each server started with --port 0 and
 * its ready line, each client against it, under Node (tsx) and under Deno
 * (`deno run -A`), the way the README tells one to.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { Child, deno, hasDeno, run, tsx } from '../lib/fixtures/spawn.ts';

const runtimes = [
  { name: 'Node (tsx)', command: tsx, skip: false as const },
  { name: 'Deno', command: deno, skip: hasDeno ? (false as const) : 'deno is not installed (npm ci installs the npm package deno)' },
];

for (const runtime of runtimes) {
  for (const protocol of ['tcp', 'udp'] as const) {
    t.test(`${runtime.name}: ${protocol}-client.ts prints the echo from ${protocol}-server.ts, which stops on SIGTERM with exit 0`, { skip: runtime.skip }, async (t) => {
      const server = new Child(runtime.command(`ej01/${protocol}-server.ts`, '--port', '0'));
      t.teardown(() => server.kill());
      const port = await server.ready(60_000);
      t.match(server.stdout, new RegExp(`^listening on 127\\.0\\.0\\.1:${port} \\(${protocol}\\)\\n$`), 'one ready line naming the bound port');

      const text = await run(runtime.command(`ej01/${protocol}-client.ts`, '--data', 'hola mundo', '--port', String(port)));
      t.equal(text.code, 0, text.stderr);
      t.equal(text.stdout, 'hola mundo\n');

      const data = randomBytes(protocol === 'tcp' ? 256 * 1024 : 8192);
      const binary = await run(runtime.command(`ej01/${protocol}-client.ts`, '--data', '-', '--port', String(port)), { input: data });
      t.equal(binary.code, 0, binary.stderr);
      t.ok(binary.stdoutBytes.equals(data), `--data - echoes ${data.length} random bytes from stdin to stdout, byte-identical`);

      server.signal('SIGTERM');
      const stopped = await server.exited;
      t.equal(stopped.code, 0, 'the server exits 0 on SIGTERM');
      t.match(stopped.stderr, /SIGTERM: shutting down/);
    });
  }

  t.test(`${runtime.name}: tcp-client.ts against a closed port says the connection was refused, exit 1`, { skip: runtime.skip }, async (t) => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const { code, stdout, stderr } = await run(runtime.command('ej01/tcp-client.ts', '--data', 'x', '--port', String(port)));
    t.equal(code, 1);
    t.equal(stdout, '');
    t.equal(stderr, `tcp-client.ts: cannot connect to 127.0.0.1:${port}: connection refused (is the server running?)\n`);
  });
}
