/**
 * SNTP (RFC 4330, and RFC 5905 §7–8 for the packet): the 48-byte packet as a
 * codec in the project's shape, a client query that validates the reply,
 * and a synchroniser that keeps an offset to apply to served time. Nothing
 * here sets, steps or slews the system clock.
 *
 * ```ts
 * const sample = await sntpQuery('127.0.0.1', 11123);   // one exchange
 * sample.offsetMs;  // θ = ((T2 − T1) + (T3 − T4)) / 2
 * sample.delayMs;   // δ = (T4 − T1) − (T3 − T2)
 *
 * const sync = new NtpSynchroniser({ servers: [{ host: 'pool.ntp.org', port: 123 }] });
 * sync.start();
 * sync.now();       // the system clock corrected by the last good offset
 * ```
 *
 * The four timestamps: T1 the client's clock when the request leaves, T2
 * the server's when it arrives, T3 the server's when the reply leaves, T4
 * the client's when it arrives. The server's time spent (T3 − T2) is taken
 * out of the round trip, and the offset assumes the two legs take equally
 * long; it is wrong by at most δ/2 when they do not.
 *
 * @module
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { type Clock, wallClockMs } from './clock.ts';
import { type Logger, silent } from './log.ts';
import { type Codec, bytes, struct, u32, u64, u8 } from './pdu.ts';

/** An NTP packet without extension fields or MAC. */
export const NTP_PACKET_LENGTH = 48;
/** Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01). */
export const NTP_UNIX_OFFSET_SECONDS = 2_208_988_800;
/** The well-known NTP port. */
export const NTP_PORT = 123;
/** Stratum as NTP reports an unsynchronised clock. */
export const STRATUM_UNSYNCHRONISED = 16;

/** Packet modes (RFC 5905 figure 10). */
export const Mode = { symmetricActive: 1, symmetricPassive: 2, client: 3, server: 4, broadcast: 5 } as const;

/** An NTP packet's header, field by field (RFC 5905 figure 8). */
export interface NtpPacket {
  /** Leap indicator: 0 none, 1/2 a leap second today, 3 unsynchronised. */
  leap: number;
  version: number;
  mode: number;
  /** 0 kiss-o'-death, 1 primary (a reference clock), 2–15 secondary, 16 unsynchronised. */
  stratum: number;
  /** log2 of the poll interval in seconds (signed). */
  poll: number;
  /** log2 of the clock's precision in seconds (signed, e.g. -20 ≈ 1 µs). */
  precision: number;
  /** Round-trip delay to the reference clock, NTP short format (16.16 seconds). */
  rootDelay: number;
  /** Dispersion to the reference clock, NTP short format (16.16 seconds). */
  rootDispersion: number;
  /** Four bytes: the source's IPv4 address, a reference clock's ASCII name, or a kiss code. */
  referenceId: Uint8Array;
  /** The four timestamps, NTP format: 32 bits of seconds since 1900, 32 bits of fraction. */
  reference: bigint;
  origin: bigint;
  receive: bigint;
  transmit: bigint;
}

const Raw = struct([
  ['flags', u8],
  ['stratum', u8],
  ['poll', u8],
  ['precision', u8],
  ['rootDelay', u32],
  ['rootDispersion', u32],
  ['referenceId', bytes(4)],
  ['reference', u64],
  ['origin', u64],
  ['receive', u64],
  ['transmit', u64],
], 'NTP packet');

const toInt8 = (byte: number): number => (byte > 127 ? byte - 256 : byte);

