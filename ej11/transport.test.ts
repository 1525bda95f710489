import t, { type Test } from 'tap';
import { seededRandom } from '../harness/relay.ts';
import { decodePacket, Flag, type Packet, Type, wrap } from './protocol.ts';
import { Connection, type ConnectionOptions, GoodBadMode, type Message } from './transport.ts';

interface Faults {
  loss?: number;
  duplicate?: number;
  reorder?: number;
}

/** Two connections joined by an in-memory lossy link. */
function pair(t: Test, faults: Faults, a: Partial<ConnectionOptions> = {}, b: Partial<ConnectionOptions> = {}) {
  const random = seededRandom(42);
  const received: Message[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const fromA: Packet[] = [];
  let left: Connection;
  let right: Connection;
  const deliver = (to: () => Connection, bytes: Uint8Array, log?: Packet[]) => {
    const packet = decodePacket(bytes);
    log?.push(packet);
    if (random() < (faults.loss ?? 0)) return;
    const copies = random() < (faults.duplicate ?? 0) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = random() < (faults.reorder ?? 0) ? 15 : 1;
      const timer = setTimeout(() => {
        timers.delete(timer);
        to().receive(packet);
      }, delay);
      timers.add(timer);
    }
  };
  const failed: string[] = [];
  left = new Connection({ connection: 1, send: (bytes) => deliver(() => right, bytes, fromA), onMessage: () => {}, onTimeout: () => failed.push('a'), minRtoMs: 20, ...a });
  right = new Connection({ connection: 1, send: (bytes) => deliver(() => left, bytes), onMessage: (m) => received.push(m), onTimeout: () => failed.push('b'), minRtoMs: 20, ...b });
  t.teardown(() => {
    left.close();
    right.close();
    for (const timer of timers) clearTimeout(timer);
  });
  return { left, right, received, fromA, failed };
}

function messages(n: number): Message[] {
  return Array.from({ length: n }, (_, i) => {
    const data = new Uint8Array(8);
    new DataView(data.buffer).setUint32(0, i);
    return { type: Type.DATA, data };
  });
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!check() && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
  return check();
}

function inOrderOnce(received: Message[], n: number): boolean {
  return received.length === n && received.every((m, i) => new DataView(m.data.buffer, m.data.byteOffset).getUint32(0) === i);
}

for (const cc of ['gaffer', 'aimd', 'none'] as const) {
  // AIMD halves its window on every loss episode: at 20 % random loss it crawls (as TCP does), so it moves fewer.
  const n = cc === 'aimd' ? 600 : 3000;
  t.test(`${cc}: ${n} messages arrive in order, exactly once, across the 2^32 wrap, with 20 % loss, duplicates and reordering`, async (t) => {
    const { left, right, received, fromA } = pair(t, { loss: 0.2, duplicate: 0.05, reorder: 0.1 }, { isn: 2 ** 32 - n / 2, cc });
    for (const m of messages(n)) left.send(m.type, m.data);
    const done = await until(() => received.length >= n && left.settled, 60_000);
    t.ok(done, `all delivered and acknowledged (${received.length} delivered, ${left.inFlight} in flight)`);
    t.ok(inOrderOnce(received, n), 'in order, none twice, none missing');
    t.ok(fromA.some((p) => p.sequence < n) && fromA.some((p) => p.sequence > 2 ** 32 - n), 'the sequence numbers did wrap');
    t.ok(left.stats.retransmissions > 0, `lost packets were sent again (${left.stats.retransmissions})`);
    t.ok(right.stats.duplicates > 0, `duplicates were dropped (${right.stats.duplicates})`);
    t.ok(right.stats.outOfOrder > 0, `out-of-order packets waited in the reorder buffer (${right.stats.outOfOrder})`);
    if (cc === 'aimd') t.ok(left.stats.lossEvents > 0, `AIMD cut its window on losses (${left.stats.lossEvents} times)`);
  });
}

