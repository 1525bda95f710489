import t from 'tap';
import { decodeList, decodeMessage, encodeList, encodeMessage, MAX_DATAGRAM, type Message } from './protocol.ts';

const id = '0123456789abcdef';
const enc = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

t.test('every datagram type survives a round trip, byte for byte', async (t) => {
  const messages: Message[] = [
    { v: 1, type: 'hello', id, port: 8000, gen: 7, count: 12 },
    { v: 1, type: 'bye', id, port: 8005 },
    { v: 1, type: 'query', id, port: 43210 },
  ];
  for (const message of messages) {
    const bytes = encodeMessage(message);
    t.ok(bytes.length <= MAX_DATAGRAM, `${message.type} is ${bytes.length} bytes`);
    const decoded = decodeMessage(bytes);
    t.same(decoded, message, `${message.type} decodes to itself`);
    t.same(encodeMessage(decoded), bytes, `${message.type} encodes again to the same bytes`);
  }
  t.equal(new TextDecoder().decode(encodeMessage(messages[0] as Message)), '{"v":1,"type":"hello","id":"0123456789abcdef","port":8000,"gen":7,"count":12}');
});

t.test('decodeMessage() ignores unknown extra fields and keeps only the known ones', async (t) => {
  t.same(decodeMessage(enc({ v: 1, type: 'bye', id, port: 8000, extra: 'x' })), { v: 1, type: 'bye', id, port: 8000 });
});

t.test('decodeMessage() says what is wrong with garbage', async (t) => {
  const cases: [Uint8Array, RegExp, string][] = [
    [new Uint8Array([0xff, 0xfe, 0x00]), /not UTF-8/, 'SyntaxError'],
    [new TextEncoder().encode('hola'), /not JSON/, 'SyntaxError'],
    [enc([1, 2]), /expected a JSON object/, 'SyntaxError'],
    [enc(null), /expected a JSON object/, 'SyntaxError'],
    [enc({ v: 2, type: 'hello', id, port: 8000, gen: 0, count: 0 }), /expected version 1, got 2/, 'RangeError'],
    [enc({ type: 'hello', id, port: 8000, gen: 0, count: 0 }), /expected version 1, got none/, 'RangeError'],
    [enc({ v: 1, type: 'hello', id: 'xyz', port: 8000, gen: 0, count: 0 }), /expected id of 16 hex digits, got "xyz"/, 'SyntaxError'],
    [enc({ v: 1, type: 'hello', id, port: 0, gen: 0, count: 0 }), /expected port an integer 1-65535, got 0/, 'SyntaxError'],
    [enc({ v: 1, type: 'hello', id, port: '8000', gen: 0, count: 0 }), /expected port an integer/, 'SyntaxError'],
    [enc({ v: 1, type: 'hello', id, port: 8000, gen: 1.5, count: 0 }), /expected gen an integer/, 'SyntaxError'],
    [enc({ v: 1, type: 'hello', id, port: 8000, gen: 0 }), /expected count an integer .* got nothing/, 'SyntaxError'],
    [enc({ v: 1, type: 'shout', id, port: 8000 }), /unknown type "shout"/, 'SyntaxError'],
    [new Uint8Array(MAX_DATAGRAM + 1).fill(0x20), /513 bytes, at most 512/, 'RangeError'],
  ];
  for (const [bytes, message, name] of cases) t.throws(() => decodeMessage(bytes), { name, message }, String(message));
});

t.test('encodeMessage() refuses to build a datagram over the bound', async (t) => {
  t.throws(() => encodeMessage({ v: 1, type: 'bye', id: 'a'.repeat(600), port: 1 }), { name: 'RangeError', message: /at most 512/ });
});

t.test('a list survives a round trip; names come back sorted and without duplicates', async (t) => {
  const line = encodeList({ v: 1, type: 'list', id, gen: 3, docs: ['b.txt', 'a/ñandú.pdf', 'b.txt'] });
  t.ok(line.endsWith('\n'), 'one line');
  t.equal(line.indexOf('\n'), line.length - 1, 'exactly one newline');
  t.same(decodeList(line), { v: 1, type: 'list', id, gen: 3, docs: ['a/ñandú.pdf', 'b.txt'] });
  const big = Array.from({ length: 5000 }, (_, i) => `doc-${String(i).padStart(5, '0')}.txt`);
  t.same(decodeList(encodeList({ v: 1, type: 'list', id, gen: 0, docs: big })).docs, big, '5000 names, far beyond one datagram');
});

