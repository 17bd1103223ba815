/** `ps` as the supervisor knows it: formation slots first by type and number, then one-off dynos. */
import type { AppState, DynoStatus } from './model';

export function statusOf(app: AppState): DynoStatus[] {
  const out: DynoStatus[] = [];
  for (const slot of app.slots.values()) {
    const inst = slot.current;
    const crashed = slot.state === 'crashed';
    out.push({
      name: slot.name,
      type: slot.type,
      state: slot.state,
      since: slot.since,
      command: inst?.command ?? app.release?.procfile[slot.type] ?? '',
      size: slot.size,
      release: inst?.release.version ?? app.release?.version ?? 0,
      pid: inst?.dyno?.pid ?? null,
      address: inst?.address ?? null,
      crashes: slot.crashes,
      restartAt: crashed ? slot.restartAt : null,
      reason: crashed ? slot.reason : null,
      oneoff: false,
      // single-host output stays as it was: generations exist only for assigned slots
      ...(app.assigned ? { gen: inst?.gen ?? slot.gen } : {}),
    });
  }
  for (const inst of app.oneoffs.values()) {
    out.push({
      name: inst.name,
      type: 'run',
      state: inst.state === 'up' ? 'up' : inst.state === 'exited' ? 'complete' : 'starting',
      since: inst.upAt ?? inst.startedAt,
      command: inst.command,
      size: inst.size,
      release: inst.release.version,
      pid: inst.dyno?.pid ?? null,
      address: null,
      crashes: 0,
      restartAt: null,
      reason: null,
      oneoff: true,
    });
  }
  return out.sort(byTypeThenNumber);
}

function byTypeThenNumber(a: DynoStatus, b: DynoStatus): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  return Number(a.name.split('.')[1]) - Number(b.name.split('.')[1]);
}
