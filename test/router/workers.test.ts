/**
 * `manifold router --workers N`: N router worker threads on one SO_REUSEPORT port, fed from the main
 * thread's table (src/router/workers/). Real sockets on loopback; every wait is bounded and no
 * assertion is about timing. Which worker serves a connection is the kernel's choice (a hash of the
 * 4-tuple), so tests open connections until each worker has served some, within a bound.
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import { RouterWorkers, type WorkerLogLine } from '../../src/router/workers/pool';
import type { AppInput } from '../../src/router/index';
import { RawClient } from './helpers/client';
import { FakeDyno, okResponse } from './helpers/fake-dyno';

const LINE = /^at=info method=GET path="\/[^"]*" host=web\.test request_id=[A-Za-z0-9-]+ fwd="127\.0\.0\.1" dyno=web\.\d connect=\d+ms service=\d+ms status=200 bytes=\d+ protocol=http$/;

async function startPool(apps: Record<string, AppInput>, workers = 2): Promise<{ pool: RouterWorkers; port: number; logs: WorkerLogLine[] }> {
  const pool = new RouterWorkers({ workers, config: { listen: [{ host: '127.0.0.1', port: 0 }] }, restartDelayMs: 0 });
  const logs: WorkerLogLine[] = [];
  pool.on('log', (e) => logs.push(e));
  pool.on('error', () => undefined); // a terminated worker's errors are expected here
  pool.table.replace({ apps });
  const [bound] = await pool.listen();
  return { pool, port: bound!.port, logs };
}

const web = (...dynos: FakeDyno[]): Record<string, AppInput> => ({ web: { hosts: ['web.test'], backends: dynos.map((d, i) => ({ dyno: `web.${i + 1}`, address: d.address })) } });

/** Two dynos (web.1 answers 'a', web.2 'b') behind a 2-worker pool; all closed at the test's end. */
async function twoDynoPool(t: Test): Promise<{ a: FakeDyno; b: FakeDyno; pool: RouterWorkers; port: number; logs: WorkerLogLine[] }> {
  const a = await FakeDyno.start(() => okResponse('a'), 'web.1');
  const b = await FakeDyno.start(() => okResponse('b'), 'web.2');
  const started = await startPool(web(a, b));
  t.teardown(async () => {
    await started.pool.close();
    await a.close();
    await b.close();
  });
  return { a, b, ...started };
}

let seq = 0;
/** The router keeps a client's X-Request-Id of 20-200 chars only. */
const rid = (id: string): string => `workers-test-req-${id}`;
/** One request with a known request id on `c`; resolves with its status. */
async function get(c: RawClient, id: string, path = '/'): Promise<number> {
  c.write(`GET ${path} HTTP/1.1\r\nHost: web.test\r\nX-Request-Id: ${rid(id)}\r\n\r\n`);
  const res = await c.readResponse();
  return res.status ?? 0;
}

