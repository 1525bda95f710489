/**
 * One timestamped line per event, on stderr, so that a server's results
 * (stdout) stay clean for pipes and graders.
 *
 * Library functions never print: they take a {@link Logger} and scripts pass
 * the one made here (or {@link silent}).
 *
 * @module
 */

/** Receives one event line, without timestamp or newline. */
export type Logger = (message: string) => void;

/** A logger that drops everything, for library callers that want silence. */
export const silent: Logger = () => {};

/**
 * A logger that writes `2026-11-24T17:30:00.123Z tcp-server: message` lines.
 * `quiet` silences it, for benchmarks and scripts that only want results.
 */
export function createLogger(name: string, { quiet = false, stream = process.stderr } = {}): Logger {
  if (quiet) return silent;
  return (message) => {
    stream.write(`${new Date().toISOString()} ${name}: ${message}\n`);
  };
}
