import net from 'node:net';
import t, { type Test } from 'tap';
import nacl from 'tweetnacl';
import {
  ChannelError,
  CLIENT_HELLO_LENGTH,
  clientFinish,
  clientHello,
  encodeFrame,
  fingerprint,
  FrameReader,
  LENGTH_PREFIX,
  MAX_FRAME,
  MAX_PLAINTEXT,
  Opener,
  Sealer,
  secureClient,
  secureServer,
  type SecureSocket,
  SERVER_HELLO_LENGTH,
  serverAccept,
  type SessionKeys,
} from './secure-channel.ts';

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** Throws a refusal unless the host key is `pinned`, as a known_hosts check does. */
function pin(pinned: Uint8Array) {
  return (hostKey: Uint8Array) => {
    if (!nacl.verify(hostKey, pinned)) throw new ChannelError('HOST_KEY_MISMATCH', 'host key changed');
  };
}

function handshake(hostKey = nacl.sign.keyPair()): { client: SessionKeys; server: SessionKeys } {
  const state = clientHello();
  const { reply, keys: server } = serverAccept(state.hello, hostKey);
  const client = clientFinish(state, reply, pin(hostKey.publicKey));
  return { client, server };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof ChannelError ? error.code : `not a ChannelError: ${String(error)}`;
  }
  return undefined;
}

/** A sealed frame's body, without its length prefix. */
const body = (frame: Uint8Array) => frame.subarray(LENGTH_PREFIX);

t.test('a handshake gives both sides the same session id and matching directional keys', async (t) => {
  const hostKey = nacl.sign.keyPair();
  const state = clientHello();
  t.equal(state.hello.length, CLIENT_HELLO_LENGTH, 'ClientHello has its documented size');
  const { reply, keys: server } = serverAccept(state.hello, hostKey);
  t.equal(reply.length, SERVER_HELLO_LENGTH, 'ServerHello has its documented size');
  const client = clientFinish(state, reply, pin(hostKey.publicKey));
  t.same(client.sessionId, server.sessionId, 'same transcript hash on both sides');
  t.same(client.hostKey, hostKey.publicKey, 'the client learns the host key');
  for (let i = 0; i < 3; i++) {
    t.equal(str(server.opener.open(body(client.sealer.seal(text(`c2s ${i}`))))), `c2s ${i}`, `client → server frame ${i}`);
    t.equal(str(client.opener.open(body(server.sealer.seal(text(`s2c ${i}`))))), `s2c ${i}`, `server → client frame ${i}`);
  }
  // Each direction has its own key: a frame sent back to its sender does not open.
  const own = client.sealer.seal(text('echo'));
  const mirror = handshake(hostKey);
  t.equal(codeOf(() => mirror.client.opener.open(body(mirror.client.sealer.seal(text('x'))))), 'ALTERED', 'a frame reflected to its sender fails authentication');
  t.ok(own.length > 0);
});

t.test('every session has fresh keys (ephemeral exchange)', async (t) => {
  const hostKey = nacl.sign.keyPair();
  const a = handshake(hostKey);
  const b = handshake(hostKey);
  t.not(Buffer.from(a.client.sessionId).toString('hex'), Buffer.from(b.client.sessionId).toString('hex'), 'session ids differ');
  const frame = a.client.sealer.seal(text('secret'));
  t.equal(codeOf(() => b.server.opener.open(body(frame))), 'ALTERED', "one session's frame does not open in another");
});

t.test('the plaintext does not appear in a sealed frame', async (t) => {
  const { client } = handshake();
  const secret = 'password=hunter2 ls -la /home';
  const frame = Buffer.from(client.sealer.seal(text(secret)));
  t.equal(frame.indexOf(secret), -1, 'not found in the frame');
  t.equal(frame.indexOf('hunter2'), -1, 'not even a part of it');
});

t.test('a man in the middle with another host key is refused by the pin', async (t) => {
  const real = nacl.sign.keyPair();
  const mallory = nacl.sign.keyPair();
  const state = clientHello();
  // Mallory answers the client herself, with her own host key.
  const { reply } = serverAccept(state.hello, mallory);
  t.equal(codeOf(() => clientFinish(state, reply, pin(real.publicKey))), 'HOST_KEY_MISMATCH', 'the pinned key does not match hers');
});

