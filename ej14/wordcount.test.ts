import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import {
  codePointAt,
  countText,
  decodeText,
  formatTable,
  mergeInto,
  parseTable,
  PieceCollector,
  splitPieces,
  type Table,
  termOf,
  totalTokens,
} from './wordcount.ts';

const QUIJOTE = new URL('./data/pg2000.txt', import.meta.url);
const enc = new TextEncoder();

/** Counts each piece apart and merges: what the distributed run computes. */
function countPieces(bytes: Uint8Array, count: number): Table {
  const total: Table = new Map();
  for (const piece of splitPieces(bytes, count)) mergeInto(total, countText(decodeText(bytes.subarray(piece.start, piece.end))));
  return total;
}

t.test('countText() counts letters only, case-folded, Spanish accents and ñ kept', async (t) => {
  const table = countText('¡Señor! SEÑOR, señor... Ñandú ñandú; Pingüino PINGÜINO. Él, el y él: 1605 años-luz don\'t\r\n');
  t.same(Object.fromEntries(table), { señor: 3, ñandú: 2, pingüino: 2, él: 2, el: 1, y: 1, años: 1, luz: 1, don: 1, t: 1 });
});

t.test('termOf() folds case then NFC, so decomposed and precomposed accents are one term', async (t) => {
  t.equal(termOf('CANCIÓN'), 'canción');
  t.equal(termOf('Cancio\u0301n'), 'canción', 'o + combining acute becomes ó');
  t.same(Object.fromEntries(countText('Cancio\u0301n canción')), { canción: 2 }, 'a combining mark does not split a token');
});

t.test('countText() ignores the BOM, CR and LF, digits and punctuation', async (t) => {
  const table = countText(decodeText(Uint8Array.of(0xef, 0xbb, 0xbf, ...enc.encode('En un lugar\r\nde la Mancha, 1605.\r\n'))));
  t.same([...table.keys()], ['en', 'un', 'lugar', 'de', 'la', 'mancha']);
  t.equal(totalTokens(table), 6);
});

t.test('codePointAt() decodes well-formed UTF-8 and refuses continuation bytes and bad sequences', async (t) => {
  const bytes = enc.encode('añ€𝄞');
  t.same(codePointAt(bytes, 0), { cp: 0x61, length: 1 });
  t.same(codePointAt(bytes, 1), { cp: 0xf1, length: 2 });
  t.equal(codePointAt(bytes, 2), undefined, 'the middle of ñ');
  t.same(codePointAt(bytes, 3), { cp: 0x20ac, length: 3 });
  t.same(codePointAt(bytes, 6), { cp: 0x1d11e, length: 4 });
  t.equal(codePointAt(Uint8Array.of(0xc0, 0x80), 0), undefined, 'overlong');
  t.equal(codePointAt(Uint8Array.of(0xed, 0xa0, 0x80), 0), undefined, 'a surrogate');
  t.equal(codePointAt(Uint8Array.of(0xe2, 0x82), 0), undefined, 'truncated');
});

t.test('splitPieces() cuts only before a separator, never inside a word or a multi-byte character', async (t) => {
  // Words of two-byte letters only: any cut at an even share would fall inside one.
  const text = Array.from({ length: 400 }, (_, i) => ['ññññ', 'áéíóú', 'ü', 'señoría'][i % 4]).join(' ');
  const bytes = enc.encode(text);
  for (const count of [1, 2, 3, 5, 7, 16]) {
    const pieces = splitPieces(bytes, count);
    t.ok(pieces.length <= count && pieces.length >= 1, `${count}: ${pieces.length} pieces`);
    t.equal(pieces[0]?.start, 0);
    t.equal(pieces.at(-1)?.end, bytes.length);
    for (const [i, piece] of pieces.entries()) {
      t.equal(piece.id, i + 1);
      if (i > 0) t.equal(piece.start, pieces[i - 1]?.end, 'contiguous');
      if (piece.start > 0) t.equal(bytes[piece.start], 0x20, `piece ${piece.id} of ${count} starts at the space`);
    }
    t.same(countPieces(bytes, count), countText(text), `${count} pieces count like the whole`);
  }
});

