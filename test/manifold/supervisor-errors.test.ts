/**
 * Supervisor refusals are typed, and the API maps each to its own client error in one place
 * (src/manifold/api/errors.ts): an unknown app is ENOAPP, nothing deployed is ENORELEASE, only an
 * unknown dyno or type is ENODYNO. The last test goes through a real API server and socket.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { apiErrorOf } from '../../src/manifold/api/errors';
import { ApiServer } from '../../src/manifold/api/server';
import { ManifoldError } from '../../src/manifold/errors';
import { LogHub } from '../../src/manifold/logs/hub';
import { Manifold } from '../../src/manifold/manifold';
import { Store } from '../../src/manifold/store/store';
import { SupervisorError } from '../../src/manifold/supervisor/errors';
import { Supervisor } from '../../src/manifold/supervisor/supervisor';
import { FakeClock } from './helpers/fake-clock';
import { FakeLauncher } from './helpers/fake-launcher';
import { APP, harness } from './helpers/supervisor-harness';

t.test('the supervisor throws a SupervisorError with a code for each refusal', async (t) => {
  const h = harness({ formation: [{ type: 'worker', quantity: 1, size: 'standard-1x' }] });
  await h.clock.advance(0);
  t.throws(() => h.supervisor.restart(APP, 'worker.9'), new SupervisorError('NO_SUCH_DYNO', 'no dyno worker.9 in app app'));
  t.throws(() => h.supervisor.stop(APP, 'run.4'), new SupervisorError('NO_SUCH_DYNO', 'no dyno run.4 in app app'));
  t.throws(() => h.supervisor.restart(APP, 'web'), new SupervisorError('NO_SUCH_TYPE', 'no web dynos in app app'));
  t.throws(() => h.supervisor.restart('ghost'), new SupervisorError('NO_SUCH_APP', 'no such app: ghost'));
  t.throws(() => h.supervisor.status('ghost'), { code: 'NO_SUCH_APP' });
  h.supervisor.addApp('empty', ['empty.test'], undefined, [], {});
  t.throws(() => h.supervisor.runOneOff('empty', 'bash', { attach: false }), { code: 'NOT_DEPLOYED', message: /app empty has no deployed release/ });
  t.same(h.supervisor.restart(APP, 'worker'), ['worker.1'], 'a type that exists is fine');
});

t.test('apiErrorOf: one mapping from any error to the client error', async (t) => {
  const cases: [unknown, string, number, string][] = [
    [new SupervisorError('NO_SUCH_APP', 'no such app: x'), 'ENOAPP', 404, 'no such app: x'],
    [new SupervisorError('NO_SUCH_DYNO', 'no dyno web.9 in app x'), 'ENODYNO', 404, 'no dyno web.9 in app x'],
    [new SupervisorError('NO_SUCH_TYPE', 'no clock dynos in app x'), 'ENODYNO', 404, 'no clock dynos in app x'],
    [new SupervisorError('NOT_DEPLOYED', 'app x has no deployed release'), 'ENORELEASE', 404, 'app x has no deployed release'],
    [new ManifoldError('ESCALE', 'bad scale'), 'ESCALE', 422, 'bad scale'],
    [new Error('disk on fire'), 'EINTERNAL', 500, 'disk on fire'],
    ['a string', 'EINTERNAL', 500, 'a string'],
  ];
  for (const [err, code, status, message] of cases) {
    const e = apiErrorOf(err);
    t.same({ code: e.code, status: e.status, message: e.message }, { code, status, message }, `${code}: ${message}`);
  }
});

function post(socketPath: string, method: string, body: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ socketPath, path: `/v1/${method}`, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

t.test('through the API: a supervisor refusal reaches the client with its own code and message', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-sup-errors-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = new Store(path.join(dir, 'm.db'));
  t.teardown(() => store.close());
  const logs = new LogHub();
  const clock = new FakeClock();
  const launcher = new FakeLauncher(clock);
  const supervisor = new Supervisor({ launcher, logs, clock, policy: { cycleMs: 0 } });
  const manifold = new Manifold({ store, supervisor, logs, stateDir: dir, domain: 'test', routerPort: null });
  const socketPath = path.join(dir, 'api.sock');
  const api = new ApiServer({ manifold, logs, launcher, socketPath, info: () => { throw new Error('not asked'); } });
  await api.listen();
  t.teardown(() => api.close());

  manifold.createApp('known', 'root');
  // in the store but not (or no longer) in the supervisor: before, this came back as "unknown dyno"
  store.insertApp('orphan');
  const orphan = await post(socketPath, 'ps:restart', { app: 'orphan' });
  t.same(orphan, { status: 404, body: { error: { code: 'ENOAPP', message: 'no such app: orphan' } } });

  const dyno = await post(socketPath, 'ps:restart', { app: 'known', target: 'web.9' });
  t.same(dyno, { status: 404, body: { error: { code: 'ENODYNO', message: 'no dyno web.9 in app known' } } });
  const type = await post(socketPath, 'ps:stop', { app: 'known', target: 'worker' });
  t.same(type, { status: 404, body: { error: { code: 'ENODYNO', message: 'no worker dynos in app known' } } });
  const ok = await post(socketPath, 'ps:restart', { app: 'known' });
  t.same(ok, { status: 200, body: { result: [] } }, 'nothing to restart is not an error');
});
