/**
 * bench:cluster's hands inside the fabric: the bench process sits in the root network namespace and
 * can't reach the hosts' cluster servers (10.99.0.I:7946), so this small process runs in `cl` and makes
 * the calls for it. stdin: one JSON request a line `{id, addr, path, body, timeoutMs}`; stdout: one
 * JSON answer a line `{id, result}` or `{id, error}`. The cluster token comes in MF_CLUSTER_TOKEN (not
 * argv, which `ps` shows). Ends when stdin ends.
 */
import readline from 'node:readline';
import { clusterCall } from '../../src/cluster/cluster-server';

export interface ProbeRequest {
  id: number;
  /** host:port of a cluster server. */
  addr: string;
  /** e.g. /v1/local/applied */
  path: string;
  body: unknown;
  timeoutMs: number;
}

export type ProbeAnswer = { id: number; result: unknown } | { id: number; error: string };

function main(): void {
  const token = process.env.MF_CLUSTER_TOKEN ?? '';
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const r = JSON.parse(line) as ProbeRequest;
    clusterCall<unknown>(r.addr, token, 'POST', r.path, r.body, r.timeoutMs).then(
      (result) => process.stdout.write(`${JSON.stringify({ id: r.id, result })}\n`),
      (err: unknown) => process.stdout.write(`${JSON.stringify({ id: r.id, error: err instanceof Error ? err.message : String(err) })}\n`),
    );
  });
  lines.on('close', () => setTimeout(() => process.exit(0), 100).unref());
}

if (require.main === module) main();