t.test('a man in the middle keeping the real host key but swapping the ephemeral key fails the signature', async (t) => {
  const real = nacl.sign.keyPair();
  const state = clientHello();
  const { reply } = serverAccept(state.hello, real);
  const forged = Uint8Array.from(reply);
  forged.set(nacl.box.keyPair().publicKey, 8 + 32); // Mallory's ephemeral key in place of the server's
  t.equal(codeOf(() => clientFinish(state, forged, pin(real.publicKey))), 'BAD_SIGNATURE', 'signature over the transcript does not verify');
  // The same when she swaps the client's ephemeral key on the way to the server.
  const swapped = clientHello();
  const { reply: reply2 } = serverAccept(swapped.hello, real);
  t.equal(codeOf(() => clientFinish(state, reply2, pin(real.publicKey))), 'BAD_SIGNATURE', 'a reply made for another ClientHello is refused');
});

t.test('a replayed frame closes the channel with "replayed"', async (t) => {
  const { client, server } = handshake();
  const first = client.sealer.seal(text('ls'));
  server.opener.open(body(first));
  t.throws(() => server.opener.open(body(first)), /replayed/, 'the message says replayed');
  t.equal(codeOf(() => server.opener.open(body(first))), 'REPLAYED');
});

t.test('a reordered or missing frame closes the channel with "out of order"', async (t) => {
  const { client, server } = handshake();
  const f0 = client.sealer.seal(text('zero'));
  const f1 = client.sealer.seal(text('one'));
  t.throws(() => server.opener.open(body(f1)), /Frame 1 arrived where frame 0 was expected/);
  t.equal(codeOf(() => server.opener.open(body(f1))), 'OUT_OF_ORDER');
  t.equal(str(server.opener.open(body(f0))), 'zero', 'the expected frame still opens');
});

t.test('a frame with any one bit flipped is refused', async (t) => {
  const { client, server } = handshake();
  const frame = body(client.sealer.seal(text('pwd')));
  const codes = new Set<string | undefined>();
  for (let bit = 0; bit < frame.length * 8; bit++) {
    const altered = Uint8Array.from(frame);
    altered[bit >> 3]! ^= 1 << (bit & 7);
    codes.add(codeOf(() => server.opener.open(altered)));
  }
  t.notOk(codes.has(undefined), `all ${frame.length * 8} single-bit alterations are refused`);
  t.same([...codes].sort(), ['ALTERED', 'OUT_OF_ORDER'], 'as altered (box) or out of order (counter)');
  t.equal(str(server.opener.open(frame)), 'pwd', 'the intact frame opens afterwards');
});

t.test('a truncated frame is refused, in the stream and in a short body', async (t) => {
  const { client, server } = handshake();
  const frame = client.sealer.seal(text('whoami'));
  const reader = new FrameReader();
  t.same(reader.push(frame.subarray(0, frame.length - 3)), [], 'nothing complete yet');
  t.throws(() => reader.end(), { code: 'TRUNCATED', message: /truncated\): received \d+ bytes of \d+ bytes/ });
  t.equal(codeOf(() => server.opener.open(new Uint8Array(10))), 'TRUNCATED', 'a 10-byte body is too short to be sealed');
  const shortened = Uint8Array.from(body(frame).subarray(0, body(frame).length - 1));
  t.equal(codeOf(() => server.opener.open(shortened)), 'ALTERED', 'a body missing its last byte fails authentication');
});

t.test('an oversized frame is refused from its length prefix alone', async (t) => {
  const reader = new FrameReader();
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, MAX_FRAME + 1);
  t.throws(() => reader.push(prefix), { code: 'FRAME_TOO_LARGE', message: new RegExp(`${MAX_FRAME + 1} bytes announced, the limit is ${MAX_FRAME}`) });
  t.throws(() => encodeFrame(new Uint8Array(MAX_FRAME + 1)), { code: 'FRAME_TOO_LARGE' });
  const { client } = handshake();
  t.throws(() => client.sealer.seal(new Uint8Array(MAX_PLAINTEXT + 1)), { code: 'FRAME_TOO_LARGE' });
  t.doesNotThrow(() => client.sealer.seal(new Uint8Array(MAX_PLAINTEXT)), 'a frame of exactly the limit is fine');
});

