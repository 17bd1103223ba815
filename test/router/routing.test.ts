/**
 * Route table and balancing: the library API the manifold uses, Host routing, the three balance
 * strategies, and rolling backend changes under load without a single failed request.
 */
import t from 'tap';
import { RouteTable, RouterError } from '../../src/router/index';
import { RawClient } from './helpers/client';
import { FakeDyno, okResponse } from './helpers/fake-dyno';
import { sleep, startRouter } from './helpers/router';

t.test('route table: atomic snapshots, validation keeps the old table, helpers', async (t) => {
  const table = new RouteTable();
  let changes = 0;
  table.on('change', () => changes++);
  table.replace({ apps: { a: { hosts: ['A.test', 'www.a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:5001' }, { dyno: 'web.2', address: '127.0.0.1:5002', state: 'starting' }] } } });
  const snap = table.snapshot;
  t.equal(table.lookupHost('a.test')?.name, 'a', 'hosts are lower-cased');
  t.equal(table.lookupHost('www.a.test')?.up.length, 1);
  t.equal(table.lookupHost('www.a.test')?.starting, 1);
  t.ok(Object.isFrozen(table.app('a')), 'app routes are immutable');
  t.throws(() => table.replace({ apps: { b: { hosts: ['b.test'], backends: [{ dyno: 'web.1', address: 'nope' }] } } }), RouterError);
  t.throws(() => table.replace({ apps: { a: { hosts: ['x.test'] }, b: { hosts: ['x.test'] } } }), /claimed by both/);
  t.equal(table.snapshot, snap, 'a rejected update leaves the table untouched');
  table.setBackendState('a', 'web.2', 'up');
  t.equal(table.app('a')?.up.length, 2);
  t.equal(snap.apps.get('a')?.up.length, 1, 'an old snapshot never changes under a reader');
  table.setMaintenance('a', true);
  t.ok(table.app('a')?.maintenance);
  table.setCrashed('a', { message: 'boom' });
  t.equal(table.app('a')?.crashed, 'boom');
  t.same(table.toJSON().apps.a?.crashed, { message: 'boom' });
  table.setCrashed('a', false);
  table.setBackends('a', []);
  t.equal(table.app('a')?.backends.length, 0);
  table.removeApp('a');
  t.equal(table.lookupHost('a.test'), undefined);
  t.equal(changes, 7, 'one change event per successful update');
});

async function dynos(n: number): Promise<FakeDyno[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => FakeDyno.start((_req, _conn, d) => okResponse(d.name), `web.${i + 1}`)));
}

t.test('round-robin is the default', async (t) => {
  const ds = await dynos(3);
  const r = await startRouter({ a: { hosts: ['a.test'], backends: ds.map((d) => ({ dyno: d.name, address: d.address })) } });
  t.teardown(async () => { await r.close(); await Promise.all(ds.map((d) => d.close())); });
  const c = await RawClient.connect(r.port);
  const order: string[] = [];
  for (let i = 0; i < 9; i++) {
    c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    order.push((await c.readResponse()).body.toString());
  }
  t.same(order, ['web.1', 'web.2', 'web.3', 'web.1', 'web.2', 'web.3', 'web.1', 'web.2', 'web.3']);
  t.same(r.logs.map((l) => l.dyno), order, 'dyno= in the log matches');
  c.close();
});

t.test('random spreads requests', async (t) => {
  const ds = await dynos(3);
  const r = await startRouter({ a: { hosts: ['a.test'], backends: ds.map((d) => ({ dyno: d.name, address: d.address })) } }, { balance: 'random' });
  t.teardown(async () => { await r.close(); await Promise.all(ds.map((d) => d.close())); });
  const c = await RawClient.connect(r.port);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 300; i++) {
    c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    const who = (await c.readResponse()).body.toString();
    counts[who] = (counts[who] ?? 0) + 1;
  }
  for (const d of ds) t.ok((counts[d.name] ?? 0) > 50, `${d.name} got ${counts[d.name]}`);
  t.not(JSON.stringify(r.logs.slice(0, 9).map((l) => l.dyno)), JSON.stringify(['web.1', 'web.2', 'web.3', 'web.1', 'web.2', 'web.3', 'web.1', 'web.2', 'web.3']), 'not round-robin');
  c.close();
});

t.test('least-outstanding avoids the busy dyno', async (t) => {
  const slow = await FakeDyno.start((_req, conn) => {
    setTimeout(() => conn.socket.write(okResponse('slow')), 800);
    return null;
  }, 'web.1');
  const fast = await FakeDyno.start(() => okResponse('fast'), 'web.2');
  const backends = [{ dyno: 'web.1', address: slow.address }, { dyno: 'web.2', address: fast.address }];
  for (const balance of ['least-outstanding', 'round-robin'] as const) {
    const r = await startRouter({ a: { hosts: ['a.test'], backends } }, { balance });
    const busy = await RawClient.connect(r.port);
    busy.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    await sleep(50);
    const c = await RawClient.connect(r.port);
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
      got.push((await c.readResponse()).body.toString());
    }
    if (balance === 'least-outstanding') t.same(got, ['fast', 'fast', 'fast', 'fast'], 'every request went to the idle dyno');
    else t.ok(got.includes('slow'), 'round-robin does send to the busy dyno (control)');
    busy.close();
    c.close();
    await r.close();
  }
  await slow.close();
  await fast.close();
});

