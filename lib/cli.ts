/**
 * Command lines in the assignment's form, on `node:util` `parseArgs`.
 *
 * Every exercise declares its options once; this module turns that declaration
 * into a parser that refuses unknown flags, a `usage:` line shaped like
 * Python's argparse (the assignment's scripts were argparse scripts, and the
 * grader compares usage lines), and a help text with the defaults in words.
 *
 * ```ts
 * const command = defineCommand({
 *   name: 'tcp-server.ts',
 *   summary: 'Echo server (RFC 862) over TCP.',
 *   options: {
 *     host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
 *     port: { type: 'string', default: '7007', help: 'port to listen on' },
 *   },
 * });
 * const opts = command.parseOrExit(process.argv.slice(2));
 * ```
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { isIP } from 'node:net';

/** One option of a command: a `--flag` that takes a value, or a switch. */
export type OptionSpec =
  | {
      type: 'string';
      help: string;
      short?: string;
      /** Name shown for the value in usage (`--port PORT`); defaults to the upper-cased option name. */
      metavar?: string;
      default?: string;
      required?: boolean;
      multiple?: boolean;
    }
  | { type: 'boolean'; help: string; short?: string };

/** A positional argument, as ej14's `master.ts in_file out_file` has. */
export interface PositionalSpec {
  name: string;
  help: string;
  optional?: boolean;
  /** Takes every remaining argument (only the last positional may). */
  variadic?: boolean;
}

/** The whole declaration of a command line. */
export interface CommandSpec<O extends Record<string, OptionSpec>> {
  /** The script's file name as the user types it, e.g. `tcp-server.ts`. */
  name: string;
  /** One sentence saying what the command does. */
  summary: string;
  options: O;
  positionals?: readonly PositionalSpec[];
  /** Text printed after the options: examples, exit codes. */
  epilog?: string;
}

type ValueOf<S extends OptionSpec> = S extends { type: 'boolean' }
  ? boolean
  : S extends { multiple: true }
    ? string[]
    : S extends { default: string }
      ? string
      : S extends { required: true }
        ? string
        : string | undefined;

/** The parsed values, typed from the declaration. */
export type Values<O extends Record<string, OptionSpec>> = { [K in keyof O]: ValueOf<O[K]> } & {
  _: string[];
};

/**
 * A mistake on the command line. Scripts let it reach {@link Command.parseOrExit}
 * or {@link runMain}, which print it with the usage line and exit 2.
 */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A parser, usage line and help text made from one {@link CommandSpec}. */
export interface Command<O extends Record<string, OptionSpec>> {
  readonly spec: CommandSpec<O>;
  /** Parses `argv` (without the runtime and script), throwing {@link UsageError} on a mistake. */
  parse(argv: readonly string[]): Values<O> | 'help';
  /** Parses, printing help (exit 0) or the mistake and usage (exit 2) as argparse does. */
  parseOrExit(argv: readonly string[]): Values<O>;
  usage(): string;
  help(): string;
}

/** Usage lines of the commands declared in this process, by name, for {@link usageOf}. */
const usages = new Map<string, string>();

/**
 * The usage line of the command declared under `name`, so that a
 * {@link UsageError} thrown after parsing (a bad `--port` value) is reported
 * with the usage too, as argparse does. Undefined for an unknown name.
 */
export function usageOf(name: string): string | undefined {
  return usages.get(name);
}

/** Declares a command line once; see the module example. */
export function defineCommand<O extends Record<string, OptionSpec>>(spec: CommandSpec<O>): Command<O> {
  usages.set(spec.name, usageLine(spec));
  const command: Command<O> = {
    spec,
    parse: (argv) => parse(spec, argv),
    parseOrExit(argv) {
      let values: Values<O> | 'help';
      try {
        values = parse(spec, argv);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        exitWithUsageError(spec.name, command.usage(), error.message);
      }
      if (values === 'help') {
        process.stdout.write(command.help());
        process.exit(0);
      }
      return values;
    },
    usage: () => usageLine(spec),
    help: () => helpText(spec),
  };
  return command;
}

function exitWithUsageError(name: string, usage: string, message: string): never {
  process.stderr.write(`${usage}\n${name}: error: ${message}\n`);
  process.exit(2);
}

