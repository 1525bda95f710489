/**
 * A reliable, ordered stream of messages over UDP, after Gaffer on Games'
 * "Reliability and Flow Control", carried to a complete transport:
 *
 * - every packet acknowledges the peer's with `ack` (most recent sequence)
 *   and the 32-bit `ack_bitfield` (the 32 before it), plus `through` (all
 *   before it), so acks survive losses of acks;
 * - RTT is measured per packet (only on packets sent once: Karn), smoothed
 *   as RFC 6298 says (SRTT, RTTVAR, RTO = SRTT + max(G, 4·RTTVAR)), and the
 *   RTO doubles on each expiry of the oldest packet (backoff);
 * - what stays unacked past its RTO is sent again, and a packet that three
 *   later ones overtook is sent again at once (fast retransmit);
 * - the receiver delivers in order through a reorder buffer, drops
 *   duplicates, and unwraps 32-bit sequence numbers (serial arithmetic);
 * - flow control: a sender never goes beyond `through + window` the peer
 *   advertised;
 * - congestion control: AIMD on a window of packets (slow start, +1 per
 *   round trip, halved once per loss episode), or the article's own good/bad
 *   mode (`gaffer`), or none.
 *
 * A {@link Connection} does no I/O of its own: it is given a `send` function
 * and fed the packets that arrive, so tests drive it without sockets.
 *
 * @module
 */
import { encodePacket, Flag, MAX_DATA, type Packet, Type, unwrap, wrap } from './protocol.ts';

/** Congestion control: AIMD (default), the article's good/bad mode, or none (the peer's window only). */
export type CongestionControl = 'aimd' | 'gaffer' | 'none';

/** One message of the stream. */
export interface Message {
  type: number;
  data: Uint8Array;
}

/** What a connection counted. */
export interface ConnectionStats {
  packetsSent: number;
  packetsReceived: number;
  /** Packets sent again (timeouts and fast retransmits). */
  retransmissions: number;
  fastRetransmits: number;
  /** Expiries of the retransmission timer. */
  timeouts: number;
  /** Packets received twice (or more). */
  duplicates: number;
  /** Packets that arrived ahead of a gap and waited in the reorder buffer. */
  outOfOrder: number;
  /** Times the congestion window was cut. */
  lossEvents: number;
  srttMs: number | undefined;
  rtoMs: number;
  cwnd: number;
}

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  /** The transfer's connection number (the PDU's `connection` field). */
  connection: number;
  /** Puts one encoded packet on the wire. */
  send: (bytes: Uint8Array) => void;
  /** Called for each message of the peer's stream, in order, once. */
  onMessage: (message: Message) => void;
  /**
   * Called once when the peer has been silent for `idleTimeoutMs`
   * (`silent`), or acknowledged nothing through `maxTimeouts` expiries of the
   * retransmission timer (`unacknowledged`); the connection is closed.
   */
  onTimeout: (silentMs: number, reason: 'silent' | 'unacknowledged') => void;
  /** Called after acknowledgements were processed (the app checks whether it is done). */
  onAck?: () => void;
  /** Supplies the next message when the window has room (a file read lazily). */
  pull?: () => Message | undefined;
  /** Initial sequence number (random by default). */
  isn?: number;
  /** Flags added to the first (SYN) packet: TOKEN when its data starts with an address-validation token. */
  synFlags?: number;
  /**
   * Packets in flight until the peer has acknowledged one of ours (RFC 6928's
   * 10): an address that never answers gets no more than this, and then the
   * retransmission probes below.
   */
  initialWindow?: number;
  /**
   * Expiries of the retransmission timer in a row, with nothing newly
   * acknowledged, after which the connection gives up (`onTimeout`, reason
   * `unacknowledged`). After the first expiry of a run, only the oldest
   * packet is sent again (RFC 6298 §5.4), so a peer that stopped
   * acknowledging costs one packet per timeout.
   */
  maxTimeouts?: number;
  /** Receive window, packets: the reorder buffer's size, advertised to the peer. */
  window?: number;
  cc?: CongestionControl;
  initialRtoMs?: number;
  minRtoMs?: number;
  maxRtoMs?: number;
  idleTimeoutMs?: number;
  /** The article's RTT threshold for bad mode (gaffer), ms. */
  rttThresholdMs?: number;
  /** Clock, ms (tests pass a fake one). */
  now?: () => number;
  /** Timer tick, ms; 0 disables the timer (tests call {@link Connection.tick}). */
  tickMs?: number;
}

