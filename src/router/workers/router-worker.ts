/**
 * One router event loop in a worker thread (pool.ts starts N of them). It owns a Router whose
 * table mirrors the main thread's (deltas applied in order, each confirmed with 'applied'), accepts
 * on its own SO_REUSEPORT socket, and posts its log lines to the main thread, which writes them
 * whole: a worker never writes to stdout itself.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createRouter, isRetryNotice } from '../index';
import { RouterError } from '../errors';
import { decodeDelta } from '../routing/delta-wire';
import type { FromWorker, LogStats, RouterWorkerData, ToWorker } from './protocol';
import { CursorView } from './shared-cursors';

const port = parentPort;
if (port === null) throw new Error('router-worker.js runs as a worker thread (see workers/pool.ts)');
const data = workerData as RouterWorkerData;
const router = createRouter(data.config);
// Round-robin turns are the pool's, not this worker's: consecutive requests on different
// connections (so on different workers) still go to different dynos.
const cursors = new CursorView(data.cursors);
router.balancer.shareCursors(cursors);
const post = (m: FromWorker): void => port.postMessage(m);

// Lines leave in emission order, a batch at most every LOG_BATCH_MS (or at LOG_BATCH_LINES): one
// message, and one wake-up of the main thread, per batch instead of per request or per turn. On a
// busy worker a turn holds a few requests, and a message per turn woke the main thread thousands of
// times a second. waitIdle and close flush first, so nothing is held back past a drain or a stop.
const LOG_BATCH_MS = 5;
const LOG_BATCH_LINES = 256;
let flushTimer: NodeJS.Timeout | null = null;
let lines: string[] = [];
let times: number[] = [];
let apps: (string | null)[] = [];
let stats = emptyStats();
if (data.log && !data.stats) {
  router.on('log', (entry) => {
    if (lines.length === 0) flushTimer = setTimeout(flushLog, LOG_BATCH_MS);
    lines.push(entry.line);
    times.push(Date.now());
    if (lines.length >= LOG_BATCH_LINES) flushLog();
  });
} else if (data.log) {
  router.on('log', (entry) => {
    if (lines.length === 0) flushTimer = setTimeout(flushLog, LOG_BATCH_MS);
    lines.push(entry.line);
    times.push(Date.now());
    apps.push(entry.app);
    stats.status.push(entry.status);
    stats.code.push(entry.code);
    stats.serviceMs.push(entry.serviceMs);
    stats.connectMs.push(entry.connectMs);
    stats.bytes.push(entry.bytes);
    stats.retry.push(isRetryNotice(entry));
    if (lines.length >= LOG_BATCH_LINES) flushLog();
  });
}
function emptyStats(): LogStats {
  return { status: [], code: [], serviceMs: [], connectMs: [], bytes: [], retry: [] };
}
function flushLog(): void {
  if (flushTimer !== null) {
    clearTimeout(flushTimer);
    flushTimer = null;
  }
  if (lines.length === 0) return;
  post(data.stats ? { type: 'log', lines, times, apps, stats } : { type: 'log', lines, times, apps: null, stats: null });
  lines = [];
  times = [];
  apps = [];
  stats = emptyStats();
}

router.on('error', (err) => post({ type: 'error', message: err.message }));

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'routes':
      cursors.apply(m.cursors);
      router.table.mirror(decodeDelta(m.delta));
      post({ type: 'applied', version: m.delta.version });
      return;
    case 'listen':
      router.listen(m.specs, { reusePort: true }).then(
        (bound) => post({ type: 'listening', bound }),
        (err: unknown) => {
          const e = err as NodeJS.ErrnoException;
          post({ type: 'listen-error', code: err instanceof RouterError ? err.code : e.code ?? 'ELISTEN', message: e.message });
        },
      );
      return;
    case 'wait-idle':
      // lines emitted before the last request ended go first: the manifold's "Stopping" line follows them
      void router.waitIdle('', m.address, m.timeoutMs).then(() => {
        flushLog();
        post({ type: 'idle', id: m.id });
      });
      return;
    case 'load': {
      const { inFlight, queued } = router.load();
      post({ type: 'load', id: m.id, apps: [...inFlight.keys()], inFlight: [...inFlight.values()], queued });
      return;
    }
    case 'close':
      flushLog();
      void router.close().then(() => {
        flushLog();
        post({ type: 'closed' });
      });
      return;
  }
});
