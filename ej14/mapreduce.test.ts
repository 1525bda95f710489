import net from 'node:net';
import t, { type Test } from 'tap';
import { runJob } from './master.ts';
import { startMapper } from './mapper.ts';
import { type Config, decodeTable, encodeTable, type Frame, frame, readFrames, readText, Type } from './protocol.ts';
import { startReducer } from './reducer.ts';
import { countText, formatTable } from './wordcount.ts';

const host = '127.0.0.1';
const TEXT = Array.from({ length: 3000 }, (_, i) => ['En un lugar de la Mancha,', 'de cuyo nombre no quiero acordarme,', 'SEÑOR Quijote; señor\r\n', 'pingüino ñandú'][i % 4]).join(' ');
const INPUT = new TextEncoder().encode(TEXT);

/** A reducer and `count` mappers in this process, on ports the kernel picks. */
/** A port that was free a moment ago: nothing listens there. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, host, resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function cluster(t: Test, count: number): Promise<Config> {
  const reducer = await startReducer({ host, port: 0, grantTimeoutMs: 5000 });
  t.teardown(() => reducer.close());
  const config: Config = { reducer: { name: 'reducer', host, port: reducer.port }, mappers: [] };
  for (let i = 1; i <= count; i++) {
    const mapper = await startMapper({ host, port: 0, reducer: config.reducer });
    t.teardown(() => mapper.close());
    config.mappers.push({ name: `mapper${i}`, host, port: mapper.port });
  }
  return config;
}

/** Sends frames on one connection and collects the answers until the peer closes. */
function converse(port: number, frames: Uint8Array[], onFrame?: (f: Frame, socket: net.Socket) => void): Promise<Frame[]> {
  return new Promise((resolve) => {
    const got: Frame[] = [];
    const socket = net.connect({ host, port }, () => {
      for (const f of frames) socket.write(f);
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(got));
    readFrames(
      socket,
      (f) => {
        got.push(f);
        onFrame?.(f, socket);
      },
      () => {},
    );
  });
}

/** The first frame of `type` in `frames` (which a reader fills), waited for up to 10 s (not a fixed pause). */
async function arrival(frames: Frame[], type: number): Promise<Frame | undefined> {
  for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((resolve) => setTimeout(resolve, 10))) {
    const found = frames.find((f) => f.type === type);
    if (found) return found;
  }
  return undefined;
}

t.test('runJob() over 4 in-process mappers equals the single-process count', async (t) => {
  const config = await cluster(t, 4);
  const result = await runJob({ input: INPUT, config });
  t.equal(result.pieces.length, 2, 'half as many pieces as mappers');
  t.ok(result.assignments >= 2);
  t.same(result.lost, []);
  t.equal(formatTable(result.table), formatTable(countText(TEXT)));
});

t.test('runJob() with one copy per piece reassigns the piece of a mapper that is gone', async (t) => {
  const config = await cluster(t, 2);
  // A third "mapper", first in the list, that refuses connections.
  config.mappers.unshift({ name: 'mapper0', host, port: await closedPort() });
  const lines: string[] = [];
  const result = await runJob({ input: INPUT, config, copies: 1, log: (line) => lines.push(line) });
  t.equal(result.lost.length, 1, `one mapper lost: ${result.lost[0]}`);
  t.ok(lines.some((line) => /reassigned/.test(line)), 'the master says it reassigned the piece');
  t.equal(formatTable(result.table), formatTable(countText(TEXT)));
});

t.test('runJob() fails with a clear error when the reducer is not there, or is not a reducer', async (t) => {
  const config = await cluster(t, 2);
  await t.rejects(runJob({ input: INPUT, config: { ...config, reducer: { ...config.reducer, port: await closedPort() } } }), /cannot connect to the reducer .*connection refused/);
  const wrong = { ...config, reducer: { ...config.reducer, port: config.mappers[0]!.port } };
  await t.rejects(runJob({ input: INPUT, config: wrong, taskTimeoutMs: 2000 }), /the reducer refused the job: unexpected JOB/);
});