t.test('FrameReader finds the same frames however the stream is split', async (t) => {
  const frames = [0, 1, 5, 300, 65_000].map((n) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 255));
  const stream = Buffer.concat(frames.map((f) => encodeFrame(f)));
  for (const step of [1, 3, 4, 7, 1000, stream.length]) {
    const reader = new FrameReader();
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += step) got.push(...reader.push(stream.subarray(i, i + step)));
    t.same(got.map((f) => Buffer.from(f).toString('hex')), frames.map((f) => Buffer.from(f).toString('hex')), `chunks of ${step} bytes`);
    t.doesNotThrow(() => reader.end(), 'nothing left over');
  }
});

t.test('a ClientHello of the wrong size or version, or a weak key, is refused', async (t) => {
  const hostKey = nacl.sign.keyPair();
  t.equal(codeOf(() => serverAccept(new Uint8Array(7), hostKey)), 'BAD_HELLO');
  const wrong = Uint8Array.from(clientHello().hello);
  wrong[0] = 'X'.charCodeAt(0);
  t.throws(() => serverAccept(wrong, hostKey), /does not speak ej05-v1/);
  const zero = Uint8Array.from(clientHello().hello);
  zero.fill(0, 8);
  t.equal(codeOf(() => serverAccept(zero, hostKey)), 'WEAK_KEY', 'an all-zero (low-order) ephemeral key is refused');
});

t.test('fingerprint() is ssh-style', async (t) => {
  t.match(fingerprint(new Uint8Array(32)), /^SHA256:[A-Za-z0-9+/]{43}$/);
});

t.test('Sealer and Opener need 32-byte keys', async (t) => {
  t.throws(() => new Sealer(new Uint8Array(16)), TypeError);
  t.throws(() => new Opener(new Uint8Array(31)), TypeError);
});

/** A loopback server running secureServer, and a client connected through an optional tampering relay. */
async function pair(t: Test, relay?: (fromClient: Buffer, index: number) => Buffer[]): Promise<{ client: SecureSocket; server: Promise<SecureSocket> }> {
  const hostKey = nacl.sign.keyPair();
  let serverSide!: (s: SecureSocket) => void;
  const server = new Promise<SecureSocket>((resolve) => (serverSide = resolve));
  const listener = net.createServer((socket) => void secureServer(socket, hostKey).then(serverSide, () => {}));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => listener.close());
  let port = (listener.address() as net.AddressInfo).port;
  if (relay) {
    // Forwards client → server frame by frame, letting `relay` change them.
    const target = port;
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(target, '127.0.0.1');
      const reader = new FrameReader();
      let index = 0;
      inbound.on('data', (chunk) => {
        for (const frame of reader.push(chunk)) for (const out of relay(Buffer.from(encodeFrame(frame)), index++)) outbound.write(out);
      });
      outbound.pipe(inbound);
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
      inbound.on('error', () => {});
      outbound.on('error', () => {});
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    t.teardown(() => proxy.close());
    port = (proxy.address() as net.AddressInfo).port;
  }
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  const client = await secureClient(socket, pin(hostKey.publicKey));
  t.teardown(() => client.socket.destroy());
  void server.then((s) => t.teardown(() => s.socket.destroy()));
  return { client, server };
}

const nextMessage = (s: SecureSocket) => new Promise<string>((resolve) => s.once('message', (m) => resolve(str(m))));
const nextClose = (s: SecureSocket) => new Promise<Error | undefined>((resolve) => s.once('close', resolve));

t.test('over loopback: messages go both ways, and a clean end closes without error', async (t) => {
  const { client, server: serverPromise } = await pair(t);
  const server = await serverPromise;
  const got = nextMessage(server);
  client.send(text('hola'));
  t.equal(await got, 'hola');
  const back = nextMessage(client);
  server.send(text('chau'));
  t.equal(await back, 'chau');
  const closed = nextClose(server);
  client.end();
  t.equal(await closed, undefined, 'the server sees a clean end');
});

