/**
 * Worker thread of the routes loader: reads the routes file, parses and checks it whole, and sends
 * the main thread only the apps that changed since the last applied load. JSON.parse and checking a
 * 10 000-app file took 200-500 ms on a loaded box: here they stall no request.
 */
import { readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import type { AppInput } from './route-table';
import { diffRoutes } from './routes-diff';
import type { FromWorker, ToWorker } from './routes-protocol';
import { RoutesError, validateRoutes } from './routes-validate';

/** Apps per 'part' message: small enough that deserializing one is well under a millisecond. */
const PART = 200;

/**
 * Lower this thread's priority (Linux: nice is per thread; /proc/thread-self names our tid): on a
 * busy box a reload's parse then takes CPU from other work rather than from the thread serving
 * requests. Best effort: elsewhere, or if refused, the worker runs at normal priority. Called after
 * the first read: libuv's thread pool, shared with the main thread, is started by that read and
 * must not inherit the lower priority.
 */
let lowered = false;
function lowerPriority(): void {
  if (lowered) return;
  lowered = true;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, 10);
  } catch {
    /* not Linux, or no /proc */
  }
}

let base = new Map<string, string>();
let lastText: string | null = null;
let pending: { seq: number; text: string; next: Map<string, string>; parts: FromWorker[] } | null = null;

const post = (m: FromWorker): void => parentPort!.postMessage(m);

async function load(m: Extract<ToWorker, { type: 'load' }>): Promise<void> {
  let text: string;
  try {
    text = await readFile(m.file, 'utf8');
  } catch (err) {
    lowerPriority();
    return post({ type: 'error', seq: m.seq, error: { message: `cannot read ${m.file}: ${(err as Error).message}` } });
  }
  lowerPriority();
  if (!m.force && !m.full && text === lastText) return post({ type: 'unchanged', seq: m.seq });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return post({ type: 'error', seq: m.seq, error: { message: `${m.file} is not valid JSON: ${(err as Error).message}` } });
  }
  let apps: Record<string, AppInput>;
  try {
    apps = validateRoutes(doc, 'routes file').apps;
  } catch (err) {
    const e = err as Error;
    return post({ type: 'error', seq: m.seq, error: e instanceof RoutesError ? { message: e.message, routes: { path: e.path, problem: e.problem, detail: e.detail, label: e.label } } : { message: e.message } });
  }
  const diff = diffRoutes(m.full ? new Map() : base, apps);
  const parts: FromWorker[] = [];
  for (let i = 0; i < diff.changed.length; i += PART) parts.push({ type: 'part', seq: m.seq, apps: diff.changed.slice(i, i + PART) });
  parts.push({ type: 'done', seq: m.seq, removed: diff.removed, total: diff.next.size, full: m.full });
  pending = { seq: m.seq, text, next: diff.next, parts };
  sendNext();
}

/** One message of the load in progress: a part, then (asked once more) 'done'. */
function sendNext(): void {
  const m = pending?.parts.shift();
  if (m !== undefined) post(m);
}

parentPort!.on('message', (m: ToWorker) => {
  if (m.type === 'load') {
    void load(m);
  } else if (m.type === 'next') {
    if (pending !== null && pending.seq === m.seq) sendNext();
  } else if (pending !== null && pending.seq === m.seq) {
    if (m.ok) {
      base = pending.next;
      lastText = pending.text;
    }
    pending = null;
  }
});
