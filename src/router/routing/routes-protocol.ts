/** Messages between the routes loader (main thread) and its worker (routes-worker.ts). */
import type { AppInput } from './route-table';
import type { RoutesProblem } from './routes-validate';

export type ToWorker =
  /** Read, parse, check and diff `file`; `full`: diff against nothing (every app is sent). */
  | { type: 'load'; seq: number; file: string; force: boolean; full: boolean }
  /** The main thread built the last part of load `seq`: send the next one (or 'done'). */
  | { type: 'next'; seq: number }
  /** The main thread applied (ok) or refused load `seq`: the worker's base moves only on ok. */
  | { type: 'ack'; seq: number; ok: boolean };

export interface WorkerError {
  message: string;
  /** Set when the file was read and parsed but is not a valid routes document. */
  routes?: { path: string; problem: RoutesProblem; detail: string; label: string };
}

export type FromWorker =
  | { type: 'unchanged'; seq: number }
  | { type: 'error'; seq: number; error: WorkerError }
  /**
   * Part of the changed apps; parts keep each message (and its deserialization) small, and the
   * worker sends the next only when asked ('next'): Node delivers every queued message of a port in
   * one turn, so 50 parts sent at once were deserialized back to back (a 20-30 ms stall).
   */
  | { type: 'part'; seq: number; apps: [string, AppInput][] }
  | { type: 'done'; seq: number; removed: string[]; total: number; full: boolean };
