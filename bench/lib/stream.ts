// Streaming throughput: curl downloads a chunked body through a proxy; the proxy's RSS is sampled.
import { spawn } from 'node:child_process';
import { rssBytes } from './procstat';

export interface StreamResult {
  bytes: number;
  seconds: number;
  mbPerSec: number; // 10^6 bytes per second
  peakRss: number; // proxy tree, bytes (0 if no pids)
  baseRss: number; // proxy tree RSS just before the download
}

export function runStream(opts: {
  url: string;
  host: string;
  cpus?: string | undefined;
  pids: readonly number[];
  timeoutMs: number;
  track?: (pid: number) => void;
}): Promise<StreamResult> {
  const args = ['-sS', '-o', '/dev/null', '-H', `Host: ${opts.host}`, '-w', '%{size_download} %{time_total}', opts.url];
  const cmd = opts.cpus ? 'taskset' : 'curl';
  const argv = opts.cpus ? ['-c', opts.cpus, 'curl', ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) opts.track?.(child.pid);
    let out = '';
    let err = '';
    const baseRss = opts.pids.length > 0 ? rssBytes(opts.pids) : 0;
    let peak = baseRss;
    const sample = setInterval(() => {
      if (opts.pids.length > 0) peak = Math.max(peak, rssBytes(opts.pids));
    }, 100);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', (e) => {
      clearInterval(sample);
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearInterval(sample);
      clearTimeout(timer);
      const [size, time] = out.trim().split(' ').map(Number);
      if (code !== 0 || !size || !time) {
        reject(new Error(`curl exited ${code}: ${err.trim()} ${out.trim()}`));
        return;
      }
      resolve({ bytes: size, seconds: time, mbPerSec: size / time / 1e6, peakRss: peak, baseRss });
    });
  });
}
