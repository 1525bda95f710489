import net from 'node:net';
import t from 'tap';
import { rawExchange, splitResponses } from './http-wire.ts';

const bytes = (text: string) => Buffer.from(text, 'latin1');

t.test('splitResponses() reads a response whose lines end in bare LF, as curl does, and notes it', async (t) => {
  const { responses, rest } = splitResponses(bytes('HTTP/1.0 200 OK\nContent-Type: text/html\nContent-Length: 5\n\nhello'));
  t.equal(responses.length, 1, 'one response');
  t.equal(responses[0]?.status, 200);
  t.equal(responses[0]?.headers['content-type'], 'text/html');
  t.equal(responses[0]?.body.toString(), 'hello');
  t.equal(rest.length, 0);
  t.match(responses[0]?.deviations ?? [], [/bare LF/], 'the deviation is noted, not refused');
});

t.test('splitResponses() reads mixed CRLF and LF line endings and two responses in a row', async (t) => {
  const { responses } = splitResponses(bytes('HTTP/1.1 404 Not Found\r\nContent-Length: 2\n\r\nnoHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  t.same(
    responses.map((r) => [r.status, r.body.toString()]),
    [
      [404, 'no'],
      [200, 'ok'],
    ],
  );
});

t.test('splitResponses() takes an HTTP/1.0 body without Content-Length to the end (close-delimited), and notes it', async (t) => {
  const { responses } = splitResponses(bytes('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\nuntil close'));
  t.equal(responses[0]?.status, 200);
  t.equal(responses[0]?.body.toString(), 'all of it\nuntil close');
  t.match(responses[0]?.deviations ?? [], [/ended by close/]);
});

t.test('splitResponses() has no deviations for a well-formed CRLF response with a length', async (t) => {
  const { responses } = splitResponses(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  t.same(responses[0]?.deviations, []);
});

t.test('rawExchange() and splitResponses() read a bare-LF HTTP/1.0 server that ends the body by closing', async (t) => {
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end('HTTP/1.0 200 OK\nContent-Type: text/html\n\n<html>hola</html>\n'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const { bytes: got, closed } = await rawExchange('127.0.0.1', port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  t.ok(closed, 'the server closed');
  const [response] = splitResponses(got).responses;
  t.equal(response?.status, 200);
  t.equal(response?.body.toString(), '<html>hola</html>\n');
});