/** The worker whose log line carries request id `id` (log lines arrive a turn after the response). */
async function servedBy(logs: WorkerLogLine[], id: string): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const hit = logs.find((l) => l.line.includes(`request_id=${rid(id)} `));
    if (hit) return hit.worker;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no log line for ${id}`);
}

/** Waits until `n` log lines contain `marker` (lines reach the main thread in batches, a few ms after the responses). */
async function linesArrived(logs: WorkerLogLine[], marker: string, n: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (logs.filter((l) => l.line.includes(marker)).length >= n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`only ${logs.filter((l) => l.line.includes(marker)).length} of ${n} log lines with ${marker}`);
}

/** Keep-alive connections until every worker has at least `each` of them (at most 200 connections). */
async function connsPerWorker(port: number, logs: WorkerLogLine[], workers: number, each: number): Promise<RawClient[][]> {
  const by: RawClient[][] = Array.from({ length: workers }, () => []);
  for (let n = 0; n < 200 && by.some((b) => b.length < each); n++) {
    const c = await RawClient.connect(port);
    const id = `probe-${++seq}`;
    if ((await get(c, id)) !== 200) throw new Error('probe request failed');
    by[await servedBy(logs, id)]!.push(c);
  }
  if (by.some((b) => b.length < each)) throw new Error(`connections per worker: ${by.map((b) => b.length).join(', ')}`);
  return by;
}

t.test('2 workers serve on one port; each round-robins over the dynos; log lines whole and in order', async (t) => {
  const { port, logs } = await twoDynoPool(t);
  const by = await connsPerWorker(port, logs, 2, 2);
  t.pass('both workers accept on the same port');
  // Per worker round-robin (docs/router.md#workers): 6 sequential requests on one connection of
  // each worker alternate between the two dynos; the lines come in the order they were served.
  for (const w of [0, 1]) {
    const c = by[w]![0]!;
    const ids = Array.from({ length: 6 }, (_, i) => `w${w}-seq-${i}`);
    for (const id of ids) t.equal(await get(c, id), 200);
    await servedBy(logs, ids[5]!);
    const mine = logs.filter((l) => ids.some((id) => l.line.includes(`request_id=${rid(id)} `)));
    t.same(
      mine.map((l) => /request_id=(\S+)/.exec(l.line)![1]),
      ids.map(rid),
      `worker ${w}: one line per request, in order`,
    );
    t.ok(mine.every((l) => l.worker === w), `worker ${w} served its connection's requests`);
    const dynos = mine.map((l) => /dyno=(\S+)/.exec(l.line)![1]);
    for (let i = 1; i < dynos.length; i++) t.not(dynos[i], dynos[i - 1], `worker ${w}: round-robin alternates (request ${i})`);
  }
  // Concurrent requests on many connections of both workers: every line whole, one per request.
  const all = by.flat();
  const burst = all.map((c, i) => Promise.all(Array.from({ length: 5 }, (_, k) => `burst-${i}-${k}`).map(async (id) => id)).then(async (ids) => {
    for (const id of ids) await get(c, id, `/burst/${id}`);
    return ids;
  }));
  const ids = (await Promise.all(burst)).flat();
  await Promise.all(ids.map((id) => servedBy(logs, id)));
  const lines = logs.filter((l) => l.line.includes('request_id=workers-test-req-burst-'));
  t.equal(lines.length, ids.length, 'one line per request');
  t.ok(lines.every((l) => LINE.test(l.line)), 'every line whole');
  t.ok(lines.every((l) => l.app === 'web'), 'each line names its app (the daemon files lines by app)');
  t.equal(new Set(lines.map((l) => /request_id=(\S+)/.exec(l.line)![1])).size, ids.length, 'no line duplicated');
  for (const c of all) c.close();
});

t.test('round-robin turns are shared by the workers: requests alternating between workers alternate dynos', async (t) => {
  const { port, logs } = await twoDynoPool(t);
  const by = await connsPerWorker(port, logs, 2, 1);
  // One request at a time, on worker 0's connection, then worker 1's, and so on: one router would
  // alternate dynos; so must the pool (a per-worker cursor would give each worker's first request
  // to the same dyno).
  const ids = Array.from({ length: 8 }, (_, i) => `shared-rr-${i}`);
  for (let i = 0; i < ids.length; i++) t.equal(await get(by[i % 2]![0]!, ids[i]!), 200);
  await Promise.all(ids.map((id) => servedBy(logs, id))); // each worker's lines come in its own batches
  const mine = ids.map((id) => logs.find((l) => l.line.includes(`request_id=${rid(id)} `))!);
  t.same(mine.map((l) => l.worker), [0, 1, 0, 1, 0, 1, 0, 1], 'the requests alternated between the workers');
  const dynos = mine.map((l) => /dyno=(\S+)/.exec(l.line)![1]);
  for (let i = 1; i < dynos.length; i++) t.not(dynos[i], dynos[i - 1], `request ${i} went to the other dyno`);
  for (const c of by.flat()) c.close();
});

