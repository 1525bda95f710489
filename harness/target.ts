/**
 * Targets: what the harness grades. A target is an ini manifest with one
 * section per exercise and one `role = command` line per script, so the same
 * scenarios run this project under Node or Deno, or a submission in any
 * language with any file names.
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
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
  /**
   * Each exercise's working folder where it is not {@link cwd}: in a whole
   * practical, its own folder (detected, or `[ejNN] cwd = …`).
   */
  cwds: Map<string, string>;
  /** Exercises of a whole practical that have no folder, with the sentence that says so. */
  absent: Map<string, string>;
}

/** `target` as one exercise sees it: its own working folder as `cwd`. */
export function exerciseTarget(target: Target, exercise: string): Target {
  const cwd = target.cwds.get(exercise);
  return cwd === undefined || cwd === target.cwd ? target : { ...target, cwd };
}

/** The exercise number a folder's name gives (`Ejercicio_1`, `ejercicio 01`, `ej1`, `Punto 1`, `Ej-1`), if any. */
export function exerciseOfFolder(name: string): number | undefined {
  const match = /^(?:ejercicio|ejerc|ejer|ej|exercise|ex|punto)0*(\d{1,2})$/.exec(name.toLowerCase().replace(/[\s_\-.]/g, ''));
  const n = match ? Number(match[1]) : NaN;
  return n >= 1 && n <= 15 ? n : undefined;
}

