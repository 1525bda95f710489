/**
 * The pure half of ej14's map/reduce word count: what a term is, where a
 * text may be cut into pieces, how tables merge, and how the result is
 * written. master.ts, mapper.ts and reducer.ts only move these around, so
 * the distributed count equals {@link countText} on the whole file, term
 * for term (wordcount.test.ts proves it on Don Quijote).
 *
 * ```ts
 * import { countText, formatTable } from './wordcount.ts';
 * const text = new TextDecoder().decode(await readFile('pg2000.txt'));
 * process.stdout.write(formatTable(countText(text)));
 * ```
 *
 * **What a term is.** The text is UTF-8, decoded with WHATWG `TextDecoder`
 * (a leading BOM dropped, malformed bytes become U+FFFD). A token is a
 * maximal run of code points that are Unicode letters (`\p{L}`: a-z, á é í
 * ó ú ü ñ, any script) or combining marks (`\p{M}`, so that a decomposed
 * "n + ◌̃" stays one word). Everything else separates tokens: spaces, CR and
 * LF, punctuation, digits, apostrophes and hyphens ("don't" is "don" and
 * "t"; "1605" is no term). A term is the token lower-cased with Unicode's
 * default full case mapping (`String.prototype.toLowerCase`, no locale:
 * "Á" → "á", "Ñ" → "ñ") and then NFC-normalised, so that "QUIJOTE",
 * "Quijote" and "quijote" are one term and so are precomposed and
 * decomposed accents.
 *
 * @module
 */

/** A term → frequency table. */
export type Table = Map<string, number>;

/** A token: a maximal run of letters and combining marks. */
const TOKEN = /[\p{L}\p{M}]+/gu;
const TOKEN_CHAR = /^[\p{L}\p{M}]$/u;

/** The term a token stands for: lower-cased (Unicode default mapping), then NFC. */
export function termOf(token: string): string {
  return token.toLowerCase().normalize('NFC');
}

/**
 * Counts the terms of `text` into `into` (a new table by default) and
 * returns it. The one tokeniser of the exercise: mappers count their piece
 * with it, and a single process counting the whole file with it gets the
 * same table as the distributed run.
 */
export function countText(text: string, into: Table = new Map()): Table {
  for (const [token] of text.matchAll(TOKEN)) {
    const term = termOf(token);
    into.set(term, (into.get(term) ?? 0) + 1);
  }
  return into;
}

/** Decodes UTF-8 bytes as every node of the exercise does (BOM dropped, bad bytes → U+FFFD). */
export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder('utf-8').decode(bytes);
}

/** True when the code point is part of a token (a letter or a combining mark). */
export function isTokenCodePoint(cp: number): boolean {
  return TOKEN_CHAR.test(String.fromCodePoint(cp));
}

/**
 * The code point whose UTF-8 encoding starts at `offset` and its length in
 * bytes, or undefined when `offset` is not the start of a well-formed
 * character (a continuation byte, a truncated or overlong sequence, a
 * surrogate): such a place is never a cut.
 */
export function codePointAt(bytes: Uint8Array, offset: number): { cp: number; length: number } | undefined {
  const b0 = bytes[offset];
  if (b0 === undefined) return undefined;
  if (b0 < 0x80) return { cp: b0, length: 1 };
  let length: number;
  let cp: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) [length, cp, min] = [2, b0 & 0x1f, 0x80];
  else if (b0 >= 0xe0 && b0 <= 0xef) [length, cp, min] = [3, b0 & 0x0f, 0x800];
  else if (b0 >= 0xf0 && b0 <= 0xf4) [length, cp, min] = [4, b0 & 0x07, 0x10000];
  else return undefined;
  for (let i = 1; i < length; i++) {
    const b = bytes[offset + i];
    if (b === undefined || (b & 0xc0) !== 0x80) return undefined;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
  return { cp, length };
}

/** A piece of the input: bytes `[start, end)`. */
export interface Piece {
  id: number;
  start: number;
  end: number;
}

