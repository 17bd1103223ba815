/**
 * Drives bench/lib/load-client (closed-loop HTTP load) inside a fabric namespace, `cl` by default, and
 * collects its JSONL records. The client runs as its own process so its event loop is not the test's
 * and it sits on the fabric like any outside client would.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { LoadRecord, LoadSummary } from '../../../bench/lib/load-client';
import type { Fabric } from './fabric';

export type { LoadRecord, LoadSummary };

/** dist/test/cluster/helpers → dist/bench/lib */
export const LOAD_CLIENT = path.join(__dirname, '..', '..', '..', 'bench', 'lib', 'load-client.js');

export interface LoadOptions {
  /** Router addresses, host:port (workers are spread round-robin over them). */
  targets: string[];
  /** Host header, e.g. hello.example.test. */
  host: string;
  /** Keep-alive connections (closed-loop workers); default 12 as in spec §7. */
  connections?: number;
  /** Hard bound on the run; default 60 s. The run may also end earlier through stop(). */
  durationMs?: number;
  /** Optional bound on the number of requests. */
  maxRequests?: number;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  path?: string;
  /** Namespace to run in (default cl). */
  ns?: string;
  /** Response header naming the dyno (default x-dyno). */
  dynoHeader?: string;
  /** Regex with one group taking the dyno name from the body, e.g. 'Hello from (\\S+)'. */
  dynoBodyRegex?: string;
  /** Keep the first N bytes of each body in the record. */
  bodyBytes?: number;
  /** Response headers to copy into each record. */
  captureHeaders?: string[];
}

export type LoadResult = LoadSummary & { records: LoadRecord[]; stderr: string };

export interface LoadRun {
  child: ChildProcess;
  /** Records received so far (grows while the run goes). */
  records: LoadRecord[];
  /** Resolves when the client ends by itself (duration or count reached). */
  done: Promise<LoadResult>;
  /** Asks the client to stop (in-flight requests finish), then resolves like done. */
  stop(): Promise<LoadResult>;
}

function clientArgs(o: LoadOptions): string[] {
  const args = ['--stop-on-stdin-end', '--host', o.host, '--connections', String(o.connections ?? 12), '--duration-ms', String(o.durationMs ?? 60_000)];
  for (const t of o.targets) args.push('--target', t);
  if (o.maxRequests !== undefined) args.push('--max-requests', String(o.maxRequests));
  if (o.timeoutMs !== undefined) args.push('--timeout-ms', String(o.timeoutMs));
  if (o.path !== undefined) args.push('--path', o.path);
  if (o.dynoHeader !== undefined) args.push('--dyno-header', o.dynoHeader);
  if (o.dynoBodyRegex !== undefined) args.push('--dyno-body-regex', o.dynoBodyRegex);
  if (o.bodyBytes !== undefined) args.push('--body-bytes', String(o.bodyBytes));
  for (const h of o.captureHeaders ?? []) args.push('--capture-header', h);
  return args;
}

/** Starts a load run; fabric.stop() kills it if the test never stops it. */
export function startLoad(fabric: Fabric, opts: LoadOptions): LoadRun {
  const child = fabric.node(opts.ns ?? 'cl', LOAD_CLIENT, clientArgs(opts), { stdio: ['pipe', 'pipe', 'pipe'] });
  const records: LoadRecord[] = [];
  let summary: LoadSummary | undefined;
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // stdin is how stop() asks the client to end; an EPIPE after it exited is expected.
  child.stdin?.on('error', () => undefined);
  const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
  lines.on('line', (line) => {
    const parsed = JSON.parse(line) as LoadRecord | LoadSummary;
    if ('summary' in parsed) summary = parsed;
    else records.push(parsed);
  });
  const done = new Promise<LoadResult>((resolve, reject) => {
    let exited: number | null | undefined;
    let closed = false;
    const settle = (): void => {
      if (exited === undefined || !closed) return;
      if (summary) resolve({ ...summary, records, stderr });
      else reject(new Error(`load client exited ${exited} without a summary: ${stderr.trim()}`));
    };
    child.once('exit', (code) => {
      exited = code;
      settle();
    });
    lines.once('close', () => {
      closed = true;
      settle();
    });
  });
  // Keep an unobserved failure from crashing the test as an unhandled rejection; callers see it via done/stop.
  done.catch(() => undefined);
  return {
    child,
    records,
    done,
    stop() {
      // Ending stdin rather than SIGTERM: a signal that lands before the client has installed its handler
      // (node takes ~50 ms to start) would kill it without a summary; stdin's end is seen whenever it reads.
      child.stdin?.end();
      const stuck = setTimeout(() => child.kill('SIGKILL'), (opts.timeoutMs ?? 10_000) + 5000);
      return done.finally(() => clearTimeout(stuck));
    },
  };
}
