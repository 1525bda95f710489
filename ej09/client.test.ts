/**
 * ej09's client as a user runs it: a port it cannot connect to, and a server
 * that goes away in the middle of a chat (played here by a raw node:net
 * server that answers WAIT and then closes).
 */
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { Child, run, tsx } from '../lib/fixtures/spawn.ts';

t.test('client.ts refuses port 0 in one sentence and exits 2', async (t) => {
  const { code, stdout, stderr } = await run(tsx('ej09/client.ts', '--port', '0'));
  t.equal(code, 2);
  t.equal(stdout, '');
  t.match(stderr, /^client\.ts: error: argument --port: port 0 cannot be connected to/m);
  t.notMatch(stderr, /\n\s+at /, 'no stack trace');
});

t.test('client.ts says the server went away, and exits 1, when the server closes the connection', async (t) => {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write('WAIT\n');
      setTimeout(() => socket.destroy(), 200);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as AddressInfo;
  // stdin stays open (a user who has typed nothing yet).
  const child = new Child(tsx('ej09/client.ts', '--port', String(port), '--name', 'ana'));
  t.teardown(() => child.kill());
  const { code, stdout, stderr } = await child.exited;
  t.match(stdout, /waiting for a partner/, 'it got the WAIT first');
  t.equal(code, 1, 'exit 1');
  t.match(stderr, /^client\.ts: connection to 127\.0\.0\.1:\d+ closed by the server/m, 'one sentence saying the server went away');
});