interface Outgoing {
  seq: number;
  type: number;
  flags: number;
  data: Uint8Array;
  firstSent: number;
  lastSent: number;
  sends: number;
  fastRetransmitted: boolean;
}

/**
 * The article's flow control: "good" mode sends with a large window, "bad"
 * mode (smoothed RTT above a threshold) with a small one; going back to good
 * takes a penalty time that doubles when good mode does not last 10 s and
 * halves after each 10 s of good conditions (between 1 and 60 s).
 */
export class GoodBadMode {
  mode: 'good' | 'bad' = 'good';
  penaltyMs = 4000;
  #goodConditionsMs = 0;
  #penaltyReductionMs = 0;
  readonly thresholdMs: number;
  readonly goodWindow: number;
  readonly badWindow: number;

  constructor({ thresholdMs = 250, goodWindow = 256, badWindow = 16 } = {}) {
    this.thresholdMs = thresholdMs;
    this.goodWindow = goodWindow;
    this.badWindow = badWindow;
  }

  /** Advances by `dtMs` with the current smoothed RTT; returns the window to use. */
  update(dtMs: number, rttMs: number): number {
    if (this.mode === 'good') {
      if (rttMs > this.thresholdMs) {
        this.mode = 'bad';
        if (this.#goodConditionsMs < 10_000 && this.penaltyMs < 60_000) this.penaltyMs = Math.min(60_000, this.penaltyMs * 2);
        this.#goodConditionsMs = 0;
        this.#penaltyReductionMs = 0;
      } else {
        this.#goodConditionsMs += dtMs;
        this.#penaltyReductionMs += dtMs;
        if (this.#penaltyReductionMs > 10_000 && this.penaltyMs > 1000) {
          this.penaltyMs = Math.max(1000, this.penaltyMs / 2);
          this.#penaltyReductionMs = 0;
        }
      }
    } else {
      this.#goodConditionsMs = rttMs <= this.thresholdMs ? this.#goodConditionsMs + dtMs : 0;
      if (this.#goodConditionsMs > this.penaltyMs) {
        this.mode = 'good';
        this.#goodConditionsMs = 0;
        this.#penaltyReductionMs = 0;
      }
    }
    return this.mode === 'good' ? this.goodWindow : this.badWindow;
  }
}

/** One side of a transfer: a reliable, ordered, flow- and congestion-controlled message stream. */
export class Connection {
  readonly id: number;
  readonly stats: ConnectionStats;
  readonly #o: Required<Omit<ConnectionOptions, 'pull' | 'onAck' | 'isn'>> & Pick<ConnectionOptions, 'pull' | 'onAck'>;
  // Sending side (numbers unwrapped: they grow past 2^32; the wire carries them mod 2^32).
  readonly isn: number;
  #nextSeq: number;
  readonly #unacked = new Map<number, Outgoing>();
  readonly #queue: Message[] = [];
  #peerThrough: number;
  #highestAcked: number;
  // Until the peer advertises its window, only the first packet (SYN) goes out.
  #peerWindow = 1;
  // Until the peer acknowledges something, at most initialWindow packets are in flight.
  #peerAcked = false;
  #timeoutsInRow = 0;
  #cwnd: number;
  #ssthresh = Infinity;
  #recoveryPoint: number;
  #srtt: number | undefined;
  #rttvar = 0;
  #rto: number;
  readonly #gaffer: GoodBadMode | undefined;
  // Receiving side.
  #peerStarted = false;
  #expected = 0;
  #maxReceived = 0;
  readonly #buffer = new Map<number, Message>();
  /** Sequences received since the last acknowledgement: each must be covered by one. */
  #toAck: number[] = [];
  #flushScheduled = false;
  #lastHeard: number;
  #lastTick: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(options: ConnectionOptions) {
    const now = options.now ?? (() => performance.now());
    this.#o = {
      window: 1024,
      cc: 'gaffer',
      initialRtoMs: 1000,
      minRtoMs: 20,
      maxRtoMs: 1000,
      idleTimeoutMs: 10_000,
      rttThresholdMs: 250,
      tickMs: 10,
      synFlags: 0,
      initialWindow: 10,
      maxTimeouts: 12,
      ...options,
      now,
    };
    this.id = options.connection;
    this.isn = options.isn ?? Math.floor(Math.random() * 2 ** 32);
    this.#nextSeq = this.isn;
    this.#peerThrough = this.isn;
    this.#highestAcked = this.isn - 1;
    this.#recoveryPoint = this.isn;
    this.#rto = this.#o.initialRtoMs;
    this.#gaffer = this.#o.cc === 'gaffer' ? new GoodBadMode({ thresholdMs: this.#o.rttThresholdMs }) : undefined;
    this.#cwnd = this.#o.cc === 'aimd' ? 4 : this.#o.cc === 'gaffer' ? (this.#gaffer as GoodBadMode).goodWindow : Infinity;
    this.#lastHeard = now();
    this.#lastTick = now();
    this.stats = {
      packetsSent: 0,
      packetsReceived: 0,
      retransmissions: 0,
      fastRetransmits: 0,
      timeouts: 0,
      duplicates: 0,
      outOfOrder: 0,
      lossEvents: 0,
      srttMs: undefined,
      rtoMs: this.#rto,
      cwnd: this.#cwnd,
    };
    if (this.#o.tickMs > 0) this.#timer = setInterval(() => this.tick(), this.#o.tickMs);
  }

