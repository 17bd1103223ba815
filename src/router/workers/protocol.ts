/**
 * Messages between the main thread (pool.ts) and a router worker (router-worker.ts). Everything
 * here crosses postMessage, so it is plain data: no classes, no functions.
 */
import type { ListenSpec, RouterConfigInput } from '../config';
import type { RouteDelta } from '../routing/route-table';

export interface RouterWorkerData {
  config: RouterConfigInput;
  /** Post log lines to the main thread (a router without log listeners formats none). */
  log: boolean;
}

export interface BoundSpec {
  host: string;
  port: number;
}

export type ToWorker =
  /** Mirror one swap of the main thread's table; answered with 'applied'. */
  | { type: 'routes'; delta: RouteDelta }
  /** Accept on `specs` with SO_REUSEPORT (ports are concrete, except the first worker's). */
  | { type: 'listen'; specs: ListenSpec[] }
  | { type: 'wait-idle'; id: number; address: string; timeoutMs: number }
  | { type: 'close' };

export type FromWorker =
  | { type: 'applied'; version: number }
  | { type: 'listening'; bound: BoundSpec[] }
  | { type: 'listen-error'; code: string; message: string }
  /** One event-loop turn's log lines, in the order the worker's router emitted them. */
  | { type: 'log'; lines: string[]; times: number[]; apps: (string | null)[] }
  | { type: 'error'; message: string }
  | { type: 'idle'; id: number }
  | { type: 'closed' };