function parse<O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  argv: readonly string[],
): Values<O> | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, option] of Object.entries(spec.options)) {
    options[name] = {
      type: option.type,
      ...(option.short === undefined ? {} : { short: option.short }),
      ...(option.type === 'string' && option.multiple ? { multiple: true } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(spec.options, argv), options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(describeParseError(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) return 'help';

  const result: Record<string, unknown> = { _: positionals };
  for (const [name, option] of Object.entries(spec.options)) {
    const value = values[name];
    if (option.type === 'boolean') {
      result[name] = value === true;
    } else if (value === undefined) {
      if (option.required) throw new UsageError(`the following arguments are required: --${name}`);
      result[name] = option.multiple ? [] : option.default;
    } else {
      result[name] = value;
    }
  }
  const declared = spec.positionals ?? [];
  const needed = declared.filter((p) => !p.optional);
  if (positionals.length < needed.length) {
    const missing = needed.slice(positionals.length).map((p) => p.name);
    throw new UsageError(`the following arguments are required: ${missing.join(', ')}`);
  }
  if (positionals.length > declared.length && !declared.at(-1)?.variadic) {
    throw new UsageError(`unrecognized arguments: ${positionals.slice(declared.length).join(' ')}`);
  }
  return result as Values<O>;
}

/** A negative number (`-1000`, `-0.5`, `-.5`), which parseArgs would take for a flag. */
const NEGATIVE_NUMBER = /^-(\d+\.?\d*|\.\d+)$/;

/**
 * Rewrites `--opt -1000` and `-o -1000` as `--opt=-1000` for the options
 * that take a value, so that a negative number reaches the option's own
 * check (`--skew -1000` is a skew; `--timeout -1` gets "expected a positive
 * number") instead of parseArgs' "argument missing". Nothing after `--`.
 */
function joinNegativeValues(declared: Record<string, OptionSpec>, argv: readonly string[]): string[] {
  const takesValue = new Map<string, string>();
  for (const [name, option] of Object.entries(declared)) {
    if (option.type !== 'string') continue;
    takesValue.set(`--${name}`, name);
    if (option.short !== undefined) takesValue.set(`-${option.short}`, name);
  }
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const name = takesValue.get(arg);
    const next = argv[i + 1];
    if (name !== undefined && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      args.push(`--${name}=${next}`);
      i++;
    } else {
      args.push(arg);
    }
  }
  return args;
}

/** Turns parseArgs' messages (which differ between Node and Deno) into argparse's plain words. */
function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  // The first quoted part names the option: '--bogus', '--port <value>' or '-d, --data <value>'.
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? '';
  const flag = quoted.match(/-{1,2}[^\s,<]+/g)?.join('/');
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) return `unrecognized arguments: ${flag}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) {
    // "argument missing" (at the end) and "ambiguous" (followed by another flag) both lack the value.
    return /does not take an argument/.test(message)
      ? `argument ${flag}: ignored explicit argument`
      : `argument ${flag}: expected one argument`;
  }
  return message.split('\n')[0] ?? message;
}

function optionToken(name: string, option: OptionSpec): string {
  if (option.type === 'boolean') return `--${name}`;
  return `--${name} ${option.metavar ?? name.toUpperCase()}`;
}

function usageLine(spec: CommandSpec<Record<string, OptionSpec>>): string {
  const parts = ['[-h]'];
  for (const [name, option] of Object.entries(spec.options)) {
    const token = optionToken(name, option);
    parts.push(option.type === 'string' && option.required ? token : `[${token}]`);
  }
  for (const positional of spec.positionals ?? []) {
    const token = positional.variadic ? `${positional.name} ...` : positional.name;
    parts.push(positional.optional ? `[${token}]` : token);
  }
  return `usage: ${spec.name} ${parts.join(' ')}`;
}

function helpText(spec: CommandSpec<Record<string, OptionSpec>>): string {
  const rows: [string, string][] = [['-h, --help', 'show this help message and exit']];
  for (const [name, option] of Object.entries(spec.options)) {
    const short = option.short ? `-${option.short}, ` : '';
    let help = option.help;
    if (option.type === 'string' && option.default !== undefined) help += ` (default: ${option.default})`;
    if (option.type === 'string' && option.required) help += ' (required)';
    rows.push([short + optionToken(name, option), help]);
  }
  const width = Math.min(28, Math.max(...rows.map(([left]) => left.length)) + 2);
  const format = ([left, right]: [string, string]) =>
    left.length + 2 > width ? `  ${left}\n  ${' '.repeat(width)}${right}` : `  ${left.padEnd(width)}${right}`;

  let text = `${usageLine(spec)}\n\n${spec.summary}\n`;
  if (spec.positionals?.length) {
    text += `\npositional arguments:\n${spec.positionals.map((p) => format([p.name, p.help])).join('\n')}\n`;
  }
  text += `\noptions:\n${rows.map(format).join('\n')}\n`;
  if (spec.epilog) text += `\n${spec.epilog.trim()}\n`;
  return text;
}

/**
 * Reads a port number from an option's text: an integer 0–65535 written in
 * plain digits (`Number('1e3')` and `parseInt('80abc')` would both lie).
 * Port 0 means "any free port" to a server; a client, which must name the
 * server's real port, passes `{ zero: false }` to refuse it in words.
 */
export function parsePort(text: string, option = 'port', { zero = true }: { zero?: boolean } = {}): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`argument --${option}: expected a port number ${zero ? 0 : 1}-65535, got '${text}'`);
  }
  const port = Number(text);
  if (port === 0 && !zero) {
    throw new UsageError(`argument --${option}: port 0 cannot be connected to (it means "any free port" to a server); give the server's port, 1-65535`);
  }
  return port;
}

/** Reads a positive number (seconds, counts) from an option's text. */
export function parsePositive(text: string, option: string, { integer = false } = {}): number {
  const pattern = integer ? /^\d+$/ : /^(\d+\.?\d*|\.\d+)$/;
  const value = Number(text);
  if (!pattern.test(text) || !(value > 0)) {
    throw new UsageError(`argument --${option}: expected a positive ${integer ? 'integer' : 'number'}, got '${text}'`);
  }
  return value;
}

/** Checks a host option: an IP literal or a plausible host name, nothing with spaces or a port. */
export function parseHost(text: string, option = 'host'): string {
  if (isIP(text) !== 0) return text;
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(text)) {
    throw new UsageError(`argument --${option}: expected an IP address or host name, got '${text}'`);
  }
  return text;
}

/** Formats `host:port`, bracketing IPv6 literals as URLs do. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