t.test('over loopback: a relay flipping one bit in a sealed frame closes the session', async (t) => {
  const { client, server: serverPromise } = await pair(t, (frame, index) => {
    if (index === 2) frame[frame.length - 1]! ^= 0x01;
    return [frame];
  });
  const server = await serverPromise;
  const messages: string[] = [];
  server.on('message', (m) => messages.push(str(m)));
  // The side that detects the tampering may say why in one last sealed message.
  server.on('broken', (error) => server.send(text(`bye: ${error.code}`)));
  const lastWord = nextMessage(client);
  const closed = nextClose(server);
  client.send(text('first'));
  client.send(text('second'));
  const error = await closed;
  t.equal((error as ChannelError | undefined)?.code, 'ALTERED', `closed as altered: ${error?.message}`);
  t.same(messages, ['first'], 'the altered frame was never delivered');
  t.equal(await lastWord, 'bye: ALTERED', "the client receives the server's last word");
  await nextClose(client);
  t.ok(client.closed, 'the client sees the session closed');
  t.notOk(server.send(text('more')), 'nothing more can be sent after the close');
});

t.test('over loopback: a relay replaying a frame closes the session', async (t) => {
  const { client, server: serverPromise } = await pair(t, (frame, index) => (index === 1 ? [frame, Buffer.from(frame)] : [frame]));
  const server = await serverPromise;
  const messages: string[] = [];
  server.on('message', (m) => messages.push(str(m)));
  const closed = nextClose(server);
  client.send(text('rm -rf junk'));
  const error = await closed;
  t.equal((error as ChannelError | undefined)?.code, 'REPLAYED', `closed as replayed: ${error?.message}`);
  t.same(messages, ['rm -rf junk'], 'the command was delivered once, never twice');
});

t.test('over loopback: a peer announcing an oversized frame is cut off', async (t) => {
  const { client, server: serverPromise } = await pair(t);
  const server = await serverPromise;
  const closed = nextClose(server);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(0xffffffff);
  client.socket.write(prefix);
  const error = await closed;
  t.equal((error as ChannelError | undefined)?.code, 'FRAME_TOO_LARGE', `closed: ${error?.message}`);
});

t.test('over loopback: a connection cut inside a frame is reported as truncated', async (t) => {
  const { client, server: serverPromise } = await pair(t);
  const server = await serverPromise;
  const closed = nextClose(server);
  const frame = client.keys.sealer.seal(text('truncated command'));
  client.socket.end(frame.subarray(0, frame.length - 5));
  const error = await closed;
  t.equal((error as ChannelError | undefined)?.code, 'TRUNCATED', `closed: ${error?.message}`);
});

t.test('over loopback: after end(), what the peer still sends is never delivered', async (t) => {
  const { client, server: serverPromise } = await pair(t);
  const server = await serverPromise;
  const messages: string[] = [];
  server.on('message', (m) => messages.push(str(m)));
  const closed = nextClose(server);
  server.end();
  // Sealed and written before the client has seen the server's end: it arrives after end().
  client.socket.write(client.keys.sealer.seal(text('late login')));
  await closed;
  t.same(messages, [], 'the frame that arrived after end() was not delivered');
  t.notOk(server.send(text('after the end')), 'nothing more can be sent once ended');
});

t.test('over loopback: a peer that keeps its side open after end() is cut off', async (t) => {
  const hostKey = nacl.sign.keyPair();
  let serverSide!: (s: SecureSocket) => void;
  const serverPromise = new Promise<SecureSocket>((resolve) => (serverSide = resolve));
  const listener = net.createServer((socket) => void secureServer(socket, hostKey).then(serverSide, () => {}));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.teardown(() => listener.close());
  // A peer that says hello, then neither reads nor closes its side.
  const peer = net.connect({ port: (listener.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  peer.on('error', () => {});
  t.teardown(() => peer.destroy());
  peer.write(encodeFrame(clientHello().hello));
  const server = await serverPromise;
  const closed = nextClose(server);
  server.end();
  await closed;
  t.ok(server.socket.destroyed, 'the server side is destroyed, not left half open');
});
