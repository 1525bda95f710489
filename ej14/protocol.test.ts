import t from 'tap';
import {
  decodeFrame,
  decodeTable,
  donePayload,
  encodeFrame,
  encodeTable,
  encodingLength,
  type Frame,
  FrameReader,
  HEADER_BYTES,
  LENGTH_BYTES,
  MAX_FRAME,
  MAX_REASON_BYTES,
  Outcome,
  parseConfig,
  readReason,
  reasonBytes,
  tableLength,
  Type,
} from './protocol.ts';

const job = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const sample = (payload: Uint8Array): Frame => ({ type: Type.ASSIGN, job, piece: 7, payload });

t.test('encodeFrame()/decodeFrame() round trip, at an offset too', async (t) => {
  const f = sample(new TextEncoder().encode('En un lugar de la Mancha'));
  const bytes = encodeFrame(f);
  t.equal(bytes.length, encodingLength(f));
  t.equal(new DataView(bytes.buffer).getUint32(0), HEADER_BYTES + f.payload.length, 'the length prefix counts type, job, piece and payload');
  const [back, next] = decodeFrame(bytes) ?? t.fail('decoded') ?? [];
  t.equal(next, bytes.length);
  t.same(back, f);
  t.same(encodeFrame(back as Frame), bytes, 'encode again: same bytes');
  const buf = new Uint8Array(bytes.length + 5);
  encodeFrame(f, buf, 5);
  t.same(decodeFrame(buf, 5)?.[0], f);
});

t.test('decodeFrame() waits for a partial frame and refuses an impossible length', async (t) => {
  const bytes = encodeFrame(sample(Uint8Array.of(1, 2, 3)));
  for (let cut = 0; cut < bytes.length; cut++) t.equal(decodeFrame(bytes.subarray(0, cut)), undefined, `${cut} bytes: not yet`);
  t.throws(() => decodeFrame(Uint8Array.of(0, 0, 0, 3, 1)), SyntaxError, 'shorter than a header');
  const huge = new Uint8Array(LENGTH_BYTES);
  new DataView(huge.buffer).setUint32(0, MAX_FRAME + 1);
  t.throws(() => decodeFrame(huge), SyntaxError, 'over the limit');
  t.throws(() => encodeFrame({ ...sample(new Uint8Array(0)), job: new Uint8Array(3) }), RangeError);
  t.throws(() => encodeFrame(sample(new Uint8Array(0)), new Uint8Array(10)), RangeError, 'no room');
});

t.test('FrameReader reassembles frames cut at every byte and glued together', async (t) => {
  const frames = [sample(new Uint8Array(0)), sample(new TextEncoder().encode('señor')), { type: Type.DONE, job, piece: 1, payload: Uint8Array.of(0) }];
  const stream = Uint8Array.from(frames.flatMap((f) => [...encodeFrame(f)]));
  for (let size = 1; size <= stream.length; size += 3) {
    const reader = new FrameReader();
    const got: Frame[] = [];
    for (let at = 0; at < stream.length; at += size) got.push(...reader.push(stream.subarray(at, at + size)));
    t.same(got, frames, `chunks of ${size}`);
    t.equal(reader.buffered, 0);
  }
  const big = sample(new Uint8Array(1_000_000).fill(0x61));
  const reader = new FrameReader();
  const bytes = encodeFrame(big);
  const got: Frame[] = [];
  for (let at = 0; at < bytes.length; at += 65536) got.push(...reader.push(bytes.subarray(at, at + 65536)));
  t.equal(got.length, 1);
  t.equal(got[0]?.payload.length, 1_000_000, 'a 1 MB frame in 64 KiB chunks');
  t.throws(() => new FrameReader().push(Uint8Array.of(0xff, 0xff, 0xff, 0xff)), SyntaxError);
});

