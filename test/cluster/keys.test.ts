/** The key helpers of spec §3: exact paths, ordering of release keys, refusal of names that would cross prefixes. */
import t from 'tap';
import { keys, PREFIX, releaseSegment } from '../../src/cluster/keys';

t.test('keys are the spec §3 paths under /manifold/v1/', async (t) => {
  t.equal(PREFIX, '/manifold/v1/');
  t.equal(keys.layout(), '/manifold/v1/layout');
  t.equal(keys.appMeta('web-app'), '/manifold/v1/apps/web-app/meta');
  t.equal(keys.appRelease('a'), '/manifold/v1/apps/a/release');
  t.equal(keys.release('a', 42), '/manifold/v1/apps/a/releases/0000000042');
  t.equal(keys.formation('a', 'web'), '/manifold/v1/apps/a/formation/web');
  t.equal(keys.slug('ab'.repeat(32)), `/manifold/v1/slugs/${'ab'.repeat(32)}`);
  t.equal(keys.subnet(3), '/manifold/v1/subnets/10.200.3.0-24');
  t.equal(keys.host('h1'), '/manifold/v1/hosts/h1');
  t.equal(keys.assignments('h1'), '/manifold/v1/assign/h1/');
  t.equal(keys.assignment('h1', 'a', 'web.1'), '/manifold/v1/assign/h1/a/web.1');
  t.equal(keys.endpoint('a', 'web.1', 'i7'), '/manifold/v1/endpoints/a/web.1/i7');
  t.equal(keys.status('a', 'web.1', 'h1'), '/manifold/v1/status/a/web.1/h1');
  t.equal(keys.statuses('a'), '/manifold/v1/status/a/');
  t.equal(keys.drain('h1'), '/manifold/v1/drain/h1');
  t.equal(keys.router('h2'), '/manifold/v1/routers/h2');
  t.equal(keys.election(), '/manifold/v1/election/scheduler/');
  t.equal(keys.tick(), '/manifold/v1/tick');
});

t.test('release keys sort as numbers', async (t) => {
  const versions = [1, 9, 10, 100, 42];
  t.same(
    versions.map(releaseSegment).sort(),
    [...versions].sort((a, b) => a - b).map(releaseSegment),
  );
  t.throws(() => releaseSegment(-1));
  t.throws(() => releaseSegment(1.5));
});

t.test('names that would cross into another prefix are refused', async (t) => {
  t.throws(() => keys.app('a/b'), TypeError);
  t.throws(() => keys.app(''), TypeError);
  t.throws(() => keys.assignment('h1', 'a', 'web/1'), TypeError);
  t.throws(() => keys.slug('not-a-sha'), TypeError);
  t.throws(() => keys.subnet(0), RangeError);
  t.throws(() => keys.subnet(255), RangeError);
  t.ok(keys.app('a').endsWith('/'), "an app's prefix ends in '/': app never matches app2");
});
