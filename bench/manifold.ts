/**
 * `npm run bench:manifold`: the dyno manager's own costs, in process with the real runtime.
 *
 * 1. scale web=0 → web=100 of a trivial app (busybox httpd: its boot is ~1 ms, so the measure is the
 *    manifold's: spawn, bridge networking, host-side port check, state change, route table update).
 *    Goal: all 100 up < 3 s.
 * 2. oom_kill → R15 line → restart begun (needs the cgroup v2 memory controller: VM suite).
 *    Goal ≤ 50 ms.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Runtime } from '../src/runtime/dyno';
import { native } from '../src/runtime/native';
import { BridgeNetwork } from '../src/runtime/network';
import { LogHub } from '../src/manifold/logs/hub';
import type { Release } from '../src/manifold/store/store';
import { Supervisor, type SupervisorEvent } from '../src/manifold/supervisor/supervisor';
import type { RouteAppInput } from '../src/manifold/supervisor/types';

const N = Number(process.env.BENCH_DYNOS ?? 100);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

async function main(): Promise<void> {
  const cgroupName = `manifold-bench-${process.pid}`;
  // a run directory and bridge of its own (never the default manifold0 of a daemon on this host), removed at the end
  const runDir = `/run/manifold-bench-${process.pid}`;
  const bridge = { name: `mfbm${process.pid % 100000}`, subnet: process.env.BENCH_SUBNET ?? '10.212.0.0/24' };
  const runtime = Runtime.open({ cgroupName, runDir, bridge });
  const slug = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-bench-'));
  fs.writeFileSync(path.join(slug, 'index.html'), 'ok\n');
  const logs = new LogHub();
  const events: SupervisorEvent[] = [];
  let routeUpdates = 0;
  let lastRoutes: RouteAppInput | undefined;
  const sup = new Supervisor({
    launcher: { start: (s) => runtime.start(s), pipe: () => native().pipe() },
    logs,
    routes: { setApp: (_n, input) => { routeUpdates++; lastRoutes = input; }, removeApp: () => undefined },
    net: 'bridge',
    policy: { cycleMs: 0, stopGraceMs: 5000 },
    onEvent: (e) => events.push(e),
  });
  const release: Release = { app: 'bench', version: 2, slug, procfile: { web: 'exec busybox httpd -f -p $PORT -h /app' }, config: {}, description: 'bench', createdAt: Date.now() };
  sup.addApp('bench', ['bench.localhost'], release, [], {});

  const t0 = performance.now();
  const w0 = Date.now();
  sup.setFormation('bench', [{ type: 'web', quantity: N, size: 'standard-1x' }]);
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const up = sup.status('bench').filter((d) => d.state === 'up').length;
      if (up === N) { clearInterval(timer); resolve(); }
      if (sup.status('bench').some((d) => d.state === 'crashed')) { clearInterval(timer); reject(new Error(logs.get('bench').tail(20).map((l) => l.message).join('\n'))); }
    }, 5);
  });
  const total = performance.now() - t0;
  const launches = events.filter((e) => e.kind === 'launch').map((e) => e.at - w0);
  const ups = events.filter((e) => e.kind === 'up').map((e) => e.at - w0);
  const upBackends = lastRoutes?.backends.filter((b) => b.state === 'up').length ?? 0;
  console.log(`node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}`);
  console.log(`scale web=${N} → all up: ${total.toFixed(0)} ms (goal < 3000 ms) ${total < 3000 ? 'PASS' : 'FAIL'}`);
  console.log(`  launch issued: last at ${Math.max(...launches)} ms; up at p50 ${pct(ups, 50)} ms, p99 ${pct(ups, 99)} ms, max ${Math.max(...ups)} ms`);
  console.log(`  route table: ${upBackends} up backends after ${routeUpdates} updates`);

  // OOM reaction
  if (runtime.cgroups.controllers.includes('memory')) {
    const rel2: Release = { ...release, version: 3, procfile: { ...release.procfile, hog: 'exec node -e "const a=[];for(;;)a.push(Buffer.alloc(64<<20,1))"' } };
    sup.setFormation('bench', [{ type: 'web', quantity: 0, size: 'standard-1x' }]);
    sup.setRelease('bench', rel2);
    const e0 = events.length;
    sup.setFormation('bench', [{ type: 'web', quantity: 0, size: 'standard-1x' }, { type: 'hog', quantity: 1, size: 'eco' }]);
    const r15 = await waitEvent(events, e0, 'r15', 60_000);
    const relaunch = await waitEvent(events, events.indexOf(r15), 'launch', 60_000);
    console.log(`oom_kill → R15 line: logged at event; R15 → restart begun: ${relaunch.at - r15.at} ms (goal ≤ 50 ms)`);
  } else {
    console.log('oom_kill → R15 → restart: not measured here (no cgroup v2 memory controller; run in the VM suite)');
  }
  await sup.shutdown();
  await runtime.close(); // veths and leases released, then the cgroup subtree removed
  BridgeNetwork.cleanup(runDir, bridge.name);
  fs.rmSync(runDir, { recursive: true, force: true });
  fs.rmSync(slug, { recursive: true, force: true });
}

async function waitEvent(events: SupervisorEvent[], from: number, kind: SupervisorEvent['kind'], timeoutMs: number): Promise<SupervisorEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = events.slice(from + 1).find((x) => x.kind === kind);
    if (e) return e;
    if (Date.now() > deadline) throw new Error(`no ${kind} event within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
