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
  const usesSubmission = Object.values(parsed).some((section) => Object.values(section).some((v) => String(v).includes('{submission}')));
  if (usesSubmission && !submission) {
    throw new Error(`Target '${nameOrFile}' grades a submission: give its folder with --submission DIR`);
  }
  if (submission && !existsSync(submission)) throw new Error(`Cannot grade: no folder ${submission}`);
  const fill = (value: string) =>
    value.replaceAll('{root}', ROOT).replaceAll('{submission}', submission ? path.resolve(submission) : '');

  const header = parsed.target ?? {};
  const roles = new Map<string, Map<string, string[]>>();
  for (const [section, entries] of Object.entries(parsed)) {
    if (section === 'target') continue;
    if (!/^ej\d\d$/.test(section)) throw new Error(`Target ${file}: section [${section}] is not an exercise (ej01 … ej15)`);
    const exercise = new Map<string, string[]>();
    for (const [role, command] of Object.entries(entries)) {
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
  };
}
