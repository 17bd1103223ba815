/**
 * Bounded waits for shutdown paths: with etcd away, a revoke or a watch cancel may never be answered,
 * and a daemon (or a test) told to stop must stop anyway.
 */

/** Resolves when `p` settles (either way) or after `ms`, whichever comes first. */
export function settleWithin(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!p) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    const done = (): void => {
      clearTimeout(t);
      resolve();
    };
    p.then(done, done);
  });
}
