/**
 * ej09's client as a user runs it: a server that goes away in the middle of
 * a chat (played here by a raw node:net server that answers WAIT and then
 * closes). Port 0 is refused by every client alike: lib/clients-port.test.ts.
 */
import net, { type AddressInfo } from 'node:net';
import t from 'tap';
import { Child, tsx } from '../lib/fixtures/spawn.ts';

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
