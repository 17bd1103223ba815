/**
 * `logs` in cluster mode: every host keeps the lines of its own dynos and router in its LogHub, and
 * the API host asks them all. A backlog (`-n`) merges every host's last lines by time; a tail (`-t`)
 * holds one NDJSON stream per host (GET /v1/local/logs/tail) plus this host's own hub.
 */
import http from 'node:http';
import type { LogSourceOf } from '../manifold/api/server';
import type { LogHub } from '../manifold/logs/hub';
import { matches, type LogFilter, type LogLine } from '../manifold/logs/log-buffer';
import { clusterCall } from './cluster-server';
import { splitHostPort } from './slug-transfer';

export interface ClusterLogsOptions {
  hub: LogHub;
  selfId: string;
  token: () => string;
  /** Cluster server address of every live host (id → host:port), this one included. */
  hostAddresses: () => Map<string, string>;
}

const byTime = (a: LogLine, b: LogLine): number => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.seq - b.seq);

export function clusterLogSource(o: ClusterLogsOptions): LogSourceOf {
  const others = (): [string, string][] => [...o.hostAddresses()].filter(([id]) => id !== o.selfId);
  return {
    async tail(app: string, n: number, filter: LogFilter): Promise<LogLine[]> {
      const local = o.hub.get(app).tail(n, filter);
      const remote = await Promise.all(
        others().map(([, addr]) => clusterCall<LogLine[]>(addr, o.token(), 'POST', '/v1/local/logs', { app, n, ...filter }, 5000).catch(() => [] as LogLine[])),
      );
      return n === 0 ? [] : [...local, ...remote.flat()].sort(byTime).slice(-n);
    },
    subscribe(app: string, filter: LogFilter, onLine: (l: LogLine) => void): () => void {
      const offLocal = o.hub.get(app).subscribe((l) => {
        if (matches(l, filter)) onLine(l);
      });
      const reqs: http.ClientRequest[] = [];
      for (const [, addr] of others()) {
        const [hostname, port] = splitHostPort(addr);
        const q = new URLSearchParams({ app, ...(filter.source ? { source: filter.source } : {}), ...(filter.dyno ? { dyno: filter.dyno } : {}) });
        const req = http.get({ hostname, port, path: `/v1/local/logs/tail?${q}`, headers: { authorization: `Bearer ${o.token()}` } }, (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            buf += d;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              try {
                onLine(JSON.parse(line) as LogLine);
              } catch {
                /* a torn line from a host that went away */
              }
            }
          });
        });
        req.on('error', () => undefined);
        reqs.push(req);
      }
      return () => {
        offLocal();
        for (const r of reqs) r.destroy();
      };
    },
  };
}

/** The cluster server's half: this host's lines of `app` as NDJSON until the caller hangs up. */
export function serveLogTail(hub: LogHub, params: Record<string, string>, res: http.ServerResponse): void {
  const app = params.app ?? '';
  const filter: LogFilter = { source: params.source, dyno: params.dyno };
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  const off = hub.get(app).subscribe((l) => {
    if (matches(l, filter)) res.write(`${JSON.stringify(l)}\n`);
  });
  res.on('close', off);
}
