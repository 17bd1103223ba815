/**
 * A 10 000-app routes file reloaded while requests flow (issue 12), through the RoutesLoader the
 * standalone router uses: every request is answered by its app's old backend or its new one,
 * never another app's and never an error; after the load every changed app has its new route;
 * a bad file changes nothing. No timing here: latency is bench/router-reload.ts's job.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { RoutesLoader } from '../../src/router/index';
import { RawClient } from './helpers/client';
import { FakeDyno, okResponse } from './helpers/fake-dyno';
import { startRouter } from './helpers/router';

const APPS = 10_000;

/** v0: app i → dyno one (even) or two (odd). v1: apps below 5000 → three, app-9999 gone, app-new added. */
function routes(version: 0 | 1, d: Record<'one' | 'two' | 'three', FakeDyno>): string {
  const apps: Record<string, unknown> = {};
  for (let i = 0; i < APPS; i++) {
    if (version === 1 && i === APPS - 1) continue;
    const dyno = version === 1 && i < 5000 ? d.three : i % 2 === 0 ? d.one : d.two;
    apps[`app-${i}`] = { hosts: [`app-${i}.test`], backends: [{ dyno: dyno.name, address: dyno.address }] };
  }
  if (version === 1) apps['app-new'] = { hosts: ['app-new.test'], backends: [{ dyno: d.three.name, address: d.three.address }] };
  return JSON.stringify({ apps });
}

const expectedOld = (i: number): string => (i % 2 === 0 ? 'one' : 'two');
const expectedNew = (i: number): string => (i < 5000 ? 'three' : expectedOld(i));

t.test('reload of a 10 000-app file under traffic: every request answered by the old or the new route', async (t) => {
  const names = ['one', 'two', 'three'] as const;
  const started = await Promise.all(names.map((n) => FakeDyno.start((_req, _c, self) => okResponse(self.name), n)));
  const d = { one: started[0]!, two: started[1]!, three: started[2]! };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-reload-big-'));
  const file = path.join(dir, 'routes.json');
  fs.writeFileSync(file, routes(0, d));
  const r = await startRouter({});
  const loader = new RoutesLoader(r.router.table, file);
  t.teardown(async () => {
    await loader.close();
    await r.close();
    await Promise.all(started.map((x) => x.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const first = await loader.load(true);
  t.same(first, { changed: true, updated: APPS, removed: 0, total: APPS }, 'first load: every app');
  t.equal(r.router.table.snapshot.apps.size, APPS);

  let reloaded = false;
  let answered = 0;
  const wrong: string[] = [];
  const MAX_REQUESTS = 20_000;
  const worker = async (seed: number): Promise<void> => {
    const c = await RawClient.connect(r.port);
    let n = seed;
    // requests go on until the reload is done, and a little after (bounded in count)
    for (let k = 0; (!reloaded || k % 50 !== 0) && answered < MAX_REQUESTS; k++) {
      n = (n * 1103515245 + 12345) % 2147483648;
      const i = n % (APPS - 1); // app-9999 is removed by the reload: not asked here
      const wasDone = reloaded;
      c.write(`GET / HTTP/1.1\r\nHost: app-${i}.test\r\n\r\n`);
      const res = await c.readResponse();
      answered++;
      const body = res.body.toString();
      const ok = res.status === 200 && (wasDone ? body === expectedNew(i) : body === expectedOld(i) || body === expectedNew(i));
      if (!ok && wrong.length < 5) wrong.push(`app-${i}: ${res.status} ${body.slice(0, 60)}${wasDone ? ' (after the load)' : ''}`);
    }
    c.close();
  };
  fs.writeFileSync(`${file}.tmp`, routes(1, d));
  fs.renameSync(`${file}.tmp`, file);
  const clients = Array.from({ length: 6 }, (_, i) => worker(i + 1));
  const result = await loader.load();
  reloaded = true;
  await Promise.all(clients);
  t.same(result, { changed: true, updated: 5001, removed: 1, total: APPS }, '5000 changed, 1 added, 1 removed');
  t.same(wrong, [], `every one of ${answered} requests answered by its app's old or new dyno`);
  t.ok(answered > 0);

  const c = await RawClient.connect(r.port);
  t.teardown(() => c.close());
  const get = async (host: string): Promise<string> => {
    c.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    const res = await c.readResponse();
    return `${res.status} ${res.status === 200 ? res.body.toString() : ''}`.trim();
  };
  t.equal(await get('app-0.test'), '200 three', 'changed app: new route');
  t.equal(await get('app-5000.test'), '200 one', 'unchanged app: same route');
  t.equal(await get('app-new.test'), '200 three', 'added app');
  t.equal(await get(`app-${APPS - 1}.test`), '404', 'removed app');

  t.same(await loader.load(), { changed: false, updated: 0, removed: 0, total: APPS }, 'same text again: nothing to do');

  // a bad file: nothing applied, the table is the very same snapshot
  const before = r.router.table.snapshot;
  const bad = JSON.parse(routes(1, d)) as { apps: Record<string, { maintenance?: unknown }> };
  bad.apps['app-7']!.maintenance = 'yes';
  fs.writeFileSync(file, JSON.stringify(bad));
  await t.rejects(loader.load(), { code: 'EROUTES', path: 'apps.app-7.maintenance', message: 'routes file: apps.app-7.maintenance: expected a boolean, got "yes"' });
  t.equal(r.router.table.snapshot, before, 'bad file: old table kept');
  t.equal(await get('app-0.test'), '200 three', 'and still routing');

  // the next good file is diffed against the last applied one, not the refused one
  fs.writeFileSync(file, routes(0, d));
  const back = await loader.load();
  t.same(back, { changed: true, updated: 5001, removed: 1, total: APPS }, 'back to v0: the same 5000 apps, app-9999 back, app-new gone');
  t.equal(await get('app-0.test'), '200 one');
  t.equal(await get('app-new.test'), '404');

  // someone else changed the table: the next load diffs against nothing, so the file wins everywhere
  r.router.table.setBackends('app-2', [{ dyno: 'three', address: d.three.address }]);
  const full = await loader.load(true);
  t.same(full, { changed: true, updated: 1, removed: 0, total: APPS }, 'full load after an outside change: only that app differed');
  t.equal(await get('app-2.test'), '200 one', 'the outside change is overwritten by the file');
});