function checkSmall(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Cannot encode NTP packet field "${name}": expected an integer from ${min} to ${max}, received ${value}`);
  }
}

function toRaw(packet: NtpPacket) {
  checkSmall('leap', packet.leap, 0, 3);
  checkSmall('version', packet.version, 0, 7);
  checkSmall('mode', packet.mode, 0, 7);
  checkSmall('poll', packet.poll, -128, 127);
  checkSmall('precision', packet.precision, -128, 127);
  return {
    flags: (packet.leap << 6) | (packet.version << 3) | packet.mode,
    stratum: packet.stratum,
    poll: packet.poll & 0xff,
    precision: packet.precision & 0xff,
    rootDelay: packet.rootDelay,
    rootDispersion: packet.rootDispersion,
    referenceId: packet.referenceId,
    reference: packet.reference,
    origin: packet.origin,
    receive: packet.receive,
    transmit: packet.transmit,
  };
}

/**
 * The NTP header codec, 48 bytes. `decode` reads the header and leaves any
 * extension fields or MAC after it to the caller, as an SNTP client may.
 */
export const NtpPacket: Codec<NtpPacket> & { fixedLength: number } = {
  fixedLength: NTP_PACKET_LENGTH,
  encodingLength: (packet) => Raw.encodingLength(toRaw(packet)),
  encode: (packet, buf, offset) => Raw.encode(toRaw(packet), buf, offset),
  decode(buf, offset) {
    const [raw, next] = Raw.decode(buf, offset);
    const { flags, poll, precision, ...rest } = raw;
    return [{ leap: flags >> 6, version: (flags >> 3) & 7, mode: flags & 7, poll: toInt8(poll), precision: toInt8(precision), ...rest }, next];
  },
};

const FRACTION = 2 ** 32;

/**
 * Converts milliseconds since the Unix epoch to an NTP timestamp. Times from
 * 2036-02-07 on fall in NTP era 1 and wrap, as they do on the wire.
 */
export function msToNtp(ms: number): bigint {
  const seconds = Math.floor(ms / 1000);
  let fraction = Math.round(((ms - seconds * 1000) / 1000) * FRACTION);
  let ntpSeconds = seconds + NTP_UNIX_OFFSET_SECONDS;
  if (fraction >= FRACTION) {
    fraction -= FRACTION;
    ntpSeconds += 1;
  }
  return (BigInt(ntpSeconds % FRACTION) << 32n) | BigInt(fraction);
}

/**
 * Converts an NTP timestamp to milliseconds since the Unix epoch, reading a
 * seconds field whose top bit is clear as era 1 (RFC 4330 §3), which covers
 * 1968 to 2104.
 */
export function ntpToMs(timestamp: bigint): number {
  let seconds = Number(timestamp >> 32n);
  const fraction = Number(timestamp & 0xffffffffn);
  if (seconds < 2 ** 31) seconds += FRACTION;
  return (seconds - NTP_UNIX_OFFSET_SECONDS) * 1000 + (fraction / FRACTION) * 1000;
}

/** Reads an NTP short-format value (16.16 seconds) as milliseconds. */
export function shortToMs(value: number): number {
  return (value / 65536) * 1000;
}

/** The offset θ and delay δ of one exchange, from its four timestamps in milliseconds. */
export function offsetAndDelay(t1: number, t2: number, t3: number, t4: number): { offsetMs: number; delayMs: number } {
  return { offsetMs: (t2 - t1 + (t3 - t4)) / 2, delayMs: t4 - t1 - (t3 - t2) };
}

/** Why a reply was refused; `code` lets a caller back off on a kiss-o'-death. */
export class NtpError extends Error {
  readonly code: 'ERR_NTP_TIMEOUT' | 'ERR_NTP_KISS' | 'ERR_NTP_ORIGIN' | 'ERR_NTP_INVALID' | 'ERR_NTP_SOCKET';
  /** The four ASCII letters of a kiss-o'-death (`RATE`, `DENY`, `RSTR`, …). */
  readonly kissCode: string | undefined;
  constructor(code: NtpError['code'], message: string, { kissCode, cause }: { kissCode?: string | undefined; cause?: unknown } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'NtpError';
    this.code = code;
    this.kissCode = kissCode;
  }
}

/** Four reference-id bytes as text when they are printable ASCII, else as an IPv4 address. */
export function describeReferenceId(id: Uint8Array, stratum: number): string {
  const ascii = [...id].every((b) => b === 0 || (b >= 0x20 && b < 0x7f));
  if (stratum <= 1 && ascii) return new TextDecoder().decode(id).replace(/\0+$/, '');
  return [...id].join('.');
}

/**
 * Checks a reply against the request it should answer (RFC 4330 §5, RFC 5905
 * §8): the origin timestamp must equal our transmit timestamp (else it is a
 * stale, duplicated or spoofed reply), the mode must be server, the stratum
 * 1–15 (0 is a kiss-o'-death), the leap indicator not "unsynchronised", the
 * transmit timestamp non-zero. Throws an {@link NtpError} saying which.
 */
export function validateReply(reply: NtpPacket, sentTransmit: bigint): void {
  if (reply.origin !== sentTransmit) {
    throw new NtpError('ERR_NTP_ORIGIN', `origin timestamp ${hex64(reply.origin)} does not match our transmit timestamp ${hex64(sentTransmit)} (stale or spoofed reply)`);
  }
  if (reply.mode !== Mode.server) throw new NtpError('ERR_NTP_INVALID', `mode ${reply.mode} is not a server reply (expected 4)`);
  if (reply.version < 1 || reply.version > 4) throw new NtpError('ERR_NTP_INVALID', `version ${reply.version} is not NTP 1–4`);
  if (reply.stratum === 0) {
    const kissCode = new TextDecoder('latin1').decode(reply.referenceId).replace(/\0+$/, '');
    throw new NtpError('ERR_NTP_KISS', `kiss-o'-death ${JSON.stringify(kissCode)}`, { kissCode });
  }
  if (reply.stratum > 15) throw new NtpError('ERR_NTP_INVALID', `stratum ${reply.stratum}: the server is not synchronised`);
  if (reply.leap === 3) throw new NtpError('ERR_NTP_INVALID', 'leap indicator 3: the server is not synchronised');
  if (reply.transmit === 0n) throw new NtpError('ERR_NTP_INVALID', 'transmit timestamp is zero');
}