t.test('flow control: the sender never goes past through + the window the receiver advertises', async (t) => {
  const { left, received, fromA } = pair(t, { loss: 0.1 }, { cc: 'none', isn: 0 }, { window: 8 });
  const acks: Packet[] = [];
  const receive = left.receive.bind(left);
  left.receive = (p: Packet) => {
    acks.push(p);
    receive(p);
  };
  for (const m of messages(500)) left.send(m.type, m.data);
  t.ok(await until(() => received.length === 500, 30_000), 'all 500 delivered');
  t.ok(acks.every((p) => p.window <= 8), 'the receiver never advertised more than its 8 packets');
  // Replay: at each data packet first sent, the highest `through` the sender had seen + 8 bounds its sequence.
  let worst = -Infinity;
  const throughSeen: number[] = [];
  for (const p of acks) if (p.flags & Flag.ACK) throughSeen.push(p.through);
  const highestThrough = Math.max(...throughSeen);
  for (const p of fromA) if (p.type === Type.DATA) worst = Math.max(worst, p.sequence - highestThrough);
  t.ok(worst < 8, `no packet beyond the last through + 8 (worst ${worst})`);
  t.ok(fromA.filter((p) => p.type === Type.DATA).length >= 500);
});

t.test('RTT is measured per packet and smoothed as RFC 6298 says; an expiry doubles the RTO', async (t) => {
  let now = 1000;
  const sent: Packet[] = [];
  const conn = new Connection({ connection: 9, isn: 100, send: (b) => sent.push(decodePacket(b)), onMessage: () => {}, onTimeout: () => {}, now: () => now, tickMs: 0, minRtoMs: 1 });
  t.teardown(() => conn.close());
  conn.send(Type.DATA, new Uint8Array([1]));
  await new Promise((r) => setImmediate(r));
  t.equal(sent.length, 1);
  t.equal(sent[0]?.flags, Flag.SYN, 'the first packet carries SYN');
  now += 100;
  const ackOf = (seq: number): Packet => ({ sequence: 0, ack: wrap(seq), ackBitfield: 0, type: Type.ACK, flags: Flag.ACK, window: 64, connection: 9, through: wrap(seq + 1), data: new Uint8Array(0) });
  conn.receive(ackOf(100));
  t.equal(conn.stats.srttMs, 100, 'first sample: SRTT = R');
  t.equal(conn.stats.rtoMs, 300, 'RTO = SRTT + 4 × RTTVAR (R/2)');
  conn.send(Type.DATA, new Uint8Array([2]));
  await new Promise((r) => setImmediate(r));
  now += 20;
  conn.receive(ackOf(101));
  t.equal(conn.stats.srttMs, 90, 'SRTT = 7/8 × 100 + 1/8 × 20');
  conn.send(Type.DATA, new Uint8Array([3]));
  await new Promise((r) => setImmediate(r));
  const rto = conn.stats.rtoMs;
  now += rto + 1;
  conn.tick();
  t.equal(conn.stats.timeouts, 1, 'the timer expired');
  t.equal(conn.stats.retransmissions, 1, 'and the packet was sent again');
  t.equal(sent.at(-1)?.sequence, 102);
  now += rto; // less than the doubled RTO: no second expiry yet
  conn.tick();
  t.equal(conn.stats.timeouts, 1, 'the RTO doubled (backoff)');
  now += rto + 1;
  conn.tick();
  t.equal(conn.stats.timeouts, 2);
  // An acknowledgement of a retransmitted packet is not timed (Karn).
  const before = conn.stats.srttMs;
  conn.receive(ackOf(102));
  t.equal(conn.stats.srttMs, before, 'Karn: no sample from a retransmitted packet');
  t.ok(conn.settled);
});

