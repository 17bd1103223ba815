/** Starts a router on 127.0.0.1:0 for a test, with captured log lines. */
import { createRouter, type AppInput, type Router, type RouterConfigInput, type RouterLogEntry } from '../../../src/router/index';

export interface TestRouter {
  router: Router;
  port: number;
  logs: RouterLogEntry[];
  /** Resolves with the first log entry (from `from` on) matching `pred`. */
  waitLog(pred: (e: RouterLogEntry) => boolean, ms?: number): Promise<RouterLogEntry>;
  close(): Promise<void>;
}

export async function startRouter(apps: Record<string, AppInput>, config: RouterConfigInput = {}): Promise<TestRouter> {
  const router = createRouter(config);
  router.table.replace({ apps });
  const logs: RouterLogEntry[] = [];
  router.on('log', (e) => logs.push({ ...e }));
  const [bound] = await router.listen([{ host: '127.0.0.1', port: 0 }]);
  return {
    router,
    port: bound!.port,
    logs,
    async waitLog(pred, ms = 5000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = logs.find(pred);
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no matching log line; have:\n${logs.map((l) => l.line).join('\n')}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () => router.close(),
  };
}

/** Replaces the per-request parts of a log line (request id, timings) so lines compare exactly. */
export function normalizeLogLine(line: string): string {
  return line
    .replace(/request_id=[^ ]+/, 'request_id=ID')
    .replace(/connect=\d+ms/, 'connect=Nms')
    .replace(/service=\d+ms/, 'service=Nms');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
