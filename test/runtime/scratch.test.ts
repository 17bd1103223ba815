/**
 * The writable layer (issue 9, item 11): a tmpfs sized by the dyno's size (its memory quota, at
 * most memory.max, or an explicit scratchSize), not a fixed 1 GiB; filling it gives the app ENOSPC
 * and harms nothing else; the runtime keeps the sum over its live dynos within its budget, giving
 * a late dyno what is left (with a warning) and refusing one that would get under 64 MiB.
 * (That its pages are charged to the dyno's memory cgroup is checked in the VM: test/vm/guest.)
 */
import fs from 'node:fs';
import t from 'tap';
import { type Dyno, DynoError, Runtime } from '../../src/runtime';
import { resourcesFor } from '../../src/runtime/sizes';
import { checked, leakWatch } from './helpers/leaks';
import { kv, makeAppDir, openTestRuntime, probeBinary, removeAtEndIfNew, requireRoot, runDyno, sh, startCaptured, TEST_RUN_DIR, testSpec } from './helpers/run';

const MB = 1024 * 1024;

if (requireRoot(t)) {
  const runtime = openTestRuntime(t);
  const leaks = leakWatch(runtime);
  const probe = probeBinary();
  const probeApp = (): string => makeAppDir(t, { probe: { content: fs.readFileSync(probe), mode: 0o755 } });

  t.test('the writable layer is as large as the dyno size says', checked(leaks, async (t) => {
    const appDir = probeApp();
    const cases = [
      { what: 'standard-1x: its 512 MB quota', spec: { resources: resourcesFor('standard-1x') }, bytes: 512 * MB },
      { what: 'standard-2x: its 1 GB quota', spec: { resources: resourcesFor('standard-2x') }, bytes: 1024 * MB },
      { what: 'a quota above half of memory.max: half of memory.max', spec: { resources: { memoryQuota: 1024 * MB, memoryMax: 256 * MB } }, bytes: 128 * MB },
      { what: 'an explicit scratchSize', spec: { scratchSize: '100m', resources: resourcesFor('standard-1x') }, bytes: 100 * MB },
      { what: 'no resources: the default size (standard-1x)', spec: {}, bytes: 512 * MB },
    ];
    for (const c of cases) {
      const run = startCaptured(runtime, testSpec({ appDir, ...c.spec, command: { argv: ['/app/probe', 'statfs', '/tmp', '/app'] } }));
      const dyno = await run.started;
      const r = await run.done;
      t.equal(r.status.code, 0, r.stderr);
      const got = kv(r.stdout);
      t.equal(dyno.scratchBytes, c.bytes, `${c.what}: granted ${c.bytes / MB} MiB`);
      t.equal(Number(got['/tmp_bytes']), c.bytes, `${c.what}: statfs(/tmp) inside the dyno says so`);
      t.equal(Number(got['/app_bytes']), c.bytes, `${c.what}: /app's upper layer shares it`);
    }
  }));

  t.test('a full writable layer is ENOSPC for the app; the dyno and its neighbour carry on', checked(leaks, async (t) => {
    const appDir = probeApp();
    const neighbour = startCaptured(runtime, testSpec({ appDir, scratchSize: '64m', command: sh('echo up; while sleep 0.1; do :; done') }));
    await neighbour.waitFor(/^up$/m);
    const filler = startCaptured(runtime, testSpec({
      appDir,
      scratchSize: '64m',
      command: sh(
        '/app/probe fill /tmp/big 200; echo ---; /app/probe fill /app/more 8; echo ---; ' +
          'rm /tmp/big; /app/probe fill /tmp/again 8; echo "alive"; exec sleep 60',
      ),
    }));
    await filler.waitFor(/^alive$/m, 20_000);
    const [big, app, again] = filler.stdout().split('---\n').map(kv);
    t.equal(big?.fill, 'ENOSPC', 'writing 200 MB into a 64 MB /tmp ends in ENOSPC');
    const mib = Number(big?.fill_mib);
    t.ok(mib >= 56 && mib <= 64, `it filled (nearly) all of the 64 MiB first (${mib} MiB)`);
    t.equal(app?.fill, 'ENOSPC', '/app shares the full layer: ENOSPC too');
    t.equal(again?.fill, 'ok', 'once the file is removed, writing works again');
    t.equal(again?.fill_mib, '8', '8 MiB written after the rm');

    // the neighbour, with its own 64 MB, was not touched: it runs and can still fill its own layer
    const check = await runDyno(runtime, testSpec({ appDir, scratchSize: '64m', command: { argv: ['/app/probe', 'fill', '/tmp/x', '32'] } }));
    t.equal(kv(check.stdout).fill, 'ok', 'another dyno writes its 32 MB');
    const [fillerDyno, neighbourDyno] = await Promise.all([filler.started, neighbour.started]);
    const statuses = await Promise.all([fillerDyno.stop(2000), neighbourDyno.stop(2000)]);
    for (const s of statuses) {
      t.equal(s.stopped, true, 'still running until stopped');
      t.equal(s.oom, false, 'no OOM');
    }
    t.notOk(neighbour.stderr().trim(), 'the neighbour said nothing on stderr');
  }));

  t.test("the runtime's budget bounds the sum: a late dyno gets what is left, then none starts", async (t) => {
    const cgroupName = `manifold-test-${process.pid}-budget`;
    removeAtEndIfNew(t, TEST_RUN_DIR);
    const small = Runtime.open({ runDir: TEST_RUN_DIR, cgroupName, scratchBudget: 200 * MB });
    t.teardown(() => {
      try {
        fs.rmdirSync(small.cgroups.root);
      } catch {
        /* reported by the leak check */
      }
    });
    const smallLeaks = leakWatch(small);
    await t.test('within the budget', checked(smallLeaks, async (t) => {
      const appDir = probeApp();
      const sleeper = (): ReturnType<typeof testSpec> => testSpec({ appDir, scratchSize: '128m', command: sh('/app/probe statfs /tmp; exec sleep 60') });
      const first = startCaptured(small, sleeper());
      const d1 = await first.started;
      t.equal(d1.scratchBytes, 128 * MB, 'the first dyno gets its 128 MiB');

      const second = startCaptured(small, sleeper());
      const d2 = await second.started;
      const warning = new Promise<string>((resolve) => d2.once('warning', resolve));
      t.equal(d2.scratchBytes, 72 * MB, 'the second gets the 72 MiB left');
      t.match(await warning, /writable layer 72 MiB instead of 128 MiB/, 'with a warning saying so');
      await second.waitFor(/^\/tmp_free /m);
      t.equal(Number(kv(second.stdout())['/tmp_bytes']), 72 * MB, 'and its /tmp is that size');

      const refused = await small.start(sleeper()).then(() => undefined, (e: unknown) => e);
      t.ok(refused instanceof DynoError, 'a third is refused');
      t.equal((refused as DynoError).code, 'ENOSPC', 'with ENOSPC');
      t.match((refused as Error).message, /0 MiB of the 200 MiB budget left, 128 MiB wanted/, (refused as Error).message);

      await d1.stop(1000);
      const third = startCaptured(small, sleeper());
      const d3: Dyno = await third.started;
      t.equal(d3.scratchBytes, 128 * MB, "a stopped dyno's share is free again");
      await Promise.all([d2.stop(1000), d3.stop(1000)]);
      t.equal(small.scratchBudget.available, 200 * MB, 'all of it is back once every dyno is gone');
    }));
  });
}