t.test('the reducer counts one copy per piece: a second TABLE for the same piece is denied and changes nothing', async (t) => {
  const reducer = await startReducer({ host, port: 0 });
  t.teardown(() => reducer.close());
  const job = new Uint8Array(16).fill(7);
  const results: Frame[] = [];
  const master = net.connect({ host, port: reducer.port });
  master.on('error', () => {});
  t.teardown(() => master.destroy());
  readFrames(master, (f) => results.push(f), () => {});
  master.write(frame(Type.JOB, job, 2));
  await arrival(results, Type.JOB_OK);
  t.equal(results[0]?.type, Type.JOB_OK, 'the job is accepted');

  const send = (piece: number, table: Map<string, number>) =>
    converse(reducer.port, [frame(Type.OFFER, job, piece, new TextEncoder().encode(`test-${piece}`))], (f, socket) => {
      if (f.type === Type.GRANT) socket.write(frame(Type.TABLE, job, piece, encodeTable(table)));
    });
  const first = await send(1, new Map([['a', 1]]));
  t.same(first.map((f) => f.type), [Type.GRANT, Type.STORED], 'first copy of piece 1: granted and stored');
  const again = await send(1, new Map([['a', 1000]]));
  t.same(again.map((f) => f.type), [Type.DENY], 'second copy of piece 1: denied');
  t.match(readText(again[0]!.payload), /duplicate/);
  const unknown = await converse(reducer.port, [frame(Type.OFFER, new Uint8Array(16), 1)]);
  t.match(readText(unknown[0]!.payload), /unknown job/, 'an offer for an unknown job is denied');
  await send(2, new Map([['a', 2], ['b', 1]]));
  const result = await arrival(results, Type.RESULT);
  t.ok(result, 'the master gets the RESULT once both pieces are in');
  t.same(Object.fromEntries(decodeTable(result!.payload)), { a: 3, b: 1 }, 'piece 1 counted once');
  t.same(results.filter((f) => f.type === Type.PIECE_STORED).map((f) => f.piece), [1, 2]);
});

t.test('the reducer closes a connection that sends a malformed frame', async (t) => {
  const reducer = await startReducer({ host, port: 0 });
  t.teardown(() => reducer.close());
  const answers = await converse(reducer.port, [Uint8Array.of(0, 0, 0, 1, 9)]);
  t.equal(answers[0]?.type, Type.ERROR);
  t.match(readText(answers[0]!.payload), /length 1/);
});

t.test('runJob() with waitMs waits for a reducer and a mapper that are still starting; without it, refuses at once', async (t) => {
  const [reducerPort, mapperPort] = [await closedPort(), await closedPort()];
  const config: Config = { reducer: { name: 'reducer', host, port: reducerPort }, mappers: [{ name: 'mapper1', host, port: mapperPort }] };
  await t.rejects(runJob({ input: INPUT, config }), /cannot connect to the reducer .*connection refused/, 'waitMs 0: the first refusal ends it');
  const lines: string[] = [];
  const job = runJob({ input: INPUT, config, copies: 1, waitMs: 10_000, taskTimeoutMs: 10_000, log: (line) => lines.push(line) });
  // The nodes start once the master has been refused by each (an event, not a pause).
  for (const until = Date.now() + 10_000; !lines.some((l) => /reducer .* connection refused; trying again/.test(l)) && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 10));
  const reducer = await startReducer({ host, port: reducerPort });
  t.teardown(() => reducer.close());
  for (const until = Date.now() + 10_000; !lines.some((l) => /mapper1 .* connection refused; trying again/.test(l)) && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 10));
  const mapper = await startMapper({ host, port: mapperPort, reducer: config.reducer });
  t.teardown(() => mapper.close());
  const result = await job;
  t.same(result.lost, [], `no mapper lost (${lines.join(' | ')})`);
  t.equal(formatTable(result.table), formatTable(countText(TEXT)), 'the exact count');
});