t.test('encodeTable()/decodeTable() round trip and refuse malformed tables', async (t) => {
  const table = new Map([['quijote', 2174], ['señor', 1], ['ñandú', 70000]]);
  const bytes = encodeTable(table);
  t.equal(bytes.length, tableLength(table));
  t.same(decodeTable(bytes), table);
  t.same(encodeTable(decodeTable(bytes)), bytes);
  t.same(decodeTable(encodeTable(new Map())), new Map());
  t.throws(() => decodeTable(bytes.subarray(0, bytes.length - 1)), RangeError, 'cut short');
  t.throws(() => decodeTable(Uint8Array.of(...bytes, 0)), RangeError, 'trailing byte');
  const twice = encodeTable(new Map([['a', 1], ['b', 1]]));
  twice[twice.length - 1] = 0x61;
  t.throws(() => decodeTable(twice), SyntaxError, 'a term twice');
  t.throws(() => encodeTable(new Map([['a', 0]])), RangeError);
});

t.test('parseConfig() reads [reducer] and [mapperN] sections', async (t) => {
  const config = parseConfig('; nodes\n[reducer]\nhost = 127.0.0.1\nport = 8000\n\n[mapper2]\nhost = 127.0.0.1\nport = 8002\n[mapper1]\nhost=localhost\nport=8001\n');
  t.same(config.reducer, { name: 'reducer', host: '127.0.0.1', port: 8000 });
  t.same(config.mappers.map((m) => `${m.name} ${m.host}:${m.port}`), ['mapper1 localhost:8001', 'mapper2 127.0.0.1:8002']);
});

t.test('parseConfig() names the file, section or line of a mistake', async (t) => {
  const ok = '[reducer]\nhost = 127.0.0.1\nport = 8000\n';
  t.throws(() => parseConfig(`${ok}[mapper1]\nhost = 127.0.0.1\nport = ochenta\n`, 'c.ini'), /c\.ini \[mapper1\].*port "ochenta"/);
  t.throws(() => parseConfig(ok), /no mappers/);
  t.throws(() => parseConfig('[mapper1]\nhost = 127.0.0.1\nport = 8001\n'), /no \[reducer\]/);
  t.throws(() => parseConfig(`${ok}[nodo1]\nhost = a\nport = 1\n`), /line 4: unknown section \[nodo1\]/);
  t.throws(() => parseConfig(`${ok}[mapper1]\nhots = a\n`), /line 5.*unknown key "hots"/);
  t.throws(() => parseConfig(`${ok}garbage\n`), /line 4: expected/);
  t.throws(() => parseConfig(`${ok}[mapper1]\nhost = a b\nport = 1\n`), /host "a b"/);
  t.throws(() => parseConfig(`${ok}[mapper1]\nhost = h\nport = 1\n[mapper2]\nhost = h\nport = 1\n`), /both h:1/);
});

t.test('readReason(), reasonBytes() and donePayload() bound a text of any length', async (t) => {
  const huge = 'é'.repeat(300 * 1024);
  const bytes = new TextEncoder().encode(huge);
  const shown = readReason(bytes);
  t.ok(Buffer.byteLength(shown) <= MAX_REASON_BYTES + 40, `a 600 kB reason is shown in ${Buffer.byteLength(shown)} bytes`);
  t.match(shown, new RegExp(`… \\(${bytes.length} bytes in all\\)$`), 'saying how long it was');
  t.equal(readReason(new TextEncoder().encode('a\r\nb\u0000c')), 'a\ufffd\ufffdb\ufffdc', 'control characters cannot write lines into a log');
  t.equal(readReason(new TextEncoder().encode('señor')), 'señor', 'a short reason is kept whole');
  const cut = reasonBytes(huge, 7);
  t.equal(new TextDecoder().decode(cut), 'ééé', 'reasonBytes() cuts at a character boundary');
  const done = donePayload(Outcome.DUPLICATE, huge);
  t.equal(done[0], Outcome.DUPLICATE, 'DONE: the outcome first');
  t.ok(done.length <= MAX_REASON_BYTES, `DONE: ${done.length} bytes in all, no stack overflow`);
});
