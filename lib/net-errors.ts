/**
 * Socket errors in words a user can act on. The codes are the kernel's
 * (ECONNREFUSED, EADDRINUSE, …); the sentences say what happened and, where
 * there is one, what to try.
 *
 * @module
 */
import net from 'node:net';
import { CliError } from './main.ts';

/** Why a connection to (or a datagram for) `where` failed, as a {@link CliError} (exit 1). */
export function describeConnectError(error: NodeJS.ErrnoException, where: string): CliError {
  const host = where.replace(/:\d+$/, '');
  const why: Record<string, string> = {
    ECONNREFUSED: `cannot connect to ${where}: connection refused (is the server running?)`,
    ECONNRESET: `connection to ${where} was reset by the peer`,
    EPIPE: `connection to ${where} was closed by the peer while sending`,
    ETIMEDOUT: `cannot connect to ${where}: timed out`,
    EHOSTUNREACH: `cannot reach ${where}: no route to host`,
    ENETUNREACH: `cannot reach ${where}: network unreachable`,
    ENOTFOUND: `cannot resolve host ${host}`,
    EAI_AGAIN: `cannot resolve host ${host} (name service not answering)`,
    EMSGSIZE: `datagram for ${where} is too large`,
  };
  const message = why[error.code ?? ''] ?? `${where}: ${error.message}`;
  return new CliError(message, 1, { cause: error });
}

/** What {@link describeBindError} suggests for an address in use, unless the caller knows better. */
export const IN_USE_HINT = 'another server? try --port 0';

/**
 * Why a server could not bind `where`, as a {@link CliError}; other errors
 * are returned as they are. `inUse` is the hint for an address in use: a
 * server whose port is fixed (by a config file, or to a short list) says
 * what to do instead of {@link IN_USE_HINT}.
 */
export function describeBindError(error: NodeJS.ErrnoException, host: string, where: string, inUse = IN_USE_HINT): Error {
  const why: Record<string, string> = {
    EADDRINUSE: `${where} is already in use (${inUse})`,
    EACCES: `no permission to listen on ${where} (ports below 1024 need root)`,
    EADDRNOTAVAIL: `${host} is not an address of this machine`,
    ENOTFOUND: `cannot resolve host ${host}`,
    EAI_AGAIN: `cannot resolve host ${host}`,
  };
  const message = why[error.code ?? ''];
  return message ? new CliError(`cannot listen: ${message}`, 1, { cause: error }) : error;
}

/** The connection attempt of {@link connectWithin} outlasted its time; `code` is ETIMEDOUT, as the kernel's own timeout. */
export class ConnectTimeoutError extends Error {
  override name = 'ConnectTimeoutError';
  readonly code = 'ETIMEDOUT';
  constructor(readonly timeoutMs: number) {
    super(`timed out after ${timeoutMs / 1000} s`);
  }
}

/**
 * Opens a TCP connection, or rejects: with the socket's error (ECONNREFUSED,
 * ENOTFOUND, …), or with a {@link ConnectTimeoutError} after `timeoutMs`,
 * the half-open socket destroyed. Callers put either in their own words.
 */
export function connectWithin(options: net.TcpNetConnectOpts, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(options);
    const timer = setTimeout(() => {
      socket.off('error', onError);
      socket.destroy();
      reject(new ConnectTimeoutError(timeoutMs));
    }, timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
