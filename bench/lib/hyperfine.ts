// Thin wrapper over `hyperfine -N --export-json`: runs a list of commands (optionally under a
// wrapper argv such as a private mount namespace) and returns each command's per-run times in ms.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface HyperfineCommand {
  /** Short key used in results. */
  key: string;
  /** The command line as hyperfine splits it (-N: no shell, whitespace-separated words). */
  command: string;
}

export interface HyperfineResult {
  key: string;
  command: string;
  /** Wall time of every measured run, milliseconds. */
  timesMs: number[];
  /** Exit codes hyperfine recorded (all 0 unless --ignore-failure was given). */
  exitCodes: number[];
}

interface HyperfineJson {
  results: { command: string; times?: number[]; exit_codes?: number[] }[];
}

function isHyperfineJson(x: unknown): x is HyperfineJson {
  return typeof x === 'object' && x !== null && Array.isArray((x as { results?: unknown }).results);
}

export interface HyperfineOptions {
  runs: number;
  warmup: number;
  jsonFile: string;
  /** argv prepended to `hyperfine ...` (e.g. the peers' mount namespace). */
  wrapper?: readonly string[];
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  onSpawn?: (pid: number) => void;
}

/** Runs hyperfine; rejects with its stderr if it fails (a failing command makes hyperfine fail). */
export function runHyperfine(commands: readonly HyperfineCommand[], opts: HyperfineOptions): Promise<HyperfineResult[]> {
  const hf = [
    'hyperfine', '-N', '--style', 'none', '--warmup', String(opts.warmup), '--runs', String(opts.runs),
    '--export-json', opts.jsonFile,
    ...commands.map((c) => c.command),
  ];
  const argv = [...(opts.wrapper ?? []), ...hf];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: opts.env ?? process.env, detached: true });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, opts.timeoutMs ?? 180_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`hyperfine exited with ${code ?? signal}: ${stderr.trim().split('\n').slice(-6).join(' | ')}`));
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(readFileSync(opts.jsonFile, 'utf8'));
      } catch (err) {
        reject(new Error(`cannot read ${opts.jsonFile}: ${(err as Error).message}`));
        return;
      }
      if (!isHyperfineJson(parsed) || parsed.results.length !== commands.length) {
        reject(new Error(`unexpected hyperfine JSON in ${opts.jsonFile}`));
        return;
      }
      resolve(
        commands.map((c, i) => {
          const r = parsed.results[i];
          return { key: c.key, command: c.command, timesMs: (r?.times ?? []).map((s) => s * 1000), exitCodes: r?.exit_codes ?? [] };
        }),
      );
    });
  });
}
