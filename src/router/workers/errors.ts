/** A router worker thread failed or reported an error (the pool restarts a worker that exits). */
export class RouterWorkerError extends Error {
  readonly code = 'EWORKER';
  constructor(
    readonly worker: number,
    message: string,
  ) {
    super(`router worker ${worker}: ${message}`);
    this.name = 'RouterWorkerError';
  }
}
