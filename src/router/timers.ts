/**
 * One coarse sweep instead of a timer per request (docs/router.md#timeouts): connections store an absolute
 * deadline and a kind; the sweep fires whatever is due. Its period bounds how late a timeout fires.
 */

export enum Deadline {
  None = 0,
  /** Idle keep-alive client connection: closed silently. */
  ClientIdle,
  /** A request head that does not finish: 408. */
  HeadRead,
  /** Waiting for a starting dyno / a quarantine to lift: H20 / H99. */
  BootQueue,
  /** TCP connect to a dyno: quarantine + retry, finally H19. */
  Connect,
  /** Request sent, no response byte yet: H12. */
  FirstByte,
  /** Client stalled while uploading the body: H28. */
  UploadIdle,
  /** Dyno stalled mid-response: H15. */
  ResponseIdle,
  /** Upgraded tunnel idle both ways: close. */
  TunnelIdle,
  /** After a final `end()`, the peer never closed: destroy. */
  Linger,
}

export interface HasDeadline {
  deadline: number;
  deadlineKind: Deadline;
  onDeadline(kind: Deadline): void;
}

export class Sweeper {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly periodMs: number,
    private readonly sweep: (now: number) => void,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sweep(Date.now()), this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/** Fires `item`'s deadline if it is due (once: the kind is cleared first). */
export function fireIfDue(item: HasDeadline, now: number): void {
  if (item.deadlineKind !== Deadline.None && item.deadline <= now) {
    const kind = item.deadlineKind;
    item.deadlineKind = Deadline.None;
    item.onDeadline(kind);
  }
}
