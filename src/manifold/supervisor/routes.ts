/**
 * The router's view of an app: its web instances with an address, as starting (no traffic yet),
 * up, or draining (no new requests, in-flight ones finish). When every web dyno is crashed the
 * router answers H10 with the reasons and next restart times.
 */
import type { AppState, Instance, Slot } from './model';
import type { BackendState, RouteAppInput, RouteBackend } from './types';

export function routesOf(app: AppState, webPort: number): RouteAppInput {
  const backends: RouteBackend[] = [];
  const crashedWeb: Slot[] = [];
  let webSlots = 0;
  for (const slot of app.slots.values()) {
    if (slot.type !== 'web') continue;
    webSlots++;
    if (slot.state === 'crashed') crashedWeb.push(slot);
    for (const inst of [slot.current, ...slot.retiring]) {
      if (!inst || inst.address === undefined || inst.state === 'exited') continue;
      backends.push({ dyno: inst.name, address: backendAddress(inst.address, webPort), state: backendState(inst), gen: inst.gen, release: inst.release.version });
    }
  }
  const allCrashed = webSlots > 0 && crashedWeb.length === webSlots;
  return { hosts: app.hosts, backends, crashed: allCrashed ? { message: crashedWeb.map(crashLine).join('; ') } : false };
}

/** host:port of a web dyno as the router and the drain watcher name it. */
export function backendAddress(address: string, webPort: number): string {
  return `${address}:${webPort}`;
}

function backendState(inst: Instance): BackendState {
  // a dyno told to stop (scaled away, ps:stop, replaced without overlap) takes no new requests
  // during its grace; the ones in flight may still finish
  if (inst.stopSent && inst.state === 'up') return 'draining';
  return inst.state === 'up' ? 'up' : inst.state === 'draining' ? 'draining' : 'starting';
}

function crashLine(slot: Slot): string {
  const restart = slot.restartAt !== null ? `, restart at ${new Date(slot.restartAt).toISOString()}` : '';
  return `${slot.name} ${slot.reason ?? 'crashed'}${restart}`;
}
