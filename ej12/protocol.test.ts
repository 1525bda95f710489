import t from 'tap';
import { Buffer } from 'node:buffer';
import {
  AGREGAR_ARCHIVO,
  checkWirePath,
  HEADER_LENGTH,
  MAX_DATA,
  MAX_PATH,
  Message,
  message,
  messageReader,
  PathError,
  REMOTO,
  resolveUserPath,
} from './protocol.ts';

const sample = () => message(AGREGAR_ARCHIVO, 'docs/año.txt', new Uint8Array([0, 1, 2, 255]), 7);

t.test('a PDU round-trips: encode, decode, encode again; its length is the header, path and data', async (t) => {
  const wire = Message.encode(sample());
  t.equal(wire.length, HEADER_LENGTH + Buffer.byteLength('docs/año.txt') + 4);
  t.equal(Message.encodingLength(sample()), wire.length);
  const [back, end] = Message.decode(wire);
  t.equal(end, wire.length);
  t.same(back, sample());
  t.same(Message.encode(back), wire);
  t.equal(Message.encodingLength(message(REMOTO)), HEADER_LENGTH, 'HEADER_LENGTH is the empty PDU');
  const at = new Uint8Array(wire.length + 5);
  Message.encode(sample(), at, 5);
  t.same(Message.decode(at, 5)[0], sample(), 'encodes and decodes at a non-zero offset');
});

t.test('the PDU is laid out as the README says: id_nodo, accion, bytes_path, path, bytes, data, big-endian', async (t) => {
  const wire = Buffer.from(Message.encode(message(REMOTO, 'ab', 'xyz', 0x01020304)));
  t.equal(wire.readUInt32BE(0), 0x01020304, 'id_nodo at 0');
  t.equal(wire.readUInt32BE(4), REMOTO, 'accion at 4');
  t.equal(wire.readUInt32BE(8), 2, 'bytes_path at 8');
  t.equal(wire.subarray(12, 14).toString(), 'ab', 'path at 12');
  t.equal(wire.readUInt32BE(14), 3, 'bytes after the path');
  t.equal(wire.subarray(18).toString(), 'xyz', 'data last');
});

t.test('malformed PDUs are refused: short, path too long, data too long, invalid UTF-8', async (t) => {
  const wire = Message.encode(sample());
  t.throws(() => Message.decode(wire.subarray(0, 10)), { code: 'ERR_SHORT_BUFFER' }, 'a short header');
  t.throws(() => Message.decode(wire.subarray(0, wire.length - 1)), { code: 'ERR_SHORT_BUFFER' }, 'short data');
  const long = Buffer.alloc(16);
  long.writeUInt32BE(MAX_PATH + 1, 8);
  t.throws(() => Message.decode(long), { name: 'RangeError', message: /path/ }, 'a path length over the limit');
  const big = Buffer.alloc(20);
  big.writeUInt32BE(0, 8);
  big.writeUInt32BE(MAX_DATA + 1, 12);
  t.throws(() => Message.decode(big), { name: 'RangeError', message: /data/ }, 'a data length over the limit');
  const bad = Buffer.from(Message.encode(message(REMOTO, 'ab')));
  bad[12] = 0xff;
  t.throws(() => Message.decode(bad), SyntaxError, 'a path that is not UTF-8');
  t.throws(() => Message.encode(message(REMOTO, 'x'.repeat(MAX_PATH + 1))), RangeError, 'encoding a path over the limit');
});

t.test('the frame reader joins split frames and refuses one over the limit before buffering it', async (t) => {
  const wire = Buffer.concat([Message.encode(sample()), Message.encode(message(REMOTO, '', '["ls",""]'))]);
  const reader = messageReader();
  const frames = [];
  for (let i = 0; i < wire.length; i += 3) frames.push(...reader.push(wire.subarray(i, i + 3)));
  t.equal(frames.length, 2);
  t.same(frames[0], sample());
  const huge = Buffer.alloc(20);
  huge.writeUInt32BE(0xffffffff, 8);
  t.throws(() => messageReader().push(huge), RangeError, 'a 4 GiB path is refused at once');
});

t.test('checkWirePath() accepts normalised relative paths and refuses the rest', async (t) => {
  t.same(checkWirePath(''), { path: '', dir: true });
  t.same(checkWirePath('a/b.txt'), { path: 'a/b.txt', dir: false });
  t.same(checkWirePath('a/b/'), { path: 'a/b', dir: true });
  t.same(checkWirePath('..a/b..'), { path: '..a/b..', dir: false }, 'dots inside a name are fine');
  for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a/..', './a', 'a//b', 'a/./b', 'a\0b', '/']) {
    t.throws(() => checkWirePath(bad), PathError, JSON.stringify(bad));
  }
});

t.test('resolveUserPath() resolves like a shell in a chroot and never climbs above the root', async (t) => {
  t.equal(resolveUserPath('', 'a/b'), 'a/b');
  t.equal(resolveUserPath('docs', 'x.txt'), 'docs/x.txt');
  t.equal(resolveUserPath('docs/sub', '..'), 'docs');
  t.equal(resolveUserPath('docs/sub', '../../'), '');
  t.equal(resolveUserPath('docs', '/etc/passwd'), 'etc/passwd', '/ is the shared root, not the machine\'s');
  t.equal(resolveUserPath('docs', './a//b/.'), 'docs/a/b');
  t.throws(() => resolveUserPath('', '..'), PathError);
  t.throws(() => resolveUserPath('docs', '../../etc/passwd'), PathError);
  t.throws(() => resolveUserPath('a/b', '/../x'), PathError);
  t.throws(() => resolveUserPath('', 'x'.repeat(MAX_PATH + 1)), PathError);
});
