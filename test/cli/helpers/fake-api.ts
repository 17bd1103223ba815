/**
 * A stand-in for the daemon's control socket: the same HTTP-over-unix-socket API (POST /v1/METHOD,
 * JSON params, {result} or {error}), answering every client call with a small protocol-correct
 * result. For tests and benchmarks of the CLI itself, without the daemon's cost or privileges.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AppInfo, PsResult, ReleaseInfo, ScaleResult } from '../../../src/manifold/api/protocol';

export interface FakeApi {
  socketPath: string;
  /** Methods called so far, in order. */
  calls: string[];
  close(): Promise<void>;
}

const now = (): number => Date.now();

function cannedResult(method: string, p: Record<string, unknown>): unknown {
  const app = typeof p.app === 'string' ? p.app : 'demo';
  const info = (): AppInfo => ({
    name: app,
    url: `http://${app}.localhost/`,
    createdAt: now(),
    release: 2,
    slug: null,
    formation: [{ type: 'web', quantity: 1, size: 'standard-1x', command: 'node server.js' }],
    settings: {},
    dynos: 1,
  });
  const releases: ReleaseInfo[] = [
    { version: 2, description: 'Deploy', createdAt: now(), current: true },
    { version: 1, description: 'Initial release', createdAt: now(), current: false },
  ];
  switch (method) {
    case 'apps':
      return ['demo', 'other'];
    case 'apps:create':
    case 'apps:info':
      return info();
    case 'apps:destroy':
      return null;
    case 'apps:settings':
      return {};
    case 'deploy':
    case 'rollback':
      return releases[0];
    case 'releases':
      return releases;
    case 'config':
      return { GREETING: 'hi', LANG: 'en_US.UTF-8' };
    case 'config:update':
      return { release: 3, config: { GREETING: 'hi' } };
    case 'ps': {
      const ps: PsResult = {
        app,
        now: now(),
        dynos: [{ name: 'web.1', type: 'web', state: 'up', since: now() - 60_000, command: 'node server.js', size: 'Standard-1X', release: 2, pid: 4242, address: null, crashes: 0, restartAt: null, reason: null, oneoff: false }],
        types: { web: { command: 'node server.js', size: 'Standard-1X' } },
      };
      return ps;
    }
    case 'ps:scale': {
      const r: ScaleResult = { formation: [{ type: 'web', quantity: 2, size: 'standard-1x' }] };
      return r;
    }
    case 'ps:restart':
    case 'ps:stop':
      return ['web.1'];
    case 'logs':
      return ['2026-01-01T00:00:00.000000+00:00 app[web.1]: listening on 5000'];
    case 'info':
      return { version: '0', pid: process.pid, stateDir: '/nonexistent', listen: null, domain: 'localhost', net: 'none', warning: null };
    default:
      return undefined;
  }
}

export function startFakeApi(socketPath: string): Promise<FakeApi> {
  const calls: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = (req.url ?? '').replace(/^\/v1\//, '');
      calls.push(method);
      let params: Record<string, unknown> = {};
      try {
        params = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        /* answered as an unknown method below */
      }
      const result = cannedResult(method, params);
      const body = result === undefined ? { error: { code: 'EINVAL', message: `unknown method ${method}` } } : { result };
      res.writeHead(result === undefined ? 400 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  fs.rmSync(socketPath, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () =>
      resolve({
        socketPath,
        calls,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      }),
    );
  });
}
