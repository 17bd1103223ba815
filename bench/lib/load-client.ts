/**
 * Closed-loop HTTP/1.1 load generator (spec §7 Tier 2), run as its own process inside the `cl`
 * namespace: `node load-client.js --target 10.99.0.1:8080 --target 10.99.0.2:8080 --host hello.example
 * --connections 12 --duration-ms 10000 [--max-requests N] [--out FILE] [--timeout-ms 10000]
 * [--dyno-header x-dyno] [--dyno-body-regex 'Hello from (\S+)'] [--body-bytes 200] [--capture-header h]
 * [--stop-on-stdin-end]`.
 *
 * C workers, each with its own keep-alive agent holding one socket (so C = connections), worker k
 * bound to target k mod T. Each sends the next request when the previous one ends. One JSONL record per
 * request, then `{summary:true,…}`. Bounded by --duration-ms and --max-requests (at least one of them
 * required, so a run can never be endless); SIGTERM (or stdin's end, with --stop-on-stdin-end) stops it early. In-flight requests
 * finish (bounded by --timeout-ms) before the summary.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface LoadRecord {
  id: string;
  /** Epoch ms (fractional) when the request was issued / its response ended or it failed. */
  start: number;
  end: number;
  /** HTTP status, 0 when no response came. */
  status: number;
  target: string;
  worker: number;
  dyno?: string;
  error?: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface LoadSummary {
  summary: true;
  total: number;
  ok: number;
  failed: number;
  byStatus: Record<string, number>;
  /** Latency percentiles of all requests, ms. */
  p50: number;
  p99: number;
  durationMs: number;
}

interface Options {
  targets: string[];
  host: string;
  path: string;
  connections: number;
  durationMs: number;
  maxRequests: number;
  timeoutMs: number;
  out: string | undefined;
  dynoHeader: string;
  dynoBodyRegex: RegExp | undefined;
  bodyBytes: number;
  captureHeaders: string[];
  stopOnStdinEnd: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    targets: [],
    host: 'localhost',
    path: '/',
    connections: 1,
    durationMs: 0,
    maxRequests: 0,
    timeoutMs: 10_000,
    out: undefined,
    dynoHeader: 'x-dyno',
    dynoBodyRegex: undefined,
    bodyBytes: 0,
    captureHeaders: [],
    stopOnStdinEnd: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--stop-on-stdin-end') {
      o.stopOnStdinEnd = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    const num = (): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${flag}: not a number: ${v}`);
      return n;
    };
    switch (flag) {
      case '--target':
        o.targets.push(...v.split(',').filter(Boolean));
        break;
      case '--host':
        o.host = v;
        break;
      case '--path':
        o.path = v;
        break;
      case '--connections':
        o.connections = Math.max(1, Math.floor(num()));
        break;
      case '--duration-ms':
        o.durationMs = num();
        break;
      case '--max-requests':
        o.maxRequests = Math.floor(num());
        break;
      case '--timeout-ms':
        o.timeoutMs = num();
        break;
      case '--out':
        o.out = v;
        break;
      case '--dyno-header':
        o.dynoHeader = v.toLowerCase();
        break;
      case '--dyno-body-regex':
        o.dynoBodyRegex = new RegExp(v);
        break;
      case '--body-bytes':
        o.bodyBytes = Math.floor(num());
        break;
      case '--capture-header':
        o.captureHeaders.push(v.toLowerCase());
        break;
      default:
        throw new Error(`unknown flag ${flag}`);
    }
  }
  if (o.targets.length === 0) throw new Error('--target host:port is required');
  if (o.durationMs <= 0 && o.maxRequests <= 0) throw new Error('give --duration-ms or --max-requests: every load run must be bounded');
  return o;
}

const now = (): number => performance.timeOrigin + performance.now();

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** One request on the worker's agent; resolves with its record (never rejects). */
function request(o: Options, agent: http.Agent, target: string, worker: number, id: string): Promise<LoadRecord> {
  const [hostname, portText] = splitTarget(target);
  const start = now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (rec: Omit<LoadRecord, 'id' | 'start' | 'end' | 'target' | 'worker'>): void => {
      if (done) return;
      done = true;
      resolve({ id, start, end: now(), target, worker, ...rec });
    };
    const req = http.request(
      { agent, hostname, port: Number(portText), path: o.path, method: 'GET', headers: { host: o.host, 'x-request-id': id } },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        const wantBody = o.bodyBytes > 0 || o.dynoBodyRegex !== undefined;
        const limit = Math.max(o.bodyBytes, wantBody ? 200 : 0);
        res.on('data', (c: Buffer) => {
          if (kept < limit) {
            chunks.push(c.subarray(0, limit - kept));
            kept += Math.min(c.length, limit - kept);
          }
        });
        res.on('error', (err) => finish({ status: res.statusCode ?? 0, error: err.message }));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const rec: Omit<LoadRecord, 'id' | 'start' | 'end' | 'target' | 'worker'> = { status: res.statusCode ?? 0 };
          const h = res.headers[o.dynoHeader];
          const fromBody = o.dynoBodyRegex?.exec(body)?.[1];
          const dyno = typeof h === 'string' ? h : fromBody;
          if (dyno !== undefined) rec.dyno = dyno;
          if (o.bodyBytes > 0) rec.body = body.slice(0, o.bodyBytes);
          const captured: Record<string, string> = {};
          for (const name of o.captureHeaders) {
            const v = res.headers[name];
            if (v !== undefined) captured[name] = Array.isArray(v) ? v.join(', ') : v;
          }
          if (Object.keys(captured).length > 0) rec.headers = captured;
          finish(rec);
        });
      },
    );
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`timeout after ${o.timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => finish({ status: 0, error: err.code ?? err.message }));
    req.end();
  });
}