t.test('a silent peer ends the connection with onTimeout', async (t) => {
  let now = 0;
  let silent = 0;
  const conn = new Connection({ connection: 1, send: () => {}, onMessage: () => {}, onTimeout: (ms) => (silent = ms), now: () => now, tickMs: 0, idleTimeoutMs: 5000 });
  now = 4000;
  conn.tick();
  t.equal(silent, 0);
  now = 5001;
  conn.tick();
  t.equal(silent, 5001);
});

t.test("GoodBadMode follows the article: bad above the RTT threshold, back to good after the penalty, penalty doubles if good does not last", async (t) => {
  const mode = new GoodBadMode({ thresholdMs: 250, goodWindow: 100, badWindow: 10 });
  t.equal(mode.update(100, 50), 100, 'good mode: large window');
  t.equal(mode.update(100, 300), 10, 'RTT above threshold: bad mode');
  t.equal(mode.penaltyMs, 8000, 'good mode lasted < 10 s: penalty doubled from 4 s');
  for (let i = 0; i < 79; i++) mode.update(100, 50);
  t.equal(mode.mode, 'bad', 'still bad before the penalty time has passed');
  for (let i = 0; i < 3; i++) mode.update(100, 50);
  t.equal(mode.mode, 'good', 'good again after 8 s of good conditions');
  for (let i = 0; i < 101; i++) mode.update(100, 50);
  t.equal(mode.penaltyMs, 4000, '10 s of good conditions halve the penalty');
});

t.test('a peer that acknowledges nothing gets the initial window, one batch again, then one probe per timeout, and is given up', async (t) => {
  let now = 0;
  const sent: Packet[] = [];
  let reason = '';
  const conn = new Connection({ connection: 3, isn: 0, send: (b) => sent.push(decodePacket(b)), onMessage: () => {}, onTimeout: (_ms, r) => (reason = r), now: () => now, tickMs: 0, cc: 'none', maxTimeouts: 5, idleTimeoutMs: 1e9 });
  t.teardown(() => conn.close());
  // The peer's first packet told its window (1024); it never acknowledges anything after.
  conn.receive({ sequence: 50, ack: 0, ackBitfield: 0, type: Type.GET, flags: Flag.SYN, window: 1024, connection: 3, through: 0, data: new Uint8Array(0) });
  for (const m of messages(100)) conn.send(m.type, m.data);
  await new Promise((r) => setImmediate(r));
  const data = () => sent.filter((p) => p.type === Type.DATA).length;
  t.equal(data(), 10, 'no more than the initial window (10) before the peer acknowledges one');
  for (let i = 0; i < 20 && !reason; i++) {
    now += 2000;
    conn.tick();
  }
  t.equal(reason, 'unacknowledged', 'the connection gave up');
  t.equal(data(), 10 + 10 + 4, 'the first expiry sent the 10 again, the next 4 one probe each, the 6th gave up');
});

t.test('once the peer acknowledges a packet, the window opens past the initial 10', async (t) => {
  let now = 0;
  const sent: Packet[] = [];
  const conn = new Connection({ connection: 4, isn: 0, send: (b) => sent.push(decodePacket(b)), onMessage: () => {}, onTimeout: () => {}, now: () => now, tickMs: 0, cc: 'none' });
  t.teardown(() => conn.close());
  for (const m of messages(100)) conn.send(m.type, m.data);
  conn.receive({ sequence: 50, ack: 0, ackBitfield: 0, type: Type.ACK, flags: Flag.ACK, window: 1024, connection: 4, through: 0, data: new Uint8Array(0) });
  await new Promise((r) => setImmediate(r));
  t.equal(sent.length, 10, 'before: the initial window');
  now += 5;
  conn.receive({ sequence: 51, ack: 0, ackBitfield: 0, type: Type.ACK, flags: Flag.ACK, window: 1024, connection: 4, through: 1, data: new Uint8Array(0) });
  await new Promise((r) => setImmediate(r));
  t.equal(sent.length, 100, 'after the first ack: everything the peer window allows');
});
