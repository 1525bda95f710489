import t from 'tap';
import { printable } from './client.ts';
import { escapeText, LineSplitter, MAX_LINE, NAME, parseLine, unescapeText } from './protocol.ts';

t.test('escapeText() puts any text on one line, and unescapeText() restores it', async (t) => {
  for (const text of ['hola', 'a\nb', 'back\\slash', '\\n literal', 'cr\r\nlf', '', 'ñandú 🦩', '\\\\\n\\']) {
    const escaped = escapeText(text);
    t.notMatch(escaped, /[\n\r]/, `${JSON.stringify(text)} has no line break once escaped`);
    t.equal(unescapeText(escaped), text, `${JSON.stringify(text)} round-trips`);
  }
  t.throws(() => unescapeText('bad \\q'), /Invalid escape '\\q'/);
  t.throws(() => unescapeText('trailing \\'), SyntaxError);
});

t.test('LineSplitter finds the same lines however the stream is cut', async (t) => {
  const stream = Buffer.from('NAME ana\r\nMSG hola\nMSG ñandú\n\nQUIT\n');
  for (const step of [1, 2, 3, 7, stream.length]) {
    const splitter = new LineSplitter();
    const lines: string[] = [];
    for (let i = 0; i < stream.length; i += step) lines.push(...splitter.push(stream.subarray(i, i + step)));
    t.same(lines, ['NAME ana', 'MSG hola', 'MSG ñandú', '', 'QUIT'], `chunks of ${step} bytes (ñ split across chunks too)`);
  }
});

t.test('LineSplitter refuses a line over the limit before holding it whole', async (t) => {
  const splitter = new LineSplitter(16);
  t.same(splitter.push(Buffer.from('0123456789')), []);
  t.throws(() => splitter.push(Buffer.from('0123456789')), { name: 'RangeError', message: /20 bytes without a newline, the limit is 16/ });
  t.throws(() => new LineSplitter(16).push(Buffer.from('x'.repeat(16) + '\n')), /17 bytes/, 'the newline counts');
  t.same(new LineSplitter(16).push(Buffer.from('x'.repeat(15) + '\n')), ['x'.repeat(15)], 'exactly the limit is fine');
  t.throws(() => new LineSplitter().push(Buffer.alloc(10 * 1024 * 1024, 0x61)), new RegExp(`limit is ${MAX_LINE}`), 'a 10 MB chunk without a newline');
});

t.test('LineSplitter refuses invalid UTF-8', async (t) => {
  t.throws(() => new LineSplitter().push(Buffer.from([0x4d, 0xff, 0x0a])), { name: 'SyntaxError', message: /not valid UTF-8/ });
});

t.test('parseLine() and NAME', async (t) => {
  t.same(parseLine('MSG hola que tal'), { command: 'MSG', arg: 'hola que tal' });
  t.same(parseLine('QUIT'), { command: 'QUIT', arg: '' });
  t.ok(NAME.test('ana_1.b-c'));
  t.notOk(NAME.test('a b'));
  t.notOk(NAME.test('x'.repeat(33)));
});

t.test('printable() defuses terminal control characters', async (t) => {
  t.equal(printable('\x1b[2Jcleared'), '^[[2Jcleared');
  t.equal(printable('a\nb'), 'a\u21b5 b');
  t.equal(printable('tab\tok ñ'), 'tab\tok ñ');
});