t.test('a route change acknowledged by synced() reaches every worker: no request to the removed dyno after it', async (t) => {
  const { a, b, pool, port, logs } = await twoDynoPool(t);
  // keep-alive connections on both workers, opened before the change (their workers hold pooled dyno connections too)
  const by = await connsPerWorker(port, logs, 2, 2);
  t.ok(b.requests.length > 0, 'web.2 was in use before the change');
  pool.table.setBackends('web', [{ dyno: 'web.1', address: a.address }]);
  await pool.synced();
  const before = b.requests.length;
  for (const c of by.flat()) for (let i = 0; i < 4; i++) t.equal(await get(c, `after-${++seq}`), 200);
  for (let i = 0; i < 20; i++) {
    const c = await RawClient.connect(port);
    t.equal(await get(c, `after-new-${++seq}`), 200);
    c.close();
  }
  t.equal(b.requests.length, before, 'no worker sent a request to the removed dyno after synced()');
  // and back: a dyno added is used by every worker after synced()
  pool.table.setBackends('web', [{ dyno: 'web.1', address: a.address }, { dyno: 'web.2', address: b.address }]);
  await pool.synced();
  for (const c of by.flat()) for (let i = 0; i < 2; i++) await get(c, `back-${++seq}`);
  await linesArrived(logs, 'request_id=workers-test-req-back-', by.flat().length * 2);
  const served = new Set(logs.filter((l) => l.line.includes('request_id=workers-test-req-back-') && l.line.includes('dyno=web.2')).map((l) => l.worker));
  t.same([...served].sort(), [0, 1], 'both workers route to the re-added dyno');
  for (const c of by.flat()) c.close();
});

t.test('101 swaps back to back (posted to each worker one at a time): synced() waits for the last, every worker routes by it', async (t) => {
  const { a, b, pool, port, logs } = await twoDynoPool(t);
  const by = await connsPerWorker(port, logs, 2, 2);
  const onlyA = [{ dyno: 'web.1', address: a.address }];
  const onlyB = [{ dyno: 'web.2', address: b.address }];
  // a reload commits in slices a turn apart; here every swap comes in one turn, the worst case for ordering
  for (let i = 0; i <= 100; i++) pool.table.setBackends('web', i % 2 === 0 ? onlyB : onlyA);
  const last = pool.table.version;
  await pool.synced();
  t.equal(pool.table.version, last, 'nothing else swapped meanwhile');
  const before = a.requests.length;
  for (const c of by.flat()) for (let i = 0; i < 3; i++) t.equal(await get(c, `burst-${++seq}`), 200);
  await linesArrived(logs, 'request_id=workers-test-req-burst-', by.flat().length * 3);
  const burst = logs.filter((l) => l.line.includes('request_id=workers-test-req-burst-'));
  t.same([...new Set(burst.map((l) => l.worker))].sort(), [0, 1], 'both workers served');
  t.ok(burst.every((l) => l.line.includes('dyno=web.2')), 'every request went to the last swap\'s dyno');
  t.equal(a.requests.length, before, 'none to the dyno of the swap before it');
  for (const c of by.flat()) c.close();
});

