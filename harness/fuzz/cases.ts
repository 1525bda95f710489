/**
 * Generic case makers: from a protocol's valid PDUs, the mix of mutations
 * the issue lists (random bytes 0 B–1 MiB, valid prefix and garbage,
 * truncated PDUs, lengths of 0xFFFFFFFF, bit flips, 200 concurrent
 * connections, slow and reset clients), for a stream port or a datagram port.
 *
 * @module
 */
import { MAX_DATAGRAM, MAX_STREAM_CASE, mutate, preview } from './mutate.ts';
import { concurrentCase, datagramCase, streamCase } from './net.ts';
import type { Rng } from './prng.ts';
import type { Case, Running } from './types.ts';

const HOST = '127.0.0.1';

/** How a target describes one of its ports to the generic makers. */
export interface PortSpec<S> {
  /** A label for case ids and reports (`tcp`, `udp`, `list`). */
  label: string;
  port: (running: Running<S>) => number;
  /** A valid request (a PDU, a line, an HTTP request). */
  valid: (rng: Rng) => Uint8Array;
  /** Offsets of u32 length fields in a valid PDU, for the 0xFFFFFFFF mutation. */
  lengthFields?: (pdu: Uint8Array) => number[];
  lengthWidth?: 2 | 4;
  /** Largest case (default 1 MiB on a stream, 65507 B in a datagram). */
  max?: number;
  /** A case's time bound on a stream (default 3 s). */
  timeoutMs?: number;
  /** A generated case the target refuses (a well-formed FIN that would legitimately end a ring node); regenerated. */
  reject?: (bytes: Uint8Array) => boolean;
}

function mutated<S>(rng: Rng, spec: PortSpec<S>, max: number) {
  for (let attempt = 0; ; attempt++) {
    const valid = spec.valid(rng);
    const m = mutate(rng, valid, { max, lengthFields: spec.lengthFields?.(valid) ?? [], lengthWidth: spec.lengthWidth ?? 4 });
    if (!spec.reject?.(m.bytes)) return m;
    // Never send what the target refuses (another host for a proxy): the valid PDU instead.
    if (attempt > 20) return { kind: 'valid' as const, bytes: valid };
  }
}

/** One generated case on a TCP port. */
export function streamCaseFor<S>(rng: Rng, id: string, spec: PortSpec<S>): Case<S> {
  const max = spec.max ?? MAX_STREAM_CASE;
  const timeoutMs = spec.timeoutMs ?? 3000;
  const r = rng.next();
  if (r < 0.04) {
    const n = 200;
    const payloads = Array.from({ length: n }, () => (rng.chance(0.5) ? spec.valid(rng) : mutated(rng, spec, 4096).bytes));
    const mode = rng.pick(['end', 'open', 'reset'] as const);
    return {
      id,
      kind: `concurrent-${n}`,
      detail: `${spec.label}: ${n} connections at once (${mode}), valid requests and mutated ones of up to 4 kB`,
      run: async (running) => void (await concurrentCase(HOST, spec.port(running), payloads, { mode, timeoutMs: timeoutMs + 2000 })),
    };
  }
  if (r < 0.09) {
    const valid = spec.valid(rng);
    const chunk = rng.int(1, 8);
    const payload = valid.subarray(0, chunk * 40);
    return {
      id,
      kind: 'slow-client',
      detail: `${spec.label}: a valid request ${chunk} byte(s) every 25 ms (${preview(payload)})`,
      run: async (running) => void (await streamCase(HOST, spec.port(running), payload, { mode: rng.chance(0.5) ? 'end' : 'reset', chunk, delayMs: 25, timeoutMs: timeoutMs + 1500 })),
    };
  }
  if (r < 0.15) {
    const valid = spec.valid(rng);
    const holdMs = rng.int(0, 300);
    const mode = rng.pick(['reset', 'stall'] as const);
    return {
      id,
      kind: mode === 'reset' ? 'reset-client' : 'stalled-reader',
      detail: `${spec.label}: a valid request, then ${mode === 'reset' ? 'a reset' : 'no reading, then a reset'} after ${holdMs} ms (${preview(valid)})`,
      run: async (running) => void (await streamCase(HOST, spec.port(running), valid, { mode, holdMs, timeoutMs })),
    };
  }
  if (r < 0.2) {
    const valid = spec.valid(rng);
    return {
      id,
      kind: 'valid',
      detail: `${spec.label}: a valid request (${preview(valid)})`,
      run: async (running) => void (await streamCase(HOST, spec.port(running), valid, { mode: 'end', timeoutMs })),
    };
  }
  const m = mutated(rng, spec, max);
  const mode = rng.pick(['end', 'end', 'open', 'reset'] as const);
  return {
    id,
    kind: m.kind,
    detail: `${spec.label}: ${m.kind} (${mode}) ${preview(m.bytes)}`,
    run: async (running) => void (await streamCase(HOST, spec.port(running), m.bytes, { mode, timeoutMs, holdMs: 100 })),
  };
}

/** One generated case on a UDP port. */
export function datagramCaseFor<S>(rng: Rng, id: string, spec: PortSpec<S>): Case<S> {
  const max = spec.max ?? MAX_DATAGRAM;
  const r = rng.next();
  if (r < 0.08) {
    const n = 200;
    const datagrams = Array.from({ length: n }, () => (rng.chance(0.3) ? spec.valid(rng) : mutated(rng, spec, Math.min(max, 2048)).bytes));
    return {
      id,
      kind: `burst-${n}`,
      detail: `${spec.label}: ${n} datagrams at once, valid and mutated ones of up to 2 kB`,
      run: async (running) => void (await datagramCase(HOST, spec.port(running), datagrams, { quietMs: 300 })),
    };
  }
  if (r < 0.14) {
    const valid = spec.valid(rng);
    return {
      id,
      kind: 'valid',
      detail: `${spec.label}: a valid datagram (${preview(valid)})`,
      run: async (running) => void (await datagramCase(HOST, spec.port(running), [valid])),
    };
  }
  const m = mutated(rng, spec, max);
  return {
    id,
    kind: m.kind,
    detail: `${spec.label}: ${m.kind} ${preview(m.bytes)}`,
    run: async (running) => void (await datagramCase(HOST, spec.port(running), [m.bytes])),
  };
}

/** A generator that picks one of several port specs (by weight) for each case. */
export function mixed<S>(name: string, ports: { weight: number; make: (rng: Rng, id: string) => Case<S> }[]): (rng: Rng, index: number) => Case<S> {
  const total = ports.reduce((n, p) => n + p.weight, 0);
  return (rng, index) => {
    let x = rng.next() * total;
    for (const p of ports) {
      x -= p.weight;
      if (x < 0) return p.make(rng, `${name}#${index}`);
    }
    return (ports[ports.length - 1] as (typeof ports)[number]).make(rng, `${name}#${index}`);
  };
}