function folders(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/**
 * The exercise folders of a whole practical: `ejNN` → folder, by name, in
 * `submission` or one level down (`TP2/Ejercicio_3`). A folder at the top
 * wins over one below; among equals, the first in name order.
 */
export function detectExerciseFolders(submission: string): Map<string, string> {
  const found = new Map<string, string>();
  const take = (dir: string, name: string) => {
    const n = exerciseOfFolder(name);
    const exercise = n === undefined ? undefined : `ej${String(n).padStart(2, '0')}`;
    if (exercise && !found.has(exercise)) found.set(exercise, path.join(dir, name));
    return exercise !== undefined;
  };
  const below: string[] = [];
  for (const name of folders(submission)) if (!take(submission, name)) below.push(name);
  for (const name of below) for (const inner of folders(path.join(submission, name))) take(path.join(submission, name), inner);
  return found;
}

/** Keys of an `[ejNN]` section that are settings, not roles. */
const RESERVED_KEYS = new Set(['features', 'cwd']);

function featureList(value: unknown): string[] {
  return String(value ?? '').split(',').map((word) => word.trim()).filter(Boolean);
}

/** Whether `target` declares every one of `features` for `exercise`. */
export function declaresAll(target: Target, exercise: string, features: readonly string[]): boolean {
  const declared = target.features.get(exercise) ?? new Set<string>();
  return declared.has('*') || features.every((feature) => declared.has(feature));
}

/**
 * `command` with each word that names an existing file relative to `cwd`
 * (`ejer3.py`, `sub/x.py`, `ej01/tcp-server.ts`) made absolute, so the
 * script is found whatever working folder a scenario starts it in (ej08 and
 * ej14 start roles in a folder of their own config.ini). Options, folders and
 * words naming no file are left as they are.
 */
export function absoluteScripts(command: readonly string[], cwd: string): string[] {
  return command.map((word) => {
    if (word === '' || word.startsWith('-') || path.isAbsolute(word)) return word;
    const full = path.resolve(cwd, word);
    try {
      return statSync(full).isFile() ? full : word;
    } catch {
      return word;
    }
  });
}

/**
 * The script file a role's command runs: the first word after the
 * interpreter that looks like a file (`python3 ejer3.py` → `ejer3.py`,
 * `deno run -A ej01/x.ts` → `ej01/x.ts`), or the program itself when it is
 * a path (`./server`). Undefined for inline code (`python3 -c …`, `-m mod`).
 */
export function scriptOf(command: readonly string[]): string | undefined {
  for (const word of command.slice(1)) {
    if (['-c', '-m', '-e', '--eval'].includes(word)) return undefined;
    if (word.startsWith('-')) continue;
    if (/\.[A-Za-z0-9]{1,5}$/.test(word) || word.includes('/')) return word;
  }
  const first = command[0];
  return first?.includes('/') ? first : undefined;
}

/**
 * The scripts of `exercise`'s roles that do not exist, each with the roles
 * that run it: `ejer3.py` → {wget, wget-proxy}. Relative to `cwd`.
 */
export function missingScripts(target: Target, exercise: string, cwd = target.cwd): Map<string, Set<string>> {
  const missing = new Map<string, Set<string>>();
  for (const [role, command] of target.roles.get(exercise) ?? []) {
    const script = scriptOf(command);
    if (script === undefined || existsSync(path.resolve(cwd, script))) continue;
    const shown = path.isAbsolute(script) && !path.relative(cwd, script).startsWith('..') ? path.relative(cwd, script) : script;
    if (!missing.has(shown)) missing.set(shown, new Set());
    missing.get(shown)?.add(role);
  }
  return missing;
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
  const practical = submission ? path.resolve(submission) : '';
  const fillWith = (value: string, folder: string) => value.replaceAll('{root}', ROOT).replaceAll('{submission}', folder);
  const fill = (value: string) => fillWith(value, practical);

  const header = parsed.target ?? {};
  const cwd = fill(String(header.cwd ?? '{root}'));
  // A whole practical (one folder per exercise) when the submission has
  // exercise folders or the manifest maps one; then {submission} stands,
  // for each exercise, for its own folder.
  const sections = Object.entries(parsed).filter(([section]) => section !== 'target');
  const mapped = new Map<string, string>();
  for (const [section, entries] of sections) {
    if (typeof entries.cwd === 'string' && entries.cwd.trim() !== '') mapped.set(section, path.resolve(practical || cwd, fill(entries.cwd.trim())));
  }
  const detected = usesSubmission && practical ? detectExerciseFolders(practical) : new Map<string, string>();
  const whole = usesSubmission && practical !== '' && (detected.size > 0 || mapped.size > 0);
  const cwds = new Map<string, string>();
  const absent = new Map<string, string>();
  const everywhere = featureList(header.features);
  const roles = new Map<string, Map<string, string[]>>();
  const features = new Map<string, Set<string>>();
  const declared = new Map<string, Map<string, string>>();
  for (const [section, entries] of Object.entries(parsed)) {
    if (section === 'target') continue;
    if (!/^ej\d\d$/.test(section)) throw new Error(`Target ${file}: section [${section}] is not an exercise (ej01 … ej15)`);
    const exercise = new Map<string, string[]>();
    // The exercise's own folder: mapped, detected in a whole practical, or the submission.
    let folder = mapped.get(section) ?? (whole ? detected.get(section) : practical || undefined);
    if (mapped.has(section) && folder !== undefined && !existsSync(folder)) {
      absent.set(section, `no folder ${folder} for ${section} (its [${section}] cwd in ${file})`);
      folder = undefined;
    } else if (folder === undefined && whole) {
      const n = Number(section.slice(2));
      const two = section.slice(2);
      absent.set(section, `no folder for ${section} in ${practical} (looked for Ejercicio_${n}, Ejercicio${n}, ej${two}, ej${n}, Punto ${n} …, also one level down; or map it: [${section}] cwd = FOLDER)`);
    }
    const here = folder === undefined ? cwd : fillWith(String(header.cwd ?? '{root}'), folder);
    if (usesSubmission || mapped.has(section)) cwds.set(section, here);
    const fillHere = (value: string) => fillWith(value, folder ?? practical);
    features.set(section, new Set([...everywhere, ...featureList(entries.features)]));
    const declarations = new Map<string, string>();
    declared.set(section, declarations);
    for (const [role, command] of Object.entries(entries)) {
      if (RESERVED_KEYS.has(role)) continue;
      if (role === 'declare' && typeof command === 'object' && command !== null) {
        // ini parses [ej10.declare] as the key `declare` of [ej10].
        for (const [key, value] of Object.entries(command)) declarations.set(key, fillHere(String(value)));
        continue;
      }
      if (typeof command !== 'string' || command.trim() === '') {
        throw new Error(`Target ${file}: [${section}] ${role} must be a command`);
      }
      // Split first, then fill: a folder with spaces in its name stays one word.
      exercise.set(role, absoluteScripts(splitCommand(command).map(fillHere), here));
    }
    roles.set(section, exercise);
  }
  return {
    name: path.basename(file, '.ini'),
    description: String(header.description ?? path.basename(file)),
    file,
    cwd,
    roles,
    features,
    declared,
    cwds,
    absent,
  };
}
