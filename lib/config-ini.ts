/**
 * config.ini files as the assignment writes them: one `[section]` per node,
 * each with `host =` and `port =` (ej08's backends, ej13's ring, ej14's
 * mappers and reducer).
 *
 * ```ts
 * const nodes = parseHostSections(text, { file: 'config.ini', what: 'nodes', example: '[nodo0]',
 *   header: '[nodoX]', checkSection: (name) => (/^nodo\d+$/.test(name) ? undefined : `section [${name}] must be [nodoX]`),
 *   error: (message, line) => new SyntaxError(message) });
 * const file = configPath(opts.config, BUNDLED_CONFIG);     // --config, ./config.ini, or the example
 * const config = await loadConfigFile(file, parseConfig);  // exit 2 with the reason on a bad file
 * ```
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import ini from 'ini';
import { CliError } from './main.ts';
import { fsReason } from './fs-errors.ts';

/** One `[section]` with its host and port, and the line of its header. */
export interface HostSection {
  name: string;
  host: string;
  port: number;
  line: number;
}

/** How {@link parseHostSections} names and checks an exercise's sections. */
export interface HostSectionsOptions {
  /** The file's name, in every message. */
  file?: string;
  /** Why a section name is refused (`section [x] must be [nodoX] …`), or undefined when it is fine. */
  checkSection(name: string): string | undefined;
  /** What the sections are, for an empty file: `backends`, `nodes`. */
  what: string;
  /** A section to suggest: `[nodo1]`. */
  example: string;
  /** The header form named when a line is neither a header nor `key = value`: `[section]`, `[nodoX]`. */
  header: string;
  /** Makes the exercise's own error (its class keeps the line). */
  error(message: string, line?: number): Error;
}

const KEYS = ['host', 'port'] as const;

/**
 * Reads `[section] host = … port = …` entries in file order. The `ini`
 * package reads the values; a line scan first checks what `ini` would accept
 * in silence (a line without `=`, a key outside a section, a misspelt or
 * repeated key, a section given twice), so that each mistake is reported
 * with its file, line and section.
 */
export function parseHostSections(source: string, options: HostSectionsOptions): HostSection[] {
  const { file = 'config.ini', checkSection, what, example, header: headerForm, error } = options;
  const text = source.replace(/^\uFEFF/, '');
  const where = (line: number, section?: string) => `${file} line ${line}${section ? ` [${section}]` : ''}`;
  const sections = new Map<string, { line: number; keys: Map<string, number> }>();
  let current: { name: string; keys: Map<string, number> } | undefined;
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const n = index + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    const header = /^\[(.*)\]$/.exec(line);
    if (header) {
      const name = (header[1] ?? '').trim();
      const refused = checkSection(name);
      if (refused !== undefined) throw error(`Cannot use ${where(n)}: ${refused}`, n);
      if (sections.has(name)) throw error(`Cannot use ${where(n, name)}: section [${name}] already appears on line ${sections.get(name)?.line}`, n);
      current = { name, keys: new Map() };
      sections.set(name, { line: n, keys: current.keys });
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw error(`Cannot use ${where(n, current?.name)}: expected "${headerForm}" or "key = value", got ${JSON.stringify(line)}`, n);
    const key = line.slice(0, eq).trim();
    if (!current) throw error(`Cannot use ${where(n)}: "${key}" is outside any section (put it under a ${example} header)`, n);
    if (key !== 'host' && key !== 'port') throw error(`Cannot use ${where(n, current.name)}: unknown key "${key}" (expected host and port)`, n);
    if (current.keys.has(key)) throw error(`Cannot use ${where(n, current.name)}: "${key}" is already set on line ${current.keys.get(key)}`, n);
    current.keys.set(key, n);
  }
  if (sections.size === 0) throw error(`Cannot use ${file}: no ${what} (expected sections such as ${example} with host = and port =)`);

  const values = ini.parse(text) as Record<string, Record<string, unknown>>;
  const result: HostSection[] = [];
  for (const [name, { line, keys }] of sections) {
    for (const key of KEYS) {
      if (!keys.has(key)) throw error(`Cannot use ${where(line, name)}: section [${name}] has no ${key} =`, line);
    }
    const entry = values[name] ?? {};
    const host = String(entry.host ?? '').trim();
    const port = String(entry.port ?? '').trim();
    const hostLine = keys.get('host') ?? line;
    const portLine = keys.get('port') ?? line;
    if (net.isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) {
      throw error(`Cannot use ${where(hostLine, name)}: host ${JSON.stringify(host)} is not an IP address or host name`, hostLine);
    }
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw error(`Cannot use ${where(portLine, name)}: port ${JSON.stringify(port)} is not a port number (1-65535)`, portLine);
    }
    result.push({ name, host, port: Number(port), line });
  }
  return result;
}

/** Which config.ini to read: `--config` when given, else `./config.ini` in `cwd`, else `bundled` (the example beside the script). */
export function configPath(option: string | undefined, bundled: string, cwd = process.cwd()): string {
  if (option !== undefined) return option;
  const local = path.join(cwd, 'config.ini');
  return existsSync(local) ? local : bundled;
}

/**
 * Reads `file` and parses it with `parse`. A file that cannot be read, or
 * that `parse` refuses with a SyntaxError (the exercises' config errors are
 * SyntaxErrors), is a {@link CliError} with exit 2 and the reason.
 */
export async function loadConfigFile<T>(file: string, parse: (text: string, file: string) => T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${fsReason(error, 'file')}`, 2);
  }
  try {
    return parse(text, file);
  } catch (error) {
    if (error instanceof SyntaxError) throw new CliError(error.message, 2);
    throw error;
  }
}
