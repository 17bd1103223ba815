/**
 * Messages between the main thread (pool.ts) and a router worker (router-worker.ts). Everything
 * here crosses postMessage, so it is plain data: no classes, no functions.
 */
import type { ListenSpec, RouterConfigInput } from '../config';
import type { HCode } from '../errors';
import type { WireDelta } from '../routing/delta-wire';
import type { CursorAssignments } from './shared-cursors';

export interface RouterWorkerData {
  config: RouterConfigInput;
  /** Post log lines to the main thread (a router without log listeners formats none). */
  log: boolean;
  /** Also post each line's app and numbers (the daemon's statistics need them; a plain log does not). */
  stats: boolean;
  /** The pool's round-robin cursors (shared-cursors.ts). */
  cursors: SharedArrayBuffer;
}

export interface BoundSpec {
  host: string;
  port: number;
}

/** Per log line (parallel to `lines`): the record's fields statistics need; plain arrays post cheaply. */
export interface LogStats {
  status: (number | null)[];
  code: (HCode | null)[];
  serviceMs: (number | null)[];
  connectMs: (number | null)[];
  bytes: (number | null)[];
  /** The line is a retry notice, not a request (isRetryNotice). */
  retry: boolean[];
}

export type ToWorker =
  /** Mirror one swap of the main thread's table (and its apps' cursor slots); answered with 'applied'. */
  | { type: 'routes'; delta: WireDelta; cursors: CursorAssignments }
  /** Accept on `specs` with SO_REUSEPORT (ports are concrete, except the first worker's). */
  | { type: 'listen'; specs: ListenSpec[] }
  | { type: 'wait-idle'; id: number; address: string; timeoutMs: number }
  | { type: 'load'; id: number }
  | { type: 'close' };

export type FromWorker =
  | { type: 'applied'; version: number }
  | { type: 'listening'; bound: BoundSpec[] }
  | { type: 'listen-error'; code: string; message: string }
  /**
   * One event-loop turn's log lines, in the order the worker's router emitted them, with each
   * record's app and numbers in parallel arrays (the daemon's statistics read these, never the
   * lines); null when the pool was asked for lines only.
   */
  | { type: 'log'; lines: string[]; times: number[]; apps: (string | null)[] | null; stats: LogStats | null }
  /** Answer to 'load': this worker's in-flight requests per app, and its boot queue. */
  | { type: 'load'; id: number; apps: string[]; inFlight: number[]; queued: number }
  | { type: 'error'; message: string }
  | { type: 'idle'; id: number }
  | { type: 'closed' };
