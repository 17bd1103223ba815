// Run wrk (4.x) and parse its `--latency` report.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WrkResult {
  requests: number;
  seconds: number;
  reqPerSec: number;
  latencyAvgMs: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  socketErrors: number;
  non2xx: number;
  bytesRead: number;
  raw: string;
}

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  seconds: number;
  headers?: readonly string[];
  /** Pin wrk to this CPU list (taskset -c). */
  cpus?: string | undefined;
  /** Path of a Lua script (-s). */
  script?: string | undefined;
  /** Hard kill after this many ms (wrk's own -d plus slack). */
  killAfterMs?: number;
  /** Register the child so a global cleanup can kill it. */
  track?: (pid: number) => void;
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

export function parseTimeMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * (TIME_UNITS[m[2] as string] as number);
}

function parseSize(text: string): number {
  const m = /^([\d.]+)([KMGT]?B)$/.exec(text.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * (SIZE_UNITS[m[2] as string] as number);
}

export function parseWrk(out: string): WrkResult {
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? parseTimeMs(m[1] as string) : Number.NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+[KMGT]?B) read/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const lat = /^\s*Latency\s+(\S+)/m.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const requests = total ? Number(total[1]) : 0;
  return {
    requests,
    seconds: total ? parseTimeMs(`${total[2]}${total[3]}`) / 1000 : Number.NaN,
    reqPerSec: rps ? Number(rps[1]) : Number.NaN,
    latencyAvgMs: lat ? parseTimeMs(lat[1] as string) : Number.NaN,
    p50Ms: pct('50'),
    p75Ms: pct('75'),
    p90Ms: pct('90'),
    p99Ms: pct('99'),
    socketErrors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    bytesRead: total ? parseSize(total[4] as string) : Number.NaN,
    raw: out,
  };
}

export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${opts.threads}`,
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--latency',
    '--timeout',
    '5s',
  ];
  for (const h of opts.headers ?? []) args.push('-H', h);
  if (opts.script) args.push('-s', opts.script);
  args.push(opts.url);
  const cmd = opts.cpus ? 'taskset' : 'wrk';
  const argv = opts.cpus ? ['-c', opts.cpus, 'wrk', ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) opts.track?.(child.pid);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? opts.seconds * 1000 + 15_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 || !/Requests\/sec/.test(out)) {
        reject(new Error(`wrk exited ${code}: ${err.trim()} ${out.trim()}`));
        return;
      }
      resolve(parseWrk(out));
    });
  });
}

/**
 * A wrk Lua script that waits a random think time (exponential, mean `meanDelayMs`, whole ms as
 * wrk's delay() wants) before each request on a connection, so connections do not fire in
 * lock-step bursts. With C connections the offered rate is about C * 1000 / (mean + latency).
 */
export function writePacedScript(dir: string, meanDelayMs: number): string {
  const path = join(dir, `paced-${meanDelayMs}.lua`);
  writeFileSync(
    path,
    `local mean = ${meanDelayMs}
function init(args)
  local addr = tostring({}):match("0x(%x+)") or "1"
  math.randomseed((tonumber(addr, 16) or 1) % 2147483647 + math.floor(os.clock() * 1e6))
end
function delay()
  return math.floor(-math.log(1 - math.random()) * mean + 0.5)
end
`,
  );
  return path;
}
