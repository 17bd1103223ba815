/**
 * Which apps of a routes document differ from the last one applied, pure: the routes worker keeps
 * each applied app's JSON text and sends the main thread only what changed, so a reload of a
 * 10 000-app file where ten apps changed costs the request path ten apps.
 */
import type { AppInput } from './route-table';

export interface RoutesDiff {
  /** Apps added or changed, in document order. */
  changed: [string, AppInput][];
  removed: string[];
  /** Every app's JSON text, the base for the next diff once this one is applied. */
  next: Map<string, string>;
}

export function diffRoutes(base: ReadonlyMap<string, string>, apps: Readonly<Record<string, AppInput>>): RoutesDiff {
  const next = new Map<string, string>();
  const changed: [string, AppInput][] = [];
  for (const name of Object.keys(apps)) {
    const input = apps[name]!;
    // Key order counts: a rewritten-but-equal app is sent and the table keeps its object (sameRoute).
    const text = JSON.stringify(input);
    next.set(name, text);
    if (base.get(name) !== text) changed.push([name, input]);
  }
  const removed: string[] = [];
  for (const name of base.keys()) if (!next.has(name)) removed.push(name);
  return { changed, removed, next };
}