/**
 * Cuts `bytes` into at most `count` pieces of about equal size, each cut
 * placed just before a well-formed character that is not part of a token
 * (a space, CR, LF, punctuation), at or after the even share. So no cut
 * ever falls inside a UTF-8 sequence or inside a word, and counting the
 * pieces apart and summing equals counting the whole. Fewer pieces come
 * back when the text has no separator where one is needed (a 5 MB word is
 * one piece); an empty input is one empty piece. Ids are 1, 2, …
 */
export function splitPieces(bytes: Uint8Array, count: number): Piece[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`Cannot split: expected a piece count of at least 1, got ${count}`);
  const pieces: Piece[] = [];
  let start = 0;
  for (let k = 1; k < count; k++) {
    let cut = Math.max(start + 1, Math.floor((bytes.length * k) / count));
    while (cut < bytes.length) {
      const char = codePointAt(bytes, cut);
      if (char && !isTokenCodePoint(char.cp)) break;
      cut += char ? char.length : 1;
    }
    if (cut >= bytes.length) break;
    pieces.push({ id: pieces.length + 1, start, end: cut });
    start = cut;
  }
  pieces.push({ id: pieces.length + 1, start, end: bytes.length });
  return pieces;
}

/** Adds `table`'s counts into `total` and returns `total`. */
export function mergeInto(total: Table, table: Table): Table {
  for (const [term, n] of table) total.set(term, (total.get(term) ?? 0) + n);
  return total;
}

/**
 * The reducer's rule "one copy per piece": remembers which pieces of a job
 * have been counted, merges the first table that arrives for each, and
 * discards any later copy (another mapper that did the same piece).
 */
export class PieceCollector {
  readonly pieces: number;
  readonly total: Table = new Map();
  readonly #stored = new Set<number>();

  constructor(pieces: number) {
    if (!Number.isInteger(pieces) || pieces < 1) throw new RangeError(`Cannot collect: expected at least 1 piece, got ${pieces}`);
    this.pieces = pieces;
  }

  /** Whether `piece` is one of this job's (1 … pieces). */
  valid(piece: number): boolean {
    return Number.isInteger(piece) && piece >= 1 && piece <= this.pieces;
  }

  /** Whether a copy of `piece` has been counted already. */
  has(piece: number): boolean {
    return this.#stored.has(piece);
  }

  /** Counts `table` for `piece` and returns true, or returns false for a duplicate. */
  accept(piece: number, table: Table): boolean {
    if (!this.valid(piece)) throw new RangeError(`Cannot accept piece ${piece}: expected 1-${this.pieces}`);
    if (this.#stored.has(piece)) return false;
    this.#stored.add(piece);
    mergeInto(this.total, table);
    return true;
  }

  get stored(): number {
    return this.#stored.size;
  }

  get complete(): boolean {
    return this.#stored.size === this.pieces;
  }
}

/** Entries sorted as out_file lists them: count descending, then term in code-unit order. */
export function sortedEntries(table: Table): [string, number][] {
  return [...table].sort(([a, m], [b, n]) => n - m || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * out_file's format: one line per term, `term<TAB>count<LF>`, UTF-8 without
 * BOM, sorted by count descending then term (JavaScript's `<`, UTF-16 code
 * units, which is code-point order for every Spanish letter).
 */
export function formatTable(table: Table): string {
  return sortedEntries(table)
    .map(([term, n]) => `${term}\t${n}\n`)
    .join('');
}

/** Reads {@link formatTable}'s output back; a malformed line is a SyntaxError naming it. */
export function parseTable(text: string): Table {
  const table: Table = new Map();
  for (const [index, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const match = /^([^\t]+)\t(\d+)$/.exec(line);
    if (!match) throw new SyntaxError(`Cannot parse table line ${index + 1}: expected "term<TAB>count", got ${JSON.stringify(line.slice(0, 60))}`);
    table.set(match[1] as string, Number(match[2]));
  }
  return table;
}

/** Sum of the counts: the number of tokens. */
export function totalTokens(table: Table): number {
  let sum = 0;
  for (const n of table.values()) sum += n;
  return sum;
}
