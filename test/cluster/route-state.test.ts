/** The router's table derived from etcd keys (route-state.ts): tables of key/values → route inputs. */
import t from 'tap';
import { keys } from '../../src/cluster/keys';
import type { EndpointRecord, StatusRecord } from '../../src/cluster/records';
import { deriveApp, deriveRoutes, routeKeyOf } from '../../src/cluster/route-state';
import type { AppInput } from '../../src/router/routing/route-table';

const DOMAIN = 'mf.test';
type KV = readonly [string, string];

const meta = (app: string, extra: object = {}): KV => [keys.appMeta(app), JSON.stringify({ createdAt: 1, settings: {}, ...extra })];
const ep = (app: string, slot: string, inst: string, address: string, state: EndpointRecord['state'], host = 'h1'): KV => [
  keys.endpoint(app, slot, inst),
  JSON.stringify({ host, address, state, gen: 1, release: 1 } satisfies EndpointRecord),
];
const RESTART = Date.UTC(2026, 0, 1, 12, 0, 0);
const st = (app: string, slot: string, host: string, state: StatusRecord['state'], extra: Partial<StatusRecord> = {}): KV => {
  const rec: StatusRecord = {
    host, name: slot, type: slot.split('.')[0]!, state, since: 1, command: 'x', size: 'S', release: 1, pid: null, address: null,
    crashes: state === 'crashed' ? 1 : 0, restartAt: state === 'crashed' ? RESTART : null, reason: state === 'crashed' ? 'exited 1' : null, oneoff: false, ...extra,
  };
  return [keys.status(app, slot, host), JSON.stringify(rec)];
};

t.test('routeKeyOf: only meta, endpoints and status feed the routes', async (t) => {
  t.same(routeKeyOf(keys.appMeta('a')), { app: 'a', kind: 'meta' });
  t.same(routeKeyOf(keys.endpoint('a', 'web.1', 'd1')), { app: 'a', kind: 'endpoint', slot: 'web.1' });
  t.same(routeKeyOf(keys.status('a', 'web.1', 'h1')), { app: 'a', kind: 'status', slot: 'web.1' });
  for (const k of [keys.tick(), keys.appRelease('a'), keys.release('a', 3), keys.formation('a', 'web'), keys.host('h1'), keys.router('r1'), keys.assignment('h1', 'a', 'web.1'), '/other/apps/a/meta']) {
    t.equal(routeKeyOf(k), undefined, k);
  }
});

const web = (app: string, backends: AppInput['backends'], extra: Partial<AppInput> = {}): AppInput => ({
  hosts: [`${app}.${DOMAIN}`], backends, maintenance: false, crashed: false, ...extra,
});

const cases: { name: string; kvs: KV[]; want: Record<string, AppInput> }[] = [
  { name: 'no keys: no apps', kvs: [], want: {} },
  { name: 'an app with meta and no endpoints', kvs: [meta('a')], want: { a: web('a', []) } },
  {
    name: 'endpoints become backends named by slot, with their state',
    kvs: [meta('a'), ep('a', 'web.1', 'd1', '10.200.1.2:5000', 'up'), ep('a', 'web.2', 'd2', '10.200.2.2:5000', 'starting', 'h2'), ep('a', 'web.3', 'd3', '10.200.3.2:5000', 'draining', 'h3')],
    want: {
      a: web('a', [
        { dyno: 'web.1', address: '10.200.1.2:5000', state: 'up' },
        { dyno: 'web.2', address: '10.200.2.2:5000', state: 'starting' },
        { dyno: 'web.3', address: '10.200.3.2:5000', state: 'draining' },
      ]),
    },
  },
  {
    name: 'two instances of one slot during a move: old draining and new starting',
    kvs: [meta('a'), ep('a', 'web.1', 'd9', '10.200.3.9:5000', 'starting', 'h3'), ep('a', 'web.1', 'd1', '10.200.1.2:5000', 'draining')],
    want: { a: web('a', [{ dyno: 'web.1', address: '10.200.1.2:5000', state: 'draining' }, { dyno: 'web.1', address: '10.200.3.9:5000', state: 'starting' }]) },
  },
  {
    name: 'an app without meta is not routed, even with endpoints left',
    kvs: [ep('gone', 'web.1', 'd1', '10.200.1.2:5000', 'up'), st('gone', 'web.1', 'h1', 'up'), meta('a')],
    want: { a: web('a', []) },
  },
  { name: 'maintenance from meta', kvs: [meta('a', { maintenance: true }), meta('b', { maintenance: 'yes' })], want: { a: web('a', [], { maintenance: true }), b: web('b', []) } },
  {
    name: 'every web slot crashed: crashed with the reasons and restart times',
    kvs: [meta('a'), st('a', 'web.1', 'h1', 'crashed'), st('a', 'web.2', 'h2', 'crashed', { reason: 'R10 boot timeout', restartAt: null })],
    want: { a: web('a', [], { crashed: { message: `web.1 exited 1, restart at ${new Date(RESTART).toISOString()}; web.2 R10 boot timeout` } }) },
  },
  {
    name: 'one web slot up: not crashed',
    kvs: [meta('a'), st('a', 'web.1', 'h1', 'crashed'), st('a', 'web.2', 'h2', 'up'), ep('a', 'web.2', 'd2', '10.200.2.2:5000', 'up')],
    want: { a: web('a', [{ dyno: 'web.2', address: '10.200.2.2:5000', state: 'up' }]) },
  },
  {
    name: 'a slot crashed on one host but starting on another (a move): not crashed',
    kvs: [meta('a'), st('a', 'web.1', 'h1', 'crashed'), st('a', 'web.1', 'h3', 'starting')],
    want: { a: web('a', []) },
  },
  {
    name: 'non-web crashed is irrelevant: web up → not crashed; no web status → not crashed',
    kvs: [meta('a'), st('a', 'worker.1', 'h1', 'crashed'), st('a', 'web.1', 'h1', 'up'), meta('b'), st('b', 'worker.1', 'h1', 'crashed'), st('b', 'run.1', 'h1', 'crashed', { type: 'web', oneoff: true })],
    want: { a: web('a', []), b: web('b', []) },
  },
  {
    name: 'malformed records are skipped, not fatal',
    kvs: [meta('a'), [keys.endpoint('a', 'web.1', 'x'), '{nope'], ep('a', 'web.2', 'd2', 'no-port', 'up'), ep('a', 'web.3', 'd3', '10.0.0.1:5000', 'crashed' as EndpointRecord['state']), [keys.appMeta('b'), 'null']],
    want: { a: web('a', []), b: web('b', []) },
  },
];

t.test('deriveRoutes: table of cases', async (t) => {
  for (const c of cases) {
    t.same(deriveRoutes(c.kvs, DOMAIN).apps, c.want, c.name);
    // the order keys arrive in must not matter (watch events vs a listing)
    t.same(deriveRoutes([...c.kvs].reverse(), DOMAIN).apps, c.want, `${c.name} (reversed)`);
  }
});

t.test('deriveApp ignores keys of other apps', async (t) => {
  const entries = new Map<string, string>([meta('a'), meta('b'), ep('b', 'web.1', 'd1', '10.0.0.1:5000', 'up')]);
  t.same(deriveApp('a', entries, DOMAIN), web('a', []));
  t.equal(deriveApp('c', entries, DOMAIN), undefined);
});
