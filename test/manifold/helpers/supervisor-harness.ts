/**
 * A Supervisor on a fake clock and a fake launcher, with one app ('app') and everything it
 * reports collected: log lines, route table updates, events. No root, no processes.
 */
import { LogHub } from '../../../src/manifold/logs/hub';
import type { SupervisionPolicy } from '../../../src/manifold/policy';
import type { AppSettings, FormationRow, Release } from '../../../src/manifold/store/store';
import { Supervisor, type SupervisorEvent } from '../../../src/manifold/supervisor/supervisor';
import type { RouteAppInput } from '../../../src/manifold/supervisor/types';
import { FakeClock } from './fake-clock';
import { FakeLauncher } from './fake-launcher';
import type { Rng } from './prng';

export const APP = 'app';

export interface HarnessOptions {
  procfile?: Record<string, string>;
  formation?: FormationRow[];
  settings?: AppSettings;
  policy?: Partial<SupervisionPolicy>;
  /** Give dynos addresses (bridge networking): web replacements overlap only then. */
  addresses?: boolean;
  /** A drain watcher that answers at once (the router saw no request in flight). */
  drain?: boolean;
}

export function releaseOf(version: number, procfile: Record<string, string>): Release {
  return { app: APP, version, slug: '/slugs/app/v' + version, procfile, config: { GREETING: 'hi' }, description: `v${version}`, createdAt: 0 };
}

export function harness(o: HarnessOptions = {}) {
  const clock = new FakeClock();
  const launcher = new FakeLauncher(clock, o.addresses ?? true);
  const logs = new LogHub();
  const routes: RouteAppInput[] = [];
  const events: SupervisorEvent[] = [];
  const drained: string[] = [];
  const supervisor = new Supervisor({
    launcher,
    logs,
    clock,
    net: o.addresses === false ? 'none' : 'bridge',
    // no daily cycling unless a test asks for it: it would only add timers
    policy: { cycleMs: 0, ...(o.policy ?? {}) },
    routes: { setApp: (_name, input) => routes.push(structuredClone(input)), removeApp: () => undefined },
    ...(o.drain ? { drain: { waitIdle: async (_app: string, address: string) => void drained.push(address) } } : {}),
    onEvent: (e) => events.push(e),
  });
  const procfile = o.procfile ?? { web: 'node server.js', worker: 'node worker.js' };
  supervisor.addApp(APP, [`${APP}.test`], releaseOf(1, procfile), o.formation ?? [], o.settings ?? {});
  /** The app's log as `source[dyno]: message` lines, optionally of one dyno only. */
  const lines = (dyno?: string): string[] =>
    logs.get(APP).tail(1500, dyno ? { dyno } : {}).map((l) => `${l.source}[${l.dyno}]: ${l.message}`);
  const state = (dyno: string): string | undefined => supervisor.status(APP).find((d) => d.name === dyno)?.state;
  return { clock, launcher, logs, routes, events, drained, supervisor, lines, state, procfile };
}

export type Harness = ReturnType<typeof harness>;

/** Web dynos that have not bound $PORT yet do now (each with probability 0.6 when an rng is given). */
export function listenAll(h: Harness, rng?: Rng): void {
  for (const d of h.launcher.running()) if (d.spec.name.startsWith('web.') && !d.bound && !d.stopping && (!rng || rng.chance(0.6))) d.listen();
}

/** Advances until no one-shot timer is pending (web dynos bind $PORT as soon as they start). */
export async function quiesce(h: Harness): Promise<void> {
  for (let i = 0; i < 500; i++) {
    listenAll(h);
    await h.clock.advance(0);
    const next = h.clock.pendingDelays()[0];
    if (next === undefined) return;
    await h.clock.advance(Math.max(1, next));
  }
  throw new Error('the supervisor never went quiet');
}