t.test('waitIdle: a draining dyno is reported idle when its last in-flight request is answered', async (t) => {
  const slow = await FakeDyno.start((_req, conn) => {
    setTimeout(() => conn.socket.write(okResponse('slow')), 600);
    return null;
  }, 'web.1');
  const r = await startRouter({ a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: slow.address }] } });
  t.teardown(async () => { await r.close(); await slow.close(); });
  const started = Date.now();
  await r.router.waitIdle('a', slow.address, 5000);
  t.ok(Date.now() - started < 100, 'no request in flight: idle at once');

  const c = await RawClient.connect(r.port);
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  await slow.waitFor(() => slow.requests.length >= 1);
  t.equal(r.router.balancer.inFlight(slow.address), 1, 'one request in flight');
  // the manifold marks the dyno draining: no new requests, the one in flight continues
  r.router.table.setBackendState('a', 'web.1', 'draining');
  const drainStart = Date.now();
  const response = c.readResponse();
  await r.router.waitIdle('a', slow.address, 5000);
  const waited = Date.now() - drainStart;
  t.equal((await response).body.toString(), 'slow', 'the in-flight request was answered');
  t.ok(waited >= 400 && waited < 2000, `waitIdle resolved when the request ended (${waited} ms), not at the timeout`);
  t.equal(r.router.balancer.inFlight(slow.address), 0, 'nothing in flight');

  // a request that outlives the cap: waitIdle gives up at the timeout
  r.router.table.setBackendState('a', 'web.1', 'up');
  c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  await slow.waitFor(() => slow.requests.length >= 2);
  const capStart = Date.now();
  await r.router.waitIdle('a', slow.address, 150);
  const capped = Date.now() - capStart;
  t.ok(capped >= 140 && capped < 1500, `gave up at the 150 ms cap (${capped} ms)`);
  t.equal(r.router.balancer.inFlight(slow.address), 1, 'the request is still in flight');
  await c.readResponse();
  c.close();
});

t.test('rolling backend changes under load: no failed requests', async (t) => {
  let serial = 0;
  const live: FakeDyno[] = [];
  const spawnDyno = async (): Promise<FakeDyno> => {
    const d = await FakeDyno.start((req, _c, self) => okResponse(`${self.name}:${req.body.length}`), `web.${++serial}`);
    live.push(d);
    return d;
  };
  let current: FakeDyno[] = await Promise.all([spawnDyno(), spawnDyno()]);
  const r = await startRouter({ a: { hosts: ['a.test'], backends: current.map((d) => ({ dyno: d.name, address: d.address })) } });
  t.teardown(async () => { await r.close(); await Promise.all(live.map((d) => d.close())); });

  const DURATION_MS = 3000;
  const MAX_REQUESTS = 20_000;
  let ok = 0;
  let failed = 0;
  let issued = 0;
  const failures: string[] = [];
  const stopAt = Date.now() + DURATION_MS;
  const worker = async (id: number): Promise<void> => {
    let c = await RawClient.connect(r.port);
    while (Date.now() < stopAt && issued < MAX_REQUESTS) {
      issued++;
      const post = issued % 3 === 0;
      c.write(post ? 'POST /w HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nbody' : `GET /${id} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
      try {
        const res = await c.readResponse({}, 3000);
        if (res.status === 200) ok++;
        else {
          failed++;
          failures.push(res.startLine);
        }
      } catch (err) {
        failed++;
        failures.push(String(err));
        c.close();
        c = await RawClient.connect(r.port);
      }
    }
    c.close();
  };
  const roller = (async () => {
    while (Date.now() < stopAt - 400) {
      await sleep(250);
      // Heroku-style restart of one dyno: start the new one, let it come up, drain the old one, stop it.
      const old = current[0]!;
      const fresh = await spawnDyno();
      r.router.table.setBackends('a', [...current.map((d) => ({ dyno: d.name, address: d.address })), { dyno: fresh.name, address: fresh.address, state: 'starting' as const }]);
      await sleep(30);
      r.router.table.setBackends('a', [
        { dyno: old.name, address: old.address, state: 'draining' as const },
        ...current.slice(1).map((d) => ({ dyno: d.name, address: d.address })),
        { dyno: fresh.name, address: fresh.address },
      ]);
      current = [...current.slice(1), fresh];
      await sleep(100);
      r.router.table.setBackends('a', current.map((d) => ({ dyno: d.name, address: d.address })));
      await old.close();
    }
  })();
  await Promise.all([...Array.from({ length: 8 }, (_, i) => worker(i)), roller]);
  t.ok(serial >= 6, `${serial - 2} dyno replacements happened`);
  t.ok(ok > 500, `${ok} requests succeeded`);
  t.equal(failed, 0, `no failed requests (${failures.slice(0, 3).join('; ')})`);
  t.equal(r.logs.filter((l) => l.code !== null).length, 0, 'no H-codes logged');
});
