/**
 * Socket buffer sizes for UDP sockets that receive bursts (a file transfer's
 * window of packets), in the one place that knows a runtime difference.
 *
 * Under Node, `recvBufferSize` sets SO_RCVBUF (up to net.core.rmem_max), so a
 * burst queues in the kernel instead of being dropped. Deno's `node:dgram`
 * compatibility layer instead allocates a receive buffer of that size (twice
 * it, on Linux) for every datagram it reads, which makes a large value cost
 * milliseconds per packet; there the default is kept.
 *
 * ```ts
 * dgram.createSocket({ type: 'udp4', ...udpBufferOptions(4 << 20) });
 * ```
 *
 * @module
 */

/** True under Deno (its global is the one reliable sign). */
export const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';

/** `{ recvBufferSize, sendBufferSize }` of `bytes` under Node; nothing under Deno (see the module doc). */
export function udpBufferOptions(bytes: number): { recvBufferSize?: number; sendBufferSize?: number } {
  return isDeno ? {} : { recvBufferSize: bytes, sendBufferSize: bytes };
}