const hex64 = (value: bigint): string => value.toString(16).padStart(16, '0');

/** One validated exchange with a server. */
export interface NtpSample {
  /** `host:port` as queried. */
  server: string;
  offsetMs: number;
  delayMs: number;
  stratum: number;
  referenceId: string;
  rootDelayMs: number;
  rootDispersionMs: number;
  /** The four timestamps, in milliseconds since the Unix epoch. */
  t1: number;
  t2: number;
  t3: number;
  t4: number;
}

/** Options of {@link sntpQuery}. */
export interface QueryOptions {
  timeoutMs?: number;
  /** The clock T1 and T4 are read from (default: the system clock, microseconds). */
  clock?: Clock;
  signal?: AbortSignal;
}

/** `host:port`, bracketing an IPv6 literal. */
const where = (host: string, port: number) => (isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`);

/**
 * Sends one mode-3 request to `host:port` and resolves with the validated
 * sample. Replies that fail the origin check are ignored (a stale reply may
 * still be followed by the real one); a kiss-o'-death or an invalid reply
 * with the right origin rejects at once; silence rejects after `timeoutMs`,
 * naming any replies it ignored.
 */
export function sntpQuery(host: string, port = NTP_PORT, { timeoutMs = 2000, clock = wallClockMs, signal }: QueryOptions = {}): Promise<NtpSample> {
  const server = where(host, port);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    const ignored: string[] = [];
    let transmit = 0n;
    let t1 = 0;
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      try {
        socket.close();
      } catch {
        // already closed
      }
      outcome();
    };
    const onAbort = () => finish(() => reject(signal?.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      const why = ignored.length ? `; ignored ${ignored.length} ${ignored.length === 1 ? 'reply' : 'replies'}: ${ignored.at(-1)}` : '';
      finish(() => reject(new NtpError('ERR_NTP_TIMEOUT', `no valid reply from ${server} within ${timeoutMs / 1000} s${why}`)));
    }, timeoutMs);

    socket.on('message', (message) => {
      const t4 = clock();
      let reply: NtpPacket;
      if (message.length < NTP_PACKET_LENGTH) {
        ignored.push(`a reply of ${message.length} bytes is shorter than ${NTP_PACKET_LENGTH}`);
        return;
      }
      [reply] = NtpPacket.decode(message);
      try {
        validateReply(reply, transmit);
      } catch (error) {
        const failure = error as NtpError;
        // Only a reply that answers our request (its origin matches) may end
        // the exchange; anyone can send a datagram with a wrong origin.
        if (failure.code === 'ERR_NTP_ORIGIN') return void ignored.push(failure.message);
        const text = `${failure.code === 'ERR_NTP_KISS' ? '' : 'invalid reply from '}${server}: ${failure.message}`;
        return finish(() => reject(new NtpError(failure.code, failure.code === 'ERR_NTP_KISS' ? `${server} sent ${failure.message}` : text, { kissCode: failure.kissCode, cause: error })));
      }
      const t2 = ntpToMs(reply.receive);
      const t3 = ntpToMs(reply.transmit);
      finish(() =>
        resolve({
          server,
          ...offsetAndDelay(t1, t2, t3, t4),
          stratum: reply.stratum,
          referenceId: describeReferenceId(reply.referenceId, reply.stratum),
          rootDelayMs: shortToMs(reply.rootDelay),
          rootDispersionMs: shortToMs(reply.rootDispersion),
          t1,
          t2,
          t3,
          t4,
        }),
      );
    });
    const failed = (error: NodeJS.ErrnoException) => {
      const text = error.code === 'ECONNREFUSED' ? 'nothing listens there (ICMP port unreachable)' : error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN' ? `cannot resolve ${host}` : error.message;
      finish(() => reject(new NtpError('ERR_NTP_SOCKET', `${server}: ${text}`, { cause: error })));
    };
    socket.on('error', failed);
    // A connect that fails (no route, no name) hands its error to this callback, not to 'error'.
    socket.connect(port, host, (error?: Error) => {
      if (error) return failed(error as NodeJS.ErrnoException);
      t1 = clock();
      // The low 12 bits of the fraction (under a microsecond) are random, so
      // that a reply to an earlier request never matches this one's origin.
      transmit = msToNtp(t1) ^ BigInt(randomBytes(2).readUInt16BE(0) & 0xfff);
      const request = NtpPacket.encode({
        leap: 0,
        version: 4,
        mode: Mode.client,
        stratum: 0,
        poll: 0,
        precision: 0,
        rootDelay: 0,
        rootDispersion: 0,
        referenceId: new Uint8Array(4),
        reference: 0n,
        origin: 0n,
        receive: 0n,
        transmit,
      });
      socket.send(request);
    });
  });
}

/** An NTP server to synchronise with. */
export interface NtpServer {
  host: string;
  port: number;
}

/** Reads `HOST`, `HOST:PORT` or `[V6]:PORT`; throws a TypeError naming the text otherwise. */
export function parseNtpServer(text: string): NtpServer {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = match?.[3] === undefined ? NTP_PORT : Number(match[3]);
  if (!host || port < 1 || port > 65535 || (match?.[1] !== undefined && isIP(host) !== 6)) {
    throw new TypeError(`Cannot read NTP server '${text}': expected HOST, HOST:PORT or [IPv6]:PORT`);
  }
  return { host, port };
}

/** True for a server on this machine (a loopback address or `localhost`). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** What a synchroniser knows about its time. */
export interface SyncState {
  /** A good sample is younger than the maximum age. */
  synchronised: boolean;
  /** The offset applied to the system clock (0 until the first good round). */
  offsetMs: number;
  /** The round-trip delay of the sample the offset came from. */
  delayMs: number;
  /** This clock's stratum: its source's plus one, or 16 when unsynchronised. */
  stratum: number;
  /** The stratum of the source the offset came from (0 when none yet). */
  sourceStratum: number;
  /** `host:port` of that source. */
  source: string | undefined;
  /** Milliseconds since that sample, or undefined when there has been none. */
  ageMs: number | undefined;
}

/** Options of {@link NtpSynchroniser}. */
export interface SynchroniserOptions {
  servers: readonly NtpServer[];
  /** Time between rounds (RFC 4330 asks public servers to be polled no faster than every 16 s; 64 s is ntpd's usual). */
  intervalMs?: number;
  /** Exchanges per server per round; the one with the lowest delay is kept. */
  samples?: number;
  /** Gap between exchanges with one server (public servers rate-limit bursts); default 2 s, 0 for loopback. */
  gapMs?: number;
  timeoutMs?: number;
  /** Once the last good sample is this old, the clock reports itself unsynchronised (default 4 intervals). */
  maxAgeMs?: number;
  clock?: Clock;
  log?: Logger;
}

interface ServerState extends NtpServer {
  name: string;
  /** Rounds to skip after a RATE kiss (doubling each time). */
  skip: number;
  backoff: number;
  /** A DENY or RSTR kiss: never asked again. */
  disabled: boolean;
}

/**
 * Keeps an offset between the system clock and NTP time by querying its
 * servers every interval, several samples each, keeping the lowest-delay
 * sample per server and, among servers, the one with the smallest
 * synchronisation distance (root delay / 2 + root dispersion + delay / 2).
 * Serves on when every server fails, reporting itself unsynchronised once
 * the last good sample is too old, and logging why each round failed.
 */
export class NtpSynchroniser {
  readonly #servers: ServerState[];
  readonly #intervalMs: number;
  readonly #samples: number;
  readonly #timeoutMs: number;
  readonly #maxAgeMs: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #gapMs: number | undefined;
  #best: NtpSample | undefined;
  #bestAt: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #abort = new AbortController();
  #rounds = 0;

  constructor({ servers, intervalMs = 64_000, samples = 4, gapMs, timeoutMs = 2000, maxAgeMs, clock = wallClockMs, log = silent }: SynchroniserOptions) {
    if (servers.length === 0) throw new TypeError('Cannot synchronise: expected at least one NTP server');
    this.#servers = servers.map((s) => ({ ...s, name: where(s.host, s.port), skip: 0, backoff: 1, disabled: false }));
    this.#intervalMs = intervalMs;
    this.#samples = Math.max(1, samples);
    this.#timeoutMs = timeoutMs;
    this.#maxAgeMs = maxAgeMs ?? 4 * intervalMs;
    this.#clock = clock;
    this.#log = log;
    this.#gapMs = gapMs;
  }

  /** Rounds completed so far (with or without success). */
  get rounds(): number {
    return this.#rounds;
  }

  /** Runs a round now and then one every interval, until {@link stop}. */
  start(): void {
    const loop = async () => {
      await this.round();
      if (!this.#abort.signal.aborted) this.#timer = setTimeout(() => void loop(), this.#intervalMs);
    };
    void loop();
  }

  /** Stops polling; a round in flight is abandoned. Safe to call twice. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#abort.abort(new Error('synchroniser stopped'));
  }

  /** The system clock plus the current offset, in milliseconds since the epoch. */
  now(): number {
    return this.#clock() + (this.#best?.offsetMs ?? 0);
  }

  /** The current synchronisation state. */
  state(): SyncState {
    const ageMs = this.#bestAt === undefined ? undefined : this.#clock() - this.#bestAt;
    const best = this.#best;
    const synchronised = best !== undefined && ageMs !== undefined && ageMs <= this.#maxAgeMs;
    return {
      synchronised,
      offsetMs: best?.offsetMs ?? 0,
      delayMs: best?.delayMs ?? 0,
      stratum: synchronised ? Math.min(best.stratum + 1, 15) : STRATUM_UNSYNCHRONISED,
      sourceStratum: best?.stratum ?? 0,
      source: best?.server,
      ageMs,
    };
  }

  /** One round: every usable server, `samples` exchanges each. Resolves with the chosen sample, if any. */
  async round(): Promise<NtpSample | undefined> {
    const signal = this.#abort.signal;
    const chosen: NtpSample[] = [];
    const failures: string[] = [];
    for (const server of this.#servers) {
      if (server.disabled) continue;
      if (server.skip > 0) {
        server.skip -= 1;
        continue;
      }
      let best: NtpSample | undefined;
      const gapMs = this.#gapMs ?? (isLoopback(server.host) ? 0 : 2000);
      for (let i = 0; i < this.#samples && !signal.aborted && !server.disabled; i++) {
        if (i > 0 && gapMs > 0) await sleep(gapMs, signal);
        try {
          const sample = await sntpQuery(server.host, server.port, { timeoutMs: this.#timeoutMs, clock: this.#clock, signal });
          if (best === undefined || sample.delayMs < best.delayMs) best = sample;
        } catch (error) {
          if (signal.aborted) return undefined;
          failures.push(this.#onFailure(server, error));
          // A kiss asks us to stop now; a socket error will not mend within the round.
          if (error instanceof NtpError && (error.code === 'ERR_NTP_SOCKET' || error.code === 'ERR_NTP_KISS')) break;
        }
      }
      if (best) {
        server.backoff = 1;
        chosen.push(best);
      }
    }
    if (signal.aborted) return undefined;
    this.#rounds += 1;
    const distance = (s: NtpSample) => s.rootDelayMs / 2 + s.rootDispersionMs + s.delayMs / 2;
    const winner = chosen.sort((a, b) => distance(a) - distance(b))[0];
    if (winner) {
      this.#best = winner;
      this.#bestAt = this.#clock();
      this.#log(`synchronised with ${winner.server} (stratum ${winner.stratum}): offset ${signed(winner.offsetMs)} ms, delay ${winner.delayMs.toFixed(3)} ms`);
    } else {
      const state = this.state();
      const summary = failures.length ? failures.join('; ') : 'no server left to ask';
      this.#log(`no usable NTP reply this round (${summary}); ${state.synchronised ? 'keeping the last offset' : 'serving unsynchronised'}`);
    }
    return winner;
  }

  #onFailure(server: ServerState, error: unknown): string {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof NtpError && error.code === 'ERR_NTP_KISS') {
      if (error.kissCode === 'DENY' || error.kissCode === 'RSTR') {
        server.disabled = true;
        return `${message}: not asking it again`;
      }
      if (error.kissCode === 'RATE') {
        server.backoff = Math.min(server.backoff * 2, 64);
        server.skip = server.backoff;
        return `${message}: skipping it for ${server.skip} rounds`;
      }
    }
    return message.startsWith(server.name) ? message : `${server.name}: ${message}`;
  }
}

const signed = (ms: number) => (ms.toFixed(3).startsWith('-') && Number(ms.toFixed(3)) !== 0 ? ms.toFixed(3) : `+${Math.abs(ms).toFixed(3)}`);

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
