/** Waiting on a test peer's state: every event calls wake(), and until() rechecks its condition then. */
export class Wakeup {
  private waiters: Array<() => void> = [];

  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves once `pred` holds (checked on every wake, and every 20 ms), or rejects after `ms`. */
  async until(pred: () => boolean, ms: number, timeoutMessage: () => string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(timeoutMessage());
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