  /** True when everything queued was sent and acknowledged. */
  get settled(): boolean {
    return this.#unacked.size === 0 && this.#queue.length === 0;
  }

  /** Packets sent and not yet acknowledged. */
  get inFlight(): number {
    return this.#unacked.size;
  }

  /** Queues a message (sent as soon as the windows allow). */
  send(type: number, data: Uint8Array = new Uint8Array(0)): void {
    if (data.length > MAX_DATA) throw new RangeError(`Cannot send: expected at most ${MAX_DATA} data bytes, received ${data.length}`);
    this.#queue.push({ type, data });
    this.#scheduleFlush();
  }

  /** Tries to send now (after the `pull` source has something again). */
  kick(): void {
    this.#scheduleFlush();
  }

  /** Stops the timer; packets that arrive later are ignored. Safe to call twice. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Feeds a packet of this connection that arrived from the peer. */
  receive(packet: Packet): void {
    if (this.#closed) return;
    const now = this.#o.now();
    this.#lastHeard = now;
    this.stats.packetsReceived++;
    if (packet.flags & Flag.ACK) this.#processAcks(packet, now);
    this.#peerWindow = packet.window;
    if (packet.type === Type.ACK || packet.type === Type.RESET) {
      this.#scheduleFlush();
      return;
    }
    if (!this.#peerStarted) {
      // Before the peer's first message (SYN) its numbering is unknown: drop, it will come again.
      if (!(packet.flags & Flag.SYN)) return;
      this.#peerStarted = true;
      this.#expected = packet.sequence;
      this.#maxReceived = packet.sequence - 1;
    }
    const seq = unwrap(packet.sequence, this.#expected);
    if (seq < this.#expected || this.#buffer.has(seq)) {
      this.stats.duplicates++;
      this.#toAck.push(seq); // acknowledged again: our earlier ack may have been lost
    } else if (seq < this.#expected + this.#o.window) {
      this.#toAck.push(seq);
      this.#buffer.set(seq, { type: packet.type, data: packet.data });
      if (seq !== this.#expected) this.stats.outOfOrder++;
      if (seq > this.#maxReceived) this.#maxReceived = seq;
      while (this.#buffer.has(this.#expected)) {
        const message = this.#buffer.get(this.#expected) as Message;
        this.#buffer.delete(this.#expected);
        this.#expected++;
        this.#o.onMessage(message);
        if (this.#closed) return;
      }
    }
    this.#scheduleFlush();
  }

  /** Retransmits what timed out, checks the peer is alive, sends what the windows allow. */
  tick(): void {
    if (this.#closed) return;
    const now = this.#o.now();
    const dt = now - this.#lastTick;
    this.#lastTick = now;
    if (now - this.#lastHeard > this.#o.idleTimeoutMs) {
      this.close();
      this.#o.onTimeout(now - this.#lastHeard, 'silent');
      return;
    }
    if (this.#gaffer) this.#cwnd = this.#gaffer.update(dt, this.#srtt ?? 0);
    const oldest = this.#unacked.values().next().value as Outgoing | undefined;
    if (oldest && now - oldest.lastSent >= this.#rto) {
      // RFC 6298 §5.5: the timer of the oldest outstanding packet expired: back off.
      this.stats.timeouts++;
      if (++this.#timeoutsInRow > this.#o.maxTimeouts) {
        this.close();
        this.#o.onTimeout(now - this.#lastHeard, 'unacknowledged');
        return;
      }
      this.#onLoss(oldest.seq);
      this.#rto = Math.min(this.#o.maxRtoMs, this.#rto * 2);
      // The first expiry sends again what waited long (a burst lost at once); later ones in a
      // row, with nothing acknowledged between, only probe with the oldest packet.
      let budget = this.#timeoutsInRow > 1 ? 1 : Math.max(1, Math.floor(this.#cwnd));
      for (const out of this.#unacked.values()) {
        if (budget === 0) break;
        if (now - out.lastSent >= this.#rto / 2) {
          this.#transmit(out, now);
          out.fastRetransmitted = false;
          budget--;
        }
      }
    }
    this.#flush();
  }

  #onLoss(seq: number): void {
    if (this.#o.cc !== 'aimd' || seq < this.#recoveryPoint) return;
    // One cut per loss episode: what was in flight when it began does not cut again.
    this.#ssthresh = Math.max(2, this.#cwnd / 2);
    this.#cwnd = this.#ssthresh;
    this.#recoveryPoint = this.#nextSeq;
    this.stats.lossEvents++;
  }

  #processAcks(packet: Packet, now: number): void {
    let sample: number | undefined;
    let newlyAcked = 0;
    const ackOne = (seq: number, timed = false) => {
      const out = this.#unacked.get(seq);
      if (!out) return;
      this.#unacked.delete(seq);
      newlyAcked++;
      // Time only the packet this ack answers (one acked later by the bitfield or `through`
      // waited for another packet to carry its ack), and never a retransmitted one (Karn).
      if (timed && out.sends === 1) sample = now - out.firstSent;
      if (seq > this.#highestAcked) this.#highestAcked = seq;
    };
    // The packet this ack answers first, so that it is the one timed.
    const ack = unwrap(packet.ack, this.#peerThrough);
    if (ack < this.#nextSeq && ack >= this.isn) {
      ackOne(ack, true);
      for (let n = 0, bits = packet.ackBitfield; bits !== 0 && n < 32; n++, bits >>>= 1) if (bits & 1) ackOne(ack - 1 - n);
    }
    const through = unwrap(packet.through, this.#peerThrough);
    if (through > this.#peerThrough && through <= this.#nextSeq) {
      for (const seq of this.#unacked.keys()) {
        if (seq >= through) break;
        ackOne(seq);
      }
      this.#peerThrough = through;
      if (through - 1 > this.#highestAcked) this.#highestAcked = through - 1;
    }
    if (newlyAcked > 0) {
      this.#peerAcked = true;
      this.#timeoutsInRow = 0;
    }
    if (sample !== undefined) this.#rttSample(sample);
    else if (newlyAcked > 0) this.#rto = this.#computeRto(); // new data acknowledged: undo the backoff
    if (newlyAcked > 0 && this.#o.cc === 'aimd') {
      for (let i = 0; i < newlyAcked; i++) this.#cwnd += this.#cwnd < this.#ssthresh ? 1 : 1 / this.#cwnd;
      this.#cwnd = Math.min(this.#cwnd, 8192);
    }
    // Fast retransmit: a packet that three later ones overtook is lost, most likely.
    const srtt = this.#srtt ?? this.#rto;
    for (const out of this.#unacked.values()) {
      if (out.seq > this.#highestAcked - 3) break;
      if (!out.fastRetransmitted && now - out.lastSent >= srtt) {
        out.fastRetransmitted = true;
        this.stats.fastRetransmits++;
        this.#onLoss(out.seq);
        this.#transmit(out, now);
      }
    }
    this.stats.cwnd = this.#cwnd;
    if (newlyAcked > 0) this.#o.onAck?.();
  }

  #rttSample(r: number): void {
    // RFC 6298 §2: the first sample sets SRTT and RTTVAR; later ones smooth them (alpha 1/8, beta 1/4).
    if (this.#srtt === undefined) {
      this.#srtt = r;
      this.#rttvar = r / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - r);
      this.#srtt = 0.875 * this.#srtt + 0.125 * r;
    }
    this.#rto = this.#computeRto();
    this.stats.srttMs = this.#srtt;
  }

  /** RFC 6298 §2.3: RTO = SRTT + max(G, 4·RTTVAR), clamped to [minRtoMs, maxRtoMs]. */
  #computeRto(): number {
    if (this.#srtt === undefined) return this.#rto;
    const granularity = Math.max(1, this.#o.tickMs);
    const rto = Math.min(this.#o.maxRtoMs, Math.max(this.#o.minRtoMs, this.#srtt + Math.max(granularity, 4 * this.#rttvar)));
    this.stats.rtoMs = rto;
    return rto;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      if (!this.#closed) this.#flush();
    });
  }

  #canSendNew(): boolean {
    const window = Math.min(Math.floor(this.#cwnd), this.#peerWindow, this.#peerAcked ? Infinity : this.#o.initialWindow);
    return this.#unacked.size < Math.max(1, window) && this.#nextSeq < this.#peerThrough + Math.max(1, this.#peerWindow);
  }

  #flush(): void {
    const now = this.#o.now();
    let sent = 0;
    while (this.#canSendNew()) {
      const message = this.#queue.shift() ?? this.#o.pull?.();
      if (!message) break;
      const seq = this.#nextSeq++;
      const out: Outgoing = {
        seq,
        type: message.type,
        flags: seq === this.isn ? Flag.SYN | this.#o.synFlags : 0,
        data: message.data,
        firstSent: now,
        lastSent: now,
        sends: 0,
        fastRetransmitted: false,
      };
      this.#unacked.set(seq, out);
      this.#transmit(out, now);
      sent++;
    }
    if (this.#toAck.length > 0) this.#acknowledge(sent > 0);
  }

  /**
   * Acknowledges every packet received since the last time: one ack names a
   * sequence and the 32 before it, so a burst that spans more than 33 needs
   * several (coalescing them into one would leave packets unacknowledged
   * until `through` passes them, and their sender would resend them).
   */
  #acknowledge(dataSent: boolean): void {
    const pending = this.#toAck.sort((a, b) => b - a);
    this.#toAck = [];
    // A data packet just sent carried ack = maxReceived with its bitfield, and `through`.
    let lowestCovered = dataSent ? this.#maxReceived - 32 : Infinity;
    let throughSent = dataSent;
    for (const seq of pending) {
      if (seq >= lowestCovered) continue;
      if (seq < this.#expected && throughSent) continue;
      // `ack` names the packet just received, so its sender times the right one.
      this.#sendPacket(Type.ACK, 0, this.#nextSeq, new Uint8Array(0), seq);
      lowestCovered = seq - 32;
      throughSent = true;
    }
  }

  #transmit(out: Outgoing, now: number): void {
    if (out.sends > 0) this.stats.retransmissions++;
    out.sends++;
    out.lastSent = now;
    this.#sendPacket(out.type, out.flags, out.seq, out.data);
  }

  #sendPacket(type: number, flags: number, seq: number, data: Uint8Array, ackSeq = this.#maxReceived): void {
    let ack = 0;
    let ackBitfield = 0;
    let through = 0;
    if (this.#peerStarted) {
      flags |= Flag.ACK;
      ack = wrap(ackSeq);
      for (let n = 0; n < 32; n++) {
        const s = ackSeq - 1 - n;
        if (s < this.#expected || this.#buffer.has(s)) ackBitfield |= 1 << n;
      }
      ackBitfield >>>= 0;
      through = wrap(this.#expected);
    }
    const window = Math.max(0, Math.min(65535, this.#o.window - this.#buffer.size));
    this.stats.packetsSent++;
    this.#o.send(encodePacket({ sequence: wrap(seq), ack, ackBitfield, type, flags, window, connection: this.id, through, data }));
  }
}
