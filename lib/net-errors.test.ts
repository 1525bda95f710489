import net from 'node:net';
import t from 'tap';
import { connectWithin, describeConnectError } from './net-errors.ts';

t.test('connectWithin() resolves with a connected socket', async (t) => {
  const server = net.createServer((socket) => socket.on('error', () => {}).end('hola'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const socket = await connectWithin({ host: '127.0.0.1', port }, 5000);
  t.equal(socket.remotePort, port);
  socket.destroy();
});

t.test('connectWithin() rejects with the socket\'s error, which describeConnectError() puts in words', async (t) => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  server.close(); // its socket closes at once: nothing listens there now
  const error = (await connectWithin({ host: '127.0.0.1', port }, 5000).catch((e: unknown) => e)) as NodeJS.ErrnoException;
  t.equal(error.code, 'ECONNREFUSED');
  t.match(describeConnectError(error, `127.0.0.1:${port}`).message, /connection refused \(is the server running\?\)/);
});
