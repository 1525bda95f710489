/**
 * Running a script's `main()` only when the file is the entry point, under
 * Node 20 (which has no `import.meta.main`) and Deno alike, and turning the
 * errors a user causes into one clear line instead of a stack trace.
 *
 * ```ts
 * if (isMain(import.meta)) runMain(command.spec.name, () => main(process.argv.slice(2)));
 * ```
 *
 * @module
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError, usageOf } from './cli.ts';

/** The part of `import.meta` this module reads; Deno (and Node ≥ 24) set `main`. */
export interface ImportMetaLike {
  url: string;
  main?: boolean;
}

/** True when the module whose `import.meta` is given is the program being run. */
export function isMain(meta: ImportMetaLike): boolean {
  if (typeof meta.main === 'boolean') return meta.main;
  const entry = process.argv[1];
  if (entry === undefined || !meta.url.startsWith('file:')) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(meta.url));
  } catch {
    return false;
  }
}

/**
 * An error whose message is meant for the user as it stands (a refused
 * connection, a missing file): printed as `name: message`, exit code kept.
 */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/**
 * Runs `main` and reports how it ended: a {@link UsageError} exits 2 after
 * the usage line of the command named `name` (or a pointer to `-h` when no
 * such command was declared), a {@link CliError} prints its message and exits
 * with its code, anything else is a bug and keeps its stack trace. A number
 * returned by `main` becomes the exit code; the process then ends when its
 * sockets close.
 */
export function runMain(name: string, main: () => Promise<number | void> | number | void): void {
  Promise.resolve()
    .then(main)
    .then(
      (code) => {
        if (typeof code === 'number') process.exitCode = code;
      },
      (error: unknown) => {
        if (error instanceof UsageError) {
          // As parseOrExit (and argparse) does: the usage line, then the mistake.
          const usage = usageOf(name);
          process.stderr.write(
            usage === undefined
              ? `${name}: error: ${error.message}\nTry '${name} -h' for help.\n`
              : `${usage}\n${name}: error: ${error.message}\n`,
          );
          process.exitCode = 2;
        } else if (error instanceof CliError) {
          process.stderr.write(`${name}: ${error.message}\n`);
          process.exitCode = error.exitCode;
        } else {
          process.stderr.write(`${name}: internal error (a bug; please report it):\n`);
          process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
          process.exitCode = 70;
        }
      },
    );
}