t.test('splitPieces() returns fewer pieces when there is no separator to cut at', async (t) => {
  t.same(splitPieces(enc.encode('ñ'.repeat(1000)), 4), [{ id: 1, start: 0, end: 2000 }]);
  t.same(splitPieces(new Uint8Array(0), 3), [{ id: 1, start: 0, end: 0 }]);
  const tail = splitPieces(enc.encode(`${'a'.repeat(100)} b`), 2);
  t.same(tail, [{ id: 1, start: 0, end: 100 }, { id: 2, start: 100, end: 102 }]);
  t.throws(() => splitPieces(new Uint8Array(3), 0), RangeError);
});

t.test('splitPieces() does not cut before an invalid byte or a combining mark', async (t) => {
  const bytes = Uint8Array.of(...enc.encode('aaaa'), 0xff, ...enc.encode('n\u0303n\u0303 x'));
  for (const count of [2, 3, 4]) {
    for (const piece of splitPieces(bytes, count)) {
      if (piece.start > 0) t.equal(bytes[piece.start], 0x20, `a cut of ${count} is at the space`);
    }
  }
});

t.test('the pieces of Don Quijote, counted apart and merged, equal the single-process count exactly', { skip: !existsSync(QUIJOTE) && 'no ej14/data/pg2000.txt' }, async (t) => {
  const one = readFileSync(QUIJOTE);
  const bytes = Buffer.concat([one, one, one]);
  const whole = countText(decodeText(bytes));
  t.ok(whole.size > 20_000, `${whole.size} terms, ${totalTokens(whole)} words`);
  t.equal(whole.get('quijote') !== undefined && whole.get('quijote')! > 0, true);
  t.notOk([...whole.keys()].some((term) => term !== term.toLowerCase() || /[^\p{L}\p{M}]/u.test(term)), 'every term is lower-case letters');
  for (const count of [2, 3, 8, 50]) {
    const split = countPieces(bytes, count);
    t.equal(split.size, whole.size, `${count} pieces: same number of terms`);
    t.same(formatTable(split), formatTable(whole), `${count} pieces: the same table, term for term`);
  }
  // A piece cut at a naive byte offset would differ: the test can fail.
  const naive: Table = new Map();
  const half = Math.floor(bytes.length / 2) + 1;
  mergeInto(naive, countText(decodeText(bytes.subarray(0, half))));
  mergeInto(naive, countText(decodeText(bytes.subarray(half))));
  t.notSame(formatTable(naive), formatTable(whole), 'a cut at the byte half (inside a word) would change the count');
});

t.test('PieceCollector counts one copy per piece and discards later copies', async (t) => {
  const c = new PieceCollector(2);
  t.equal(c.accept(1, new Map([['a', 2]])), true);
  t.equal(c.accept(1, new Map([['a', 2]])), false, 'a second copy of piece 1 is discarded');
  t.equal(c.complete, false);
  t.equal(c.accept(2, new Map([['a', 1], ['b', 5]])), true);
  t.equal(c.complete, true);
  t.same(Object.fromEntries(c.total), { a: 3, b: 5 });
  t.throws(() => c.accept(3, new Map()), RangeError);
  t.throws(() => new PieceCollector(0), RangeError);
});

t.test('formatTable() sorts by count descending then term, and parseTable() reads it back', async (t) => {
  const table: Table = new Map([['b', 2], ['ñu', 5], ['a', 2], ['z', 9]]);
  const text = formatTable(table);
  t.equal(text, 'z\t9\nñu\t5\na\t2\nb\t2\n');
  t.same(parseTable(text), table);
  t.throws(() => parseTable('a 2\n'), SyntaxError);
});
