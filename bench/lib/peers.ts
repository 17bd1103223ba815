// Start the benchmark peers (backends and proxies) on 127.0.0.1, configs in temp dirs.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, makeTempDir, start, waitForPort, type Proc } from './procs';

export const BENCH_HOST = 'bench.localhost';

/** dist/bench/lib -> repo root */
export const REPO_ROOT = resolve(__dirname, '..', '..', '..');
const LIB_DIR = __dirname;

export interface Peer {
  name: string;
  port: number;
  proc: Proc;
  dir: string;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function nginxCommon(dir: string, workers = 1): string {
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d), { recursive: true });
  return `
${isRoot ? 'user root;' : ''}
daemon off;
master_process on;
worker_processes ${workers};
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 19500; }
`;
}

function nginxHttpCommon(dir: string): string {
  return `
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 3600s;
  client_header_timeout 3600s;
`;
}

async function startNginx(name: string, conf: string, dir: string, port: number, cpus: string | undefined): Promise<Peer> {
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const proc = start(name, 'nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', confPath], {
    cpus,
    logFile: join(dir, 'stdout.log'),
  });
  await waitForPort(port, 10_000, proc);
  return { name, port, proc, dir };
}

/** nginx serving a 13-byte body on each port (one process, one worker). */
export async function startNginxBackend(ports: readonly number[], cpus: string | undefined): Promise<Peer> {
  const dir = makeTempDir('nginx-backend');
  const servers = ports
    .map((p) => `  server { listen 127.0.0.1:${p} backlog=4096; location / { return 200 "Hello, World!"; } }`)
    .join('\n');
  const conf = `${nginxCommon(dir)}
http {
${nginxHttpCommon(dir)}
  default_type text/plain;
${servers}
}
`;
  return startNginx('nginx-backend', conf, dir, ports[0] as number, cpus);
}

/**
 * nginx as reverse proxy: upstream keepalive, HTTP/1.1 upstream, Connection "". One worker by
 * default; with `workers` > 1 each worker gets its own accept socket (`reuseport`), as the
 * router's workers have.
 */
export async function startNginxProxy(port: number, backends: readonly string[], cpus: string | undefined, workers = 1): Promise<Peer> {
  const dir = makeTempDir(workers === 1 ? 'nginx-proxy' : `nginx-w${workers}`);
  const conf = `${nginxCommon(dir, workers)}
http {
${nginxHttpCommon(dir)}
  upstream app {
${backends.map((b) => `    server ${b};`).join('\n')}
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 3600s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096${workers > 1 ? ' reuseport' : ''};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_max_temp_file_size 0;
    }
  }
}
`;
  return startNginx(workers === 1 ? 'nginx' : `nginx-${workers}`, conf, dir, port, cpus);
}

/** HAProxy 2.6: nbthread 1, http-reuse always, http-keep-alive, round-robin. */
export async function startHaproxy(port: number, backends: readonly string[], cpus: string | undefined): Promise<Peer> {
  const dir = makeTempDir('haproxy');
  const conf = `global
  nbthread 1
  maxconn 9900
  fd-hard-limit 20000
  log stderr format raw local0 err

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 3600s
  timeout server 3600s
  timeout http-request 3600s
  timeout http-keep-alive 3600s
  maxconn 9900

frontend fe
  bind 127.0.0.1:${port}
  default_backend be

backend be
  balance roundrobin
${backends.map((b, i) => `  server s${i + 1} ${b}`).join('\n')}
`;
  const confPath = join(dir, 'haproxy.cfg');
  writeFileSync(confPath, conf);
  const proc = start('haproxy', 'haproxy', ['-db', '-f', confPath], { cpus, logFile: join(dir, 'stdout.log') });
  await waitForPort(port, 10_000, proc);
  return { name: 'haproxy', port, proc, dir };
}

function nodeScript(file: string): string {
  return join(LIB_DIR, file);
}

/** A Node proxy peer run as a script of bench/lib: `node SCRIPT PORT HOST:PORT[,…]`. */
async function startNodeProxy(name: string, script: string, port: number, backends: readonly string[], cpus: string | undefined): Promise<Peer> {
  const dir = makeTempDir(name);
  const proc = start(name, process.execPath, [nodeScript(script), String(port), backends.join(',')], { cpus, logFile: join(dir, 'stdout.log') });
  await waitForPort(port, 10_000, proc);
  return { name, port, proc, dir };
}

export function startHttpProxy(port: number, backends: readonly string[], cpus: string | undefined): Promise<Peer> {
  return startNodeProxy('http-proxy', 'http-proxy-peer.js', port, backends, cpus);
}

/** The floor of a proxy on Node's `net`: a blind 1:1 byte pipe per client (bench/lib/net-floor-peer.ts). */
export function startNetFloor(port: number, backends: readonly string[], cpus: string | undefined): Promise<Peer> {
  return startNodeProxy('net-floor', 'net-floor-peer.js', port, backends, cpus);
}

