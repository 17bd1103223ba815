/**
 * An exchange's phases and the moves between them. A move the table does not allow is a bug: under
 * tap (TAP=1, which the router tests' child processes inherit) or with MANIFOLD_STRICT_STATES=1 it
 * throws; in production it is a process warning and the move is made anyway (refusing it would
 * strand a client). test/router/exchange-phase.test.ts walks the table.
 */

export enum Phase {
  /** Looking for a dyno (first time, or after a failed connect / a dropped dyno). */
  Routing,
  /** In the boot queue: no dyno up, or all quarantined. */
  Queued,
  Connecting,
  /** Head written; request body (if any) streaming; response may start any time. */
  Sent,
  /** A 101 went through: bytes flow both ways. */
  Tunnel,
  Done,
}

/** Legal moves, one bit per target. */
const NEXT: readonly number[] = [
  /* Routing    → */ (1 << Phase.Queued) | (1 << Phase.Connecting) | (1 << Phase.Done),
  /* Queued     → */ (1 << Phase.Connecting) | (1 << Phase.Done),
  /* Connecting → */ (1 << Phase.Sent) | (1 << Phase.Routing) | (1 << Phase.Done),
  /* Sent       → */ (1 << Phase.Routing) | (1 << Phase.Tunnel) | (1 << Phase.Done),
  /* Tunnel     → */ 1 << Phase.Done,
  /* Done       → */ 0,
];

export function isLegalMove(from: Phase, to: Phase): boolean {
  return (NEXT[from]! & (1 << to)) !== 0;
}

const STRICT = process.env.TAP === '1' || process.env.MANIFOLD_STRICT_STATES === '1';

/** `to`, after checking the move (see the file comment for what an illegal one does). */
export function checkedMove(from: Phase, to: Phase, strict: boolean = STRICT): Phase {
  if (!isLegalMove(from, to)) {
    const msg = `manifold router: illegal exchange transition ${Phase[from]} → ${Phase[to]}`;
    if (strict) throw new Error(msg);
    process.emitWarning(msg);
  }
  return to;
}
