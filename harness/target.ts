/**
 * Targets: what the harness grades. A target is an ini manifest with one
 * section per exercise and one `role = command` line per script, so the same
 * scenarios run this project under Node or Deno, or a submission in any
 * language with any file names.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ini from 'ini';

/** This project's folder (the harness lives in `harness/`). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A loaded manifest: where to run, and each exercise's roles as argument vectors. */
export interface Target {
  name: string;
  description: string;
  file: string;
  cwd: string;
  roles: Map<string, Map<string, string[]>>;
  /**
   * The beyond features it declares, per exercise (`features = --root, --json`
   * in `[ejNN]`, or in `[target]` for every exercise; `*` declares them all,
   * as this project's own targets do).
   */
  features: Map<string, Set<string>>;
  /**
   * What it declares where the assignment leaves an input open, per exercise:
   * the keys of `[ejNN.declare]` (`transport = tcp`, `get = --file {file}`).
   */
  declared: Map<string, Map<string, string>>;
}

/** Keys of an `[ejNN]` section that are settings, not roles. */
const RESERVED_KEYS = new Set(['features']);

function featureList(value: unknown): string[] {
  return String(value ?? '').split(',').map((word) => word.trim()).filter(Boolean);
}

/** Whether `target` declares every one of `features` for `exercise`. */
export function declaresAll(target: Target, exercise: string, features: readonly string[]): boolean {
  const declared = target.features.get(exercise) ?? new Set<string>();
  return declared.has('*') || features.every((feature) => declared.has(feature));
}

/** Splits a command into words, honouring single and double quotes (no other shell syntax). */
export function splitCommand(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (const char of command) {
    if (quote) {
      if (char === quote) quote = undefined;
      else word += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (quote) throw new SyntaxError(`Cannot split command: unclosed ${quote} in ${command}`);
  if (inWord) words.push(word);
  return words;
}

/**
 * Loads a target by name (`node`, `deno`, `python`: files in harness/targets)
 * or by path to an ini file. `{root}` and `{submission}` are replaced in the
 * working folder and in every command.
 */
export function loadTarget(nameOrFile: string, submission?: string): Target {
  const file = nameOrFile.endsWith('.ini') || nameOrFile.includes('/')
    ? path.resolve(nameOrFile)
    : path.join(ROOT, 'harness', 'targets', `${nameOrFile}.ini`);
  if (!existsSync(file)) {
    throw new Error(`Cannot load target '${nameOrFile}': no file ${file} (expected node, deno, python or a path to an .ini manifest)`);
  }
  const parsed = ini.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>;
  const usesSubmission = Object.values(parsed).some((section) => JSON.stringify(section).includes('{submission}'));
  if (usesSubmission && !submission) {
    throw new Error(`Target '${nameOrFile}' grades a submission: give its folder with --submission DIR`);
  }
  if (submission && !existsSync(submission)) throw new Error(`Cannot grade: no folder ${submission}`);
  const fill = (value: string) =>
    value.replaceAll('{root}', ROOT).replaceAll('{submission}', submission ? path.resolve(submission) : '');

  const header = parsed.target ?? {};
  const everywhere = featureList(header.features);
  const roles = new Map<string, Map<string, string[]>>();
  const features = new Map<string, Set<string>>();
  const declared = new Map<string, Map<string, string>>();
  for (const [section, entries] of Object.entries(parsed)) {
    if (section === 'target') continue;
    if (!/^ej\d\d$/.test(section)) throw new Error(`Target ${file}: section [${section}] is not an exercise (ej01 … ej15)`);
    const exercise = new Map<string, string[]>();
    features.set(section, new Set([...everywhere, ...featureList(entries.features)]));
    const declarations = new Map<string, string>();
    declared.set(section, declarations);
    for (const [role, command] of Object.entries(entries)) {
      if (RESERVED_KEYS.has(role)) continue;
      if (role === 'declare' && typeof command === 'object' && command !== null) {
        // ini parses [ej10.declare] as the key `declare` of [ej10].
        for (const [key, value] of Object.entries(command)) declarations.set(key, fill(String(value)));
        continue;
      }
      if (typeof command !== 'string' || command.trim() === '') {
        throw new Error(`Target ${file}: [${section}] ${role} must be a command`);
      }
      // Split first, then fill: a folder with spaces in its name stays one word.
      exercise.set(role, splitCommand(command).map(fill));
    }
    roles.set(section, exercise);
  }
  return {
    name: path.basename(file, '.ini'),
    description: String(header.description ?? path.basename(file)),
    file,
    cwd: fill(String(header.cwd ?? '{root}')),
    roles,
    features,
    declared,
  };
}