export async function startAuxBackend(port: number, streamMiB: number, cpus: string | undefined): Promise<Peer> {
  const dir = makeTempDir('aux-backend');
  const proc = start('aux-backend', process.execPath, [nodeScript('aux-backend.js'), String(port), String(streamMiB)], {
    cpus,
    logFile: join(dir, 'stdout.log'),
  });
  await waitForPort(port, 10_000, proc);
  return { name: 'aux-backend', port, proc, dir };
}

export async function startNodeHello(port: number, cpus: string | undefined): Promise<Peer> {
  const dir = makeTempDir('node-hello');
  const proc = start('node-hello', process.execPath, [nodeScript('hello-http.js'), String(port)], {
    cpus,
    logFile: join(dir, 'stdout.log'),
  });
  await waitForPort(port, 10_000, proc);
  return { name: 'node-hello', port, proc, dir };
}

/**
 * How to start our router. BENCH_ROUTER=off disables it; BENCH_ROUTER="cmd arg…" overrides
 * (the bench appends `--listen 127.0.0.1:PORT --routes FILE`). Otherwise `bin/manifold router`
 * when bin/manifold lists the command, else bench/lib/router-launcher.js (the same command module,
 * src/cli/router-command.ts, run through yargs) when it is built.
 */
export function routerCommand(): { cmd: string; args: string[] } | null {
  const env = process.env.BENCH_ROUTER;
  if (env === 'off' || env === '0') return null;
  if (env && env !== 'auto') {
    const parts = env.split(/\s+/).filter(Boolean);
    return { cmd: parts[0] as string, args: parts.slice(1) };
  }
  const bin = join(REPO_ROOT, 'bin', 'manifold');
  if (existsSync(bin)) {
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 20_000 });
    if (/\brouter\b/.test(`${help.stdout ?? ''}${help.stderr ?? ''}`)) return { cmd: process.execPath, args: [bin, 'router'] };
  }
  const launcher = join(LIB_DIR, 'router-launcher.js');
  if (existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'router-command.js')) && existsSync(launcher)) {
    return { cmd: process.execPath, args: [launcher] };
  }
  return null;
}

/**
 * BENCH_ROUTER_BEFORE="cmd arg…" (e.g. `node /tmp/old/bin/manifold router`): another build of the
 * router measured in the same run as target `router-before`, for a before/after that the box's
 * drift between runs cannot blur.
 */
export function routerBeforeCommand(): { cmd: string; args: string[] } | null {
  const parts = (process.env.BENCH_ROUTER_BEFORE ?? '').split(/\s+/).filter(Boolean);
  return parts.length === 0 ? null : { cmd: parts[0] as string, args: parts.slice(1) };
}

export async function startRouter(port: number, backends: readonly string[], cpus: string | undefined, which: 'router' | 'router-before' = 'router'): Promise<Peer> {
  const cmd = which === 'router' ? routerCommand() : routerBeforeCommand();
  if (!cmd) throw new Error(which === 'router' ? 'router command not found (set BENCH_ROUTER)' : 'BENCH_ROUTER_BEFORE is not set');
  const dir = makeTempDir('router');
  const routes = {
    apps: {
      bench: {
        hosts: [BENCH_HOST],
        backends: backends.map((address, i) => ({ dyno: `web.${i + 1}`, address })),
      },
    },
  };
  const routesPath = join(dir, 'routes.json');
  writeFileSync(routesPath, JSON.stringify(routes, null, 2));
  const extra = (process.env.BENCH_ROUTER_ARGS ?? '').split(/\s+/).filter(Boolean);
  // One event loop, as nginx (worker_processes 1) and the other peers here: `manifold router` now
  // defaults to a worker per core (bench:router-workers compares 1 and 2).
  if (!extra.includes('--workers')) extra.push('--workers', '1');
  const proc = start(which, cmd.cmd, [...cmd.args, '--listen', `127.0.0.1:${port}`, '--routes', routesPath, ...extra], {
    cpus,
    logFile: process.env.BENCH_ROUTER_LOG === '1' ? join(dir, 'router.log') : undefined,
  });
  await waitForPort(port, 15_000, proc);
  return { name: which, port, proc, dir };
}

export type ProxyKind = 'router' | 'router-before' | 'nginx' | 'haproxy' | 'http-proxy' | 'net-floor';
export const ALL_PROXIES: readonly ProxyKind[] = ['router', 'router-before', 'nginx', 'haproxy', 'http-proxy', 'net-floor'];

export async function startProxy(kind: ProxyKind, backends: readonly string[], cpus: string | undefined): Promise<Peer> {
  const port = await freePort();
  switch (kind) {
    case 'router':
    case 'router-before':
      return startRouter(port, backends, cpus, kind);
    case 'nginx':
      return startNginxProxy(port, backends, cpus);
    case 'haproxy':
      return startHaproxy(port, backends, cpus);
    case 'http-proxy':
      return startHttpProxy(port, backends, cpus);
    case 'net-floor':
      return startNetFloor(port, backends, cpus);
  }
}