t.test('decodeList() refuses bad names and wrong shapes', async (t) => {
  const base = { v: 1, type: 'list', id, gen: 0 };
  t.throws(() => decodeList(JSON.stringify({ ...base, docs: ['ok', 'bad\nname'] })), { message: /bad document name "bad\\nname"/ });
  t.throws(() => decodeList(JSON.stringify({ ...base, docs: [''] })), { message: /bad document name ""/ });
  t.throws(() => decodeList(JSON.stringify({ ...base, docs: [42] })), { message: /bad document name 42/ });
  t.throws(() => decodeList(JSON.stringify({ ...base, docs: ['x'.repeat(1025)] })), { message: /bad document name/ });
  t.throws(() => decodeList(JSON.stringify({ ...base, docs: 'a.txt' })), { message: /expected docs to be an array/ });
  t.throws(() => decodeList(JSON.stringify({ ...base, type: 'hello', docs: [] })), { message: /expected type "list"/ });
  t.throws(() => decodeList('{"v":1'), { name: 'SyntaxError', message: /not JSON/ });
});

t.test('decodeMessage() and decodeList() errors never carry control or bidi characters to the log', async (t) => {
  const raw = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
  for (const bytes of [
    enc({ v: 1, type: 'hello', id: '\u009b2J\u202e', port: 8000, gen: 0, count: 0 }),
    enc({ v: 1, type: '\u009b31m', id, port: 8000 }),
    enc({ v: '\u202e', type: 'hello', id, port: 8000 }),
    enc({ v: 1, type: 'hello', id, port: '\u009b', gen: 0, count: 0 }),
  ]) {
    try {
      decodeMessage(bytes);
      t.fail('decoded');
    } catch (error) {
      t.notMatch((error as Error).message, raw, (error as Error).message);
    }
  }
  try {
    decodeList(JSON.stringify({ v: 1, type: 'list', id, gen: 0, docs: ['bad\u0000\u009b\u202ename'] }));
    t.fail('decoded');
  } catch (error) {
    t.notMatch((error as Error).message, raw, (error as Error).message);
  }
});

t.test('with a key, datagrams and lists carry ts and an HMAC-SHA256 mac; without it or with another key they are refused', async (t) => {
  const key = new TextEncoder().encode('a shared key of 32 bytes, test!!');
  const other = new TextEncoder().encode('another key, also 32 bytes long!');
  const hello: Message = { v: 1, type: 'hello', id, port: 8000, gen: 7, count: 12, ts: 1_700_000_000_000 };
  const bytes = encodeMessage(hello, key);
  const text = new TextDecoder().decode(bytes);
  t.match(text, /^\{"v":1,"type":"hello","id":"0123456789abcdef","port":8000,"gen":7,"count":12,"ts":1700000000000,"mac":"[0-9a-f]{64}"\}$/);
  t.same(decodeMessage(bytes, key), hello, 'decodes with the key, ts included');
  t.same(encodeMessage(decodeMessage(bytes, key), key), bytes, 'and encodes again to the same bytes');
  t.same(decodeMessage(bytes), { v: 1, type: 'hello', id, port: 8000, gen: 7, count: 12 }, 'a node without a key reads it as a plain hello');
  t.throws(() => decodeMessage(bytes, other), { message: /wrong mac/ }, 'another key');
  t.throws(() => decodeMessage(encodeMessage({ v: 1, type: 'hello', id, port: 8000, gen: 7, count: 12 }), key), { name: 'SyntaxError', message: /no mac/ }, 'no mac');
  const altered = text.replace('"gen":7', '"gen":8');
  t.throws(() => decodeMessage(new TextEncoder().encode(altered), key), { message: /wrong mac/ }, 'a field changed after signing');
  const noTs = text.replace(',"ts":1700000000000', '');
  t.throws(() => decodeMessage(new TextEncoder().encode(noTs), key), { message: /expected ts|wrong mac/ }, 'ts removed');
  t.throws(() => encodeMessage({ v: 1, type: 'bye', id, port: 8000 }, key), { name: 'TypeError' }, 'signing needs a ts');
  for (const type of ['bye', 'query'] as const) {
    const message: Message = { v: 1, type, id, port: 8001, ts: 5 };
    t.same(decodeMessage(encodeMessage(message, key), key), message, `${type} round trip with a key`);
  }

  const list = encodeList({ v: 1, type: 'list', id, gen: 3, ts: 9, docs: ['a.txt', 'b.txt'] }, key);
  t.same(decodeList(list, key), { v: 1, type: 'list', id, gen: 3, ts: 9, docs: ['a.txt', 'b.txt'] });
  t.throws(() => decodeList(list, other), { message: /wrong mac/ });
  t.throws(() => decodeList(list.replace('"b.txt"', '"evil.txt"'), key), { message: /wrong mac/ }, 'a name injected');
  t.throws(() => decodeList(encodeList({ v: 1, type: 'list', id, gen: 3, docs: ['evil.txt'] }), key), { message: /no mac/ });
});
