/**
 * Routes validation (issue 12): every bad shape gets one line naming its JSON path, and a table
 * that refuses an update keeps the old snapshot, for a whole file and for programmatic updates.
 */
import t from 'tap';
import { RouteTable, RouterError } from '../../src/router/index';
import { RoutesError, validateRoutes } from '../../src/router/routing/routes-validate';

const ok = { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:5001' }] };
const app = (extra: Record<string, unknown>): unknown => ({ apps: { hello: { ...ok, ...extra } } });

/** [case, document, path, message]: the message is the whole line after "routes file: ". */
const BAD: readonly [string, unknown, string, string][] = [
  ['apps is an array', { apps: [] }, 'apps', 'apps: expected an object of app name → route, got an array'],
  ['no apps', {}, 'apps', 'apps: missing (expected {"apps": {"NAME": {"hosts": [...], "backends": [...]}}})'],
  ['document is an array', [], '', 'expected an object {"apps": {"NAME": {...}}}, got an array'],
  ['document is null', null, '', 'expected an object {"apps": {"NAME": {...}}}, got null'],
  ['app is a string', { apps: { hello: 'x' } }, 'apps.hello', 'apps.hello: expected an app {"hosts": [...], "backends": [...]}, got "x"'],
  ['crashed is a string', app({ crashed: 'false' }), 'apps.hello.crashed', 'apps.hello.crashed: expected a boolean or {"message": "..."}, got "false"'],
  ['crashed message is a number', app({ crashed: { message: 5 } }), 'apps.hello.crashed', 'apps.hello.crashed: expected a string, got 5'],
  ['maintenance is "yes"', app({ maintenance: 'yes' }), 'apps.hello.maintenance', 'apps.hello.maintenance: expected a boolean, got "yes"'],
  ['maintenance is null', app({ maintenance: null }), 'apps.hello.maintenance', 'apps.hello.maintenance: expected a boolean, got null'],
  ['host with a path', app({ hosts: ['a.example.com/x'] }), 'apps.hello.hosts[0]', 'apps.hello.hosts[0]: bad hostname "a.example.com/x" (a bare hostname: no scheme, path or blank)'],
  ['host with a scheme', app({ hosts: ['http://a.test'] }), 'apps.hello.hosts[0]', 'apps.hello.hosts[0]: bad hostname "http://a.test" (a bare hostname: no scheme, path or blank)'],
  ['empty host', app({ hosts: ['a.test', ''] }), 'apps.hello.hosts[1]', 'apps.hello.hosts[1]: bad hostname "" (a bare hostname: no scheme, path or blank)'],
  ['host is a number', app({ hosts: [7] }), 'apps.hello.hosts[0]', 'apps.hello.hosts[0]: expected a hostname string, got 7'],
  ['hosts is a string', app({ hosts: 'a.test' }), 'apps.hello.hosts', 'apps.hello.hosts: expected an array, got "a.test"'],
  ['no hosts', { apps: { hello: { backends: [] } } }, 'apps.hello.hosts', 'apps.hello.hosts: missing'],
  ['backends is a string', app({ backends: 'x' }), 'apps.hello.backends', 'apps.hello.backends: expected an array, got "x"'],
  ['backend is a string', app({ backends: ['x'] }), 'apps.hello.backends[0]', 'apps.hello.backends[0]: expected a backend {"dyno", "address", "state"?}, got "x"'],
  ['backend without dyno', app({ backends: [{ address: '127.0.0.1:1' }] }), 'apps.hello.backends[0].dyno', 'apps.hello.backends[0].dyno: missing'],
  ['negative port', app({ backends: [{ dyno: 'web.1', address: '127.0.0.1:-1' }] }), 'apps.hello.backends[0].address', 'apps.hello.backends[0].address: bad address "127.0.0.1:-1" (expected host:port, port 1-65535)'],
  ['non-integer port', app({ backends: [{ dyno: 'web.1', address: '127.0.0.1:80.5' }] }), 'apps.hello.backends[0].address', 'apps.hello.backends[0].address: bad address "127.0.0.1:80.5" (expected host:port, port 1-65535)'],
  ['port 0', app({ backends: [{ dyno: 'web.1', address: '127.0.0.1:0' }] }), 'apps.hello.backends[0].address', 'apps.hello.backends[0].address: bad address "127.0.0.1:0" (expected host:port, port 1-65535)'],
  ['port above 65535', app({ backends: [{ dyno: 'web.1', address: '127.0.0.1:65536' }] }), 'apps.hello.backends[0].address', 'apps.hello.backends[0].address: bad address "127.0.0.1:65536" (expected host:port, port 1-65535)'],
  ['address without port', app({ backends: [{ dyno: 'web.1', address: 'localhost' }] }), 'apps.hello.backends[0].address', 'apps.hello.backends[0].address: bad address "localhost" (expected host:port, port 1-65535)'],
  ['address is a URL', app({ backends: [{ dyno: 'web.1', address: 'http://x:80' }] }), 'apps.hello.backends[0].address', 'apps.hello.backends[0].address: bad address "http://x:80" (expected host:port, port 1-65535)'],
  ['port as a number', app({ backends: [{ dyno: 'web.1', address: 5000 }] }), 'apps.hello.backends[0].address', 'apps.hello.backends[0].address: expected a string "host:port", got 5000'],
  ['bad state', app({ backends: [{ dyno: 'web.1', address: '127.0.0.1:1', state: 'down' }] }), 'apps.hello.backends[0].state', 'apps.hello.backends[0].state: expected one of starting, up, crashed, draining, got "down"'],
  ['odd app name', { apps: { 'my.app': { hosts: 5 } } }, 'apps["my.app"].hosts', 'apps["my.app"].hosts: expected an array, got 5'],
  ['host claimed by two apps', { apps: { a: { hosts: ['x.test'] }, b: { hosts: ['y.test', 'X.test'] } } }, 'apps.b.hosts[1]', 'apps.b.hosts[1]: host x.test is claimed by both a and b'],
];

t.test('validateRoutes: one line naming the JSON path, per bad shape', async (t) => {
  for (const [what, doc, path, message] of BAD) {
    let err: unknown;
    try {
      validateRoutes(doc, 'routes file');
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof RoutesError && err instanceof RouterError, `${what}: a RoutesError (a RouterError)`);
    const e = err as RoutesError;
    t.equal(e.code, 'EROUTES', `${what}: code`);
    t.equal(e.path, path, `${what}: path`);
    t.equal(e.message, `routes file: ${message}`, `${what}: message`);
    t.notMatch(e.message, /\n/, `${what}: one line`);
  }
});

t.test('what was accepted before still is', async (t) => {
  const good = {
    apps: {
      a: { hosts: [' A.Test:8080 ', 'www.a.test.', '[::1]'], backends: [{ dyno: 'web.1', address: '[::1]:5000', state: 'draining', gen: 3 }], maintenance: false, crashed: { message: 'x' } },
      b: { hosts: [], crashed: true },
      c: { hosts: ['c.test', 'c.test'], backends: [] },
    },
    comment: 'unknown fields are tolerated (the supervisor sends gen/release)',
  };
  t.doesNotThrow(() => validateRoutes(good));
  const table = new RouteTable();
  table.replace(good as never);
  t.same(table.app('a')?.hosts, ['a.test', 'www.a.test', '[::1]']);
  t.equal(table.lookupHost('[::1]')?.name, 'a');
});

t.test('a refused update keeps the old table: whole file and programmatic', async (t) => {
  const table = new RouteTable();
  table.replace({ apps: { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:5001' }] }, b: { hosts: ['b.test'] } } });
  const snap = table.snapshot;
  let changes = 0;
  table.on('change', () => changes++);
  for (const [what, doc] of BAD) t.throws(() => table.replace(doc as never), RouterError, `replace: ${what}`);
  t.throws(() => table.setApp('a', { hosts: ['a.test'], maintenance: 'yes' as never }), { message: 'routes: apps.a.maintenance: expected a boolean, got "yes"' });
  t.throws(() => table.setApp('c', { hosts: ['b.test'] }), { message: 'routes: apps.c.hosts[0]: host b.test is claimed by both b and c' });
  t.throws(() => table.setBackends('a', 'x' as never), { message: 'routes: apps.a.backends: expected an array, got "x"' });
  t.throws(() => table.setCrashed('a', 'false' as never), /apps\.a\.crashed: expected a boolean or/);
  t.throws(() => table.setBackends('a', [{ dyno: 'web.1', address: '127.0.0.1:-5' }]), /apps\.a\.backends\[0\]\.address: bad address/);
  t.equal(table.snapshot, snap, 'the very same snapshot');
  t.equal(changes, 0, 'no change event');
  // a host may move between apps in one update
  table.replace({ apps: { a: { hosts: ['b.test'] }, b: { hosts: ['a.test'] } } });
  t.equal(table.lookupHost('a.test')?.name, 'b');
  t.equal(table.lookupHost('b.test')?.name, 'a');
});

t.test('unchanged apps keep their route objects across a replace', async (t) => {
  const table = new RouteTable();
  const file = { apps: { a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '127.0.0.1:5001' }] }, b: { hosts: ['b.test'] } } };
  table.replace(file);
  const a = table.app('a');
  table.replace({ apps: { ...file.apps, b: { hosts: ['b.test'], maintenance: true } } });
  t.equal(table.app('a'), a, 'same object for the unchanged app');
  t.equal(table.app('b')?.maintenance, true);
  t.same(Object.keys(table.toJSON().apps), ['a', 'b'], 'toJSON sorted by name');
});

t.test('a batch committed in slices: each app whole, a host moving between apps never unrouted', async (t) => {
  const table = new RouteTable();
  table.replace({ apps: { a: { hosts: ['a.test', 'move.test'] }, b: { hosts: ['b.test'] }, c: { hosts: ['c.test'] } } });
  const a0 = table.app('a');
  const batch = table.batch();
  batch.set('a', { hosts: ['a.test'], maintenance: true }, table.app('a'));
  batch.remove('c', table.app('c'));
  batch.set('b', { hosts: ['b.test', 'move.test', 'c.test'] }, table.app('b'));
  table.check(batch);
  table.commit(batch, 0, 1);
  t.equal(table.app('a')?.maintenance, true, 'slice 1: a switched');
  t.equal(table.lookupHost('move.test'), a0, 'slice 1: the moving host still routes to its old app');
  table.commit(batch, 1, 2);
  t.equal(table.app('c'), undefined, 'slice 2: c removed');
  t.equal(table.lookupHost('c.test')?.name, 'c', 'slice 2: c.test, taken by b later, still routed');
  table.commit(batch, 2, 3);
  t.equal(table.lookupHost('move.test')?.name, 'b', 'slice 3: b took the host');
  t.equal(table.lookupHost('c.test')?.name, 'b');
  t.equal(table.lookupHost('a.test'), table.app('a'));
  t.equal(table.snapshot.hosts.size, 4, 'no host left behind');
  t.equal(table.snapshot.apps.size, 2);
});
