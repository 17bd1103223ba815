/**
 * The route delta's wire form (delta-wire.ts): what a router worker decodes is what the main
 * thread's table swapped, route for route, frozen, with `up` made of the very backend objects.
 */
import t from 'tap';
import { decodeDelta, encodeDelta } from '../../src/router/routing/delta-wire';
import { RouteTable, type RouteDelta } from '../../src/router/routing/route-table';

t.test('round trip: apps added, changed, crashed, in maintenance and removed; hosts moved and dropped', async (t) => {
  const table = new RouteTable();
  const deltas: RouteDelta[] = [];
  table.on('delta', (d) => deltas.push(d));
  table.replace({
    apps: {
      a: { hosts: ['a.test', 'www.a.test'], backends: [{ dyno: 'web.1', address: '10.0.0.1:5000' }, { dyno: 'web.2', address: '[::1]:5001', state: 'starting' }] },
      b: { hosts: ['b.test'], backends: [{ dyno: 'web.1', address: '10.0.0.2:5000', state: 'crashed' }], crashed: { message: 'web.1 exited 3' } },
      c: { hosts: ['c.test'], maintenance: true },
    },
  });
  table.replace({
    apps: {
      a: { hosts: ['a.test'], backends: [{ dyno: 'web.1', address: '10.0.0.1:5000', state: 'draining' }, { dyno: 'web.3', address: '10.0.0.3:5000' }] },
      c: { hosts: ['c.test', 'www.a.test'], backends: [{ dyno: 'web.1', address: '10.0.0.9:5000' }] },
    },
  });
  t.equal(deltas.length, 2);
  for (const d of deltas) {
    const wire = encodeDelta(d);
    t.type(wire.json, 'string');
    const back = decodeDelta(structuredClone(wire));
    t.equal(back.version, d.version);
    t.same(back.hosts, d.hosts, 'hosts and their apps (removed ones undefined)');
    t.equal(back.apps.length, d.apps.length);
    for (let i = 0; i < d.apps.length; i++) {
      const [name, route] = d.apps[i]!;
      const [gotName, got] = back.apps[i]!;
      t.equal(gotName, name);
      if (route === undefined) {
        t.equal(got, undefined, `${name} removed`);
        continue;
      }
      t.same(got, route, `${name}: the same route`);
      t.ok(Object.isFrozen(got) && Object.isFrozen(got!.hosts) && Object.isFrozen(got!.backends) && Object.isFrozen(got!.up), `${name}: frozen`);
      t.ok(got!.backends.every((b) => Object.isFrozen(b)), `${name}: backends frozen`);
      t.ok(got!.up.every((u) => got!.backends.includes(u)), `${name}: up holds the backend objects themselves`);
    }
  }
  t.same(deltas[1]!.apps.find(([n]) => n === 'b'), ['b', undefined], 'the second delta removes b');
});