t.test('a worker that dies is restarted; the other keeps its connections', async (t) => {
  const a = await FakeDyno.start(() => okResponse('a'), 'web.1');
  const { pool, port, logs } = await startPool(web(a));
  t.teardown(async () => {
    await pool.close();
    await a.close();
  });
  const by = await connsPerWorker(port, logs, 2, 2);
  const oldThread = pool.threadIds()[0];
  const restarted = new Promise<number>((resolve) => pool.once('worker-restart', (i: number, threadId: number) => i === 0 && resolve(threadId)));
  await pool.terminateWorker(0);
  // worker 1's connections never noticed
  for (const c of by[1]!) t.equal(await get(c, `survivor-${++seq}`), 200, 'worker 1 connection still served');
  for (const c of by[0]!) await c.waitClose();
  t.pass("worker 0's own connections were closed with it");
  // a route change while worker 0 is down or starting reaches the new worker too
  pool.table.setApp('other', { hosts: ['other.test'], backends: [{ dyno: 'web.1', address: a.address }] });
  const threadId = await restarted;
  t.not(threadId, oldThread, 'a new thread took slot 0');
  await pool.synced();
  const fresh = await connsPerWorker(port, logs, 2, 1);
  t.pass('the restarted worker accepts again');
  const c = fresh[0]![0]!;
  c.write('GET / HTTP/1.1\r\nHost: other.test\r\n\r\n');
  t.equal((await c.readResponse()).status, 200, 'the restarted worker has the table as changed while it was down');
  for (const x of [...by.flat(), ...fresh.flat()]) x.close();
});

t.test('waitIdle covers every worker', async (t) => {
  let held: (() => void)[] = [];
  const a = await FakeDyno.start((_req, conn) => {
    held.push(() => conn.socket.write(okResponse('late')));
    return null;
  }, 'web.1');
  const { pool, port, logs } = await startPool(web(a));
  t.teardown(async () => {
    await pool.close();
    await a.close();
  });
  // one request held by the dyno on each worker (the probe requests are held too: release them)
  const probe = connsPerWorker(port, logs, 2, 1);
  const release = setInterval(() => {
    for (const h of held) h();
    held = [];
  }, 20);
  const by = await probe;
  clearInterval(release);
  const inflight = by.map((w) => get(w[0]!, `held-${++seq}`));
  await a.waitFor(() => held.length === 2, 5000, 'two held requests');
  let idle = false;
  let linesAtIdle = -1;
  const waiting = pool.waitIdle('web', a.address, 10_000).then(() => {
    idle = true;
    linesAtIdle = logs.filter((l) => l.line.includes('request_id=workers-test-req-held-')).length;
  });
  held.shift()!();
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(idle, 'not idle while the other worker still has a request in flight');
  held.shift()!();
  await waiting;
  t.ok(idle, 'idle once both workers answered');
  t.equal(linesAtIdle, 2, "both requests' log lines arrived before waitIdle resolved (the daemon logs its SIGTERM after them)");
  await Promise.all(inflight);
  for (const c of by.flat()) c.close();
});

t.test('a port something else holds is refused, even by another pool with SO_REUSEPORT (no silent sharing)', async (t) => {
  const a = await FakeDyno.start(() => okResponse('a'), 'web.1');
  const first = await startPool(web(a));
  t.teardown(async () => {
    await first.pool.close();
    await a.close();
  });
  // a second pool on the first one's port: its workers would join the first pool's SO_REUSEPORT group
  const second = new RouterWorkers({ workers: 2, config: { listen: [{ host: '127.0.0.1', port: first.port }] }, restartDelayMs: 0 });
  second.on('error', () => undefined);
  await t.rejects(second.listen(), { code: 'ELISTEN', message: new RegExp(`EADDRINUSE: address already in use 127\\.0\\.0\\.1:${first.port}`) });
  await second.close();
  t.equal(second.threadIds().filter((id) => id !== null).length, 0, 'no worker of the refused pool runs');
  // a plain server (no SO_REUSEPORT) holding a port
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.teardown(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const third = new RouterWorkers({ workers: 2, config: { listen: [{ host: '127.0.0.1', port }] }, restartDelayMs: 0 });
  await t.rejects(third.listen(), { code: 'ELISTEN', message: /EADDRINUSE/ });
  await third.close();
  // the first pool still serves, alone on its port
  const c = await RawClient.connect(first.port);
  t.equal(await get(c, `still-${++seq}`), 200);
  c.close();
});