function splitTarget(target: string): [string, string] {
  const i = target.lastIndexOf(':');
  if (i <= 0) throw new Error(`target must be host:port, got ${target}`);
  return [target.slice(0, i), target.slice(i + 1)];
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const out = o.out ? fs.createWriteStream(o.out) : process.stdout;
  const runId = crypto.randomBytes(8).toString('hex');
  const t0 = now();
  const deadline = o.durationMs > 0 ? t0 + o.durationMs : Infinity;
  let stopped = false;
  let issued = 0;
  const latencies: number[] = [];
  const byStatus: Record<string, number> = {};
  let ok = 0;
  let failed = 0;

  const stop = (): void => {
    stopped = true;
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The driver (helpers/load) ends stdin to stop us. Opt-in: a shell run with stdin on /dev/null would
  // otherwise stop at once.
  if (o.stopOnStdinEnd) process.stdin.on('end', stop).on('error', stop).resume();
  const timer = Number.isFinite(deadline) ? setTimeout(stop, o.durationMs) : undefined;

  const worker = async (k: number): Promise<void> => {
    // One socket per worker: C workers are C keep-alive connections.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const target = o.targets[k % o.targets.length] as string;
    let seq = 0;
    while (!stopped && now() < deadline && (o.maxRequests <= 0 || issued < o.maxRequests)) {
      issued++;
      // The router keeps a client X-Request-Id of 20–200 chars of [A-Za-z0-9+/=-]: this one is ≥ 22.
      const rec = await request(o, agent, target, k, `lc${runId}-w${k}-${seq++}`);
      latencies.push(rec.end - rec.start);
      const key = rec.error ? 'error' : String(rec.status);
      byStatus[key] = (byStatus[key] ?? 0) + 1;
      if (!rec.error && rec.status >= 200 && rec.status < 400) ok++;
      else failed++;
      out.write(`${JSON.stringify(rec)}\n`);
    }
    agent.destroy();
  };
  await Promise.all(Array.from({ length: o.connections }, (_, k) => worker(k)));
  if (timer) clearTimeout(timer);
  latencies.sort((a, b) => a - b);
  const summary: LoadSummary = {
    summary: true,
    total: ok + failed,
    ok,
    failed,
    byStatus,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    durationMs: now() - t0,
  };
  const line = `${JSON.stringify(summary)}\n`;
  if (out !== process.stdout) await new Promise<void>((r) => (out as fs.WriteStream).end(line, () => r()));
  process.stdout.write(line, () => process.exit(0));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`load-client: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
}
