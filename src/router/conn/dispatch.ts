/**
 * Routing policy as pure decisions (vegur's lookup-domain → lookup-service chain): given the app a
 * request routes to, what the router knows about its dynos (tried by this request, quarantined) and
 * how many of its requests are in flight, the request either halts with a reason, waits in the
 * boot queue, or goes to one dyno. No sockets, no timers: the Exchange acts on the answer, and
 * test/router/dispatch.test.ts walks the table.
 *
 * Answers are strings or the chosen Backend itself, so a decision allocates nothing.
 */
import type { HCode } from '../errors';
import type { AppRoute, Backend } from '../routing/route-table';

/** Why an app takes no request now (Heroku: maintenance, app crashed, no web dynos). */
export type AppHalt = 'H80' | 'H10' | 'H14';

/** Why a new request is refused before it is counted: no app for its host, the app halted, or its backlog full (H11). */
export type AdmitHalt = 'no-app' | AppHalt | 'H11';

/**
 * Where a counted request goes next: a dyno; the boot queue ('queue': none up or all quarantined);
 * or nowhere ('exhausted': every up dyno already failed this request, so it ends with the last
 * connect error), or one of the halts (the table changed while it waited).
 */
export type Dispatch = Backend | 'no-app' | AppHalt | 'queue' | 'exhausted';

/** The part of the Balancer dispatch uses (tests may pass the real one). */
export interface Picker {
  pick(app: AppRoute, skip: ((b: Backend) => boolean) | null): Backend | null;
}

/** Maintenance first (it is set on purpose), then crashed, then no dyno at all. */
export function appHalt(app: AppRoute): AppHalt | null {
  if (app.maintenance) return 'H80';
  if (app.crashed !== null) return 'H10';
  if (app.backends.length === 0) return 'H14';
  return null;
}

/**
 * Whether a new request for `app` is taken. H11 "Backlog too deep": `inFlight` requests of this app
 * are already under way and each up dyno (at least one, so a booting app queues) may have
 * `backlogPerDyno` of them; 0 turns the limit off.
 */
export function admit(app: AppRoute | undefined, inFlight: number, backlogPerDyno: number): AdmitHalt | null {
  if (app === undefined) return 'no-app';
  const halt = appHalt(app);
  if (halt !== null) return halt;
  if (backlogPerDyno > 0 && inFlight >= backlogPerDyno * Math.max(1, app.up.length)) return 'H11';
  return null;
}

/**
 * A dyno for a counted request, from `app` as the table has it now. Dynos this request already
 * tried, and dynos still quarantined, are skipped; a quarantine that has ended is removed from the
 * map on the way (the only write, to the router's own map).
 */
export function dispatchStep(
  app: AppRoute | undefined,
  tried: ReadonlySet<string> | null,
  quarantine: Map<string, number>,
  clock: () => number,
  picker: Picker,
): Dispatch {
  if (app === undefined) return 'no-app';
  const halt = appHalt(app);
  if (halt !== null) return halt;
  // Common case (nothing tried, nothing quarantined): no filter, no closure, no clock read.
  const backend = tried === null && quarantine.size === 0 ? picker.pick(app, null) : picker.pick(app, skipper(tried, quarantine, clock()));
  if (backend !== null) return backend;
  if (tried !== null && app.up.length > 0 && app.up.every((b) => tried.has(b.address))) return 'exhausted';
  return 'queue';
}

/** The balancer filter: dynos already tried by this request, or still quarantined. */
function skipper(tried: ReadonlySet<string> | null, quarantine: Map<string, number>, now: number): (b: Backend) => boolean {
  return (b) => {
    if (tried !== null && tried.has(b.address)) return true;
    const until = quarantine.get(b.address);
    if (until === undefined) return false;
    if (until <= now) {
      quarantine.delete(b.address);
      return false;
    }
    return true;
  };
}

/** After a failed connect: another dyno while attempts remain, else the request ends. */
export function retryAfterConnectFailure(attempts: number, maxAttempts: number): boolean {
  return attempts < maxAttempts;
}

/** The code a request ends with when its connects ran out: H19 if the last one timed out, H21 if refused. */
export function connectFailureCode(lastError: 'timeout' | 'refused' | null): 'H19' | 'H21' {
  return lastError === 'timeout' ? 'H19' : 'H21';
}

/**
 * The boot queue ran out: up dynos that stayed quarantined the whole time are a platform error
 * (H99); no dyno coming up in time is H20.
 */
export function bootQueueExpired(app: AppRoute | null): 'H99' | 'H20' {
  return app !== null && app.up.length > 0 ? 'H99' : 'H20';
}

/** Whether a log line for `code` names a dyno: the routing halts end before one is chosen. */
export function dynoChosenFor(code: HCode | null): boolean {
  return code !== 'H10' && code !== 'H14' && code !== 'H20' && code !== 'H80' && code !== 'H11';
}
