/**
 * What a dyno is made of. The runtime knows nothing of apps, releases or HTTP: the manifold turns
 * its formation into DynoSpecs. Fields for later capabilities (resources, bridge networking) are
 * part of the type so they slot in without changing callers.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseBytes } from './sizes';

export type StackSpec = 'host' | string;

export interface NetworkNone {
  mode: 'none';
}
export interface NetworkBridge {
  mode: 'bridge';
  bridge?: string;
  address?: string;
}
export type NetworkSpec = NetworkNone | NetworkBridge;

export interface ResourceSpec {
  /** memory.max in bytes: the kernel OOM-kills above it (R15). */
  memoryMax?: number;
  /** memory.high in bytes (throttling point); the quota for R14 is reported separately. */
  memoryHigh?: number;
  /** R14 quota in bytes: above it the runtime reports a 'quota' event (it never kills). */
  memoryQuota?: number;
  memorySwapMax?: number;
  pidsMax?: number;
  cpuWeight?: number;
  /** cpu.max as "quota period" in microseconds, e.g. "50000 100000". */
  cpuMax?: string;
}

export interface StdioSpec {
  /** File descriptors in this process; they are dup'ed into the dyno as 0, 1 and 2. */
  stdin: number;
  stdout: number;
  stderr: number;
}

export interface DynoSpec {
  /** Dyno name as Heroku shows it: web.1, worker.2, run.4821. Becomes $DYNO. */
  name: string;
  /** Either a command line for the shell (Procfile style) or an argv vector run directly. */
  command: { shell: string } | { argv: string[] };
  /** Host directory mounted (copy-on-write) at /app. */
  appDir: string;
  /** Read-only root: 'host' (a view of the host's /usr and a filtered /etc) or a root filesystem directory. */
  stack?: StackSpec;
  /** Config vars, before PORT, DYNO, HOME and PATH are added. */
  env?: Record<string, string>;
  port?: number;
  hostname?: string;
  user?: { uid: number; gid: number };
  net?: NetworkSpec;
  resources?: ResourceSpec;
  stdio?: Partial<StdioSpec>;
  /**
   * Size of the writable layer (tmpfs, charged to the dyno's memory), e.g. "256m"; default: the
   * memory quota, at most memory.max (sizes.ts scratchBytesFor). The runtime may grant less when
   * its budget for all dynos is short (scratch.ts).
   */
  scratchSize?: string;
  /** SIGKILL the dyno when the supervising process dies (default true). */
  dieWithParent?: boolean;
}

export const DEFAULT_USER = { uid: 10001, gid: 10001 } as const;
export const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
export const DEFAULT_NOFILE = 10000;

export class DynoSpecError extends Error {
  readonly code = 'EINVALIDSPEC';
  constructor(message: string) {
    super(message);
    this.name = 'DynoSpecError';
  }
}

const DYNO_NAME = /^[A-Za-z0-9_-]+\.[0-9]+$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Checks a spec before anything touches the kernel; throws DynoSpecError naming the problem. */
export function validateSpec(spec: DynoSpec): void {
  if (!DYNO_NAME.test(spec.name)) throw new DynoSpecError(`invalid dyno name '${spec.name}' (expected TYPE.N, e.g. web.1)`);
  if ('argv' in spec.command) {
    if (spec.command.argv.length === 0 || spec.command.argv[0] === '') throw new DynoSpecError('empty command');
  } else if (spec.command.shell.trim() === '') {
    throw new DynoSpecError('empty command');
  }
  for (const s of commandStrings(spec)) {
    if (s.includes('\0')) throw new DynoSpecError('command contains a NUL byte');
  }
  if (!path.isAbsolute(spec.appDir)) throw new DynoSpecError(`app directory must be an absolute path: ${spec.appDir}`);
  if (!existsSync(spec.appDir) || !statSync(spec.appDir).isDirectory()) {
    throw new DynoSpecError(`app directory does not exist: ${spec.appDir}`);
  }
  const stack = spec.stack ?? 'host';
  if (stack !== 'host') {
    if (!path.isAbsolute(stack) || !existsSync(stack) || !statSync(stack).isDirectory()) {
      throw new DynoSpecError(`stack directory does not exist: ${stack}`);
    }
  }
  for (const p of [spec.appDir, stack]) {
    if (/[,:\0\n]/.test(p)) throw new DynoSpecError(`path may not contain ',', ':' or newlines (overlayfs options): ${p}`);
  }
  if (spec.hostname !== undefined && !HOSTNAME.test(spec.hostname)) throw new DynoSpecError(`invalid hostname '${spec.hostname}'`);
  const user = spec.user ?? DEFAULT_USER;
  for (const [k, v] of Object.entries(user)) {
    if (!Number.isInteger(v) || v <= 0 || v > 0xfffffffe) throw new DynoSpecError(`${k} must be a positive integer (never 0): ${v}`);
  }
  for (const [k, v] of Object.entries(spec.env ?? {})) {
    if (!ENV_KEY.test(k)) throw new DynoSpecError(`invalid environment variable name '${k}'`);
    if (v.includes('\0')) throw new DynoSpecError(`environment variable ${k} contains a NUL byte`);
  }
  if (spec.port !== undefined && (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535)) {
    throw new DynoSpecError(`invalid port ${spec.port}`);
  }
  if (spec.net !== undefined && spec.net.mode !== 'none' && spec.net.mode !== 'bridge') {
    throw new DynoSpecError(`unsupported network mode '${(spec.net as { mode: string }).mode}' (none or bridge)`);
  }
  validateResources(spec.resources ?? {});
  // tmpfs reads size=0 as "no limit": anything under a MiB is refused, not passed on
  if (spec.scratchSize !== undefined && (!/^[0-9]+[kmg]?$/.test(spec.scratchSize) || parseBytes(spec.scratchSize) < 1024 * 1024)) {
    throw new DynoSpecError(`invalid scratch size '${spec.scratchSize}' (at least 1m)`);
  }
}

function validateResources(r: ResourceSpec): void {
  for (const key of ['memoryMax', 'memoryHigh', 'memoryQuota', 'memorySwapMax', 'pidsMax'] as const) {
    const v = r[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < (key === 'memorySwapMax' ? 0 : 1))) throw new DynoSpecError(`${key} must be a positive integer: ${v}`);
  }
  if (r.cpuWeight !== undefined && (!Number.isInteger(r.cpuWeight) || r.cpuWeight < 1 || r.cpuWeight > 10000)) {
    throw new DynoSpecError(`cpuWeight must be 1..10000: ${r.cpuWeight}`);
  }
  if (r.cpuMax !== undefined && !/^([0-9]+|max) [0-9]+$/.test(r.cpuMax)) throw new DynoSpecError(`cpuMax must be "QUOTA PERIOD": ${r.cpuMax}`);
}

function commandStrings(spec: DynoSpec): string[] {
  return 'argv' in spec.command ? spec.command.argv : [spec.command.shell];
}

/** Heroku's start order: config vars, then PORT, DYNO, HOME and PATH (a config var PATH wins). */
export function dynoEnvironment(spec: DynoSpec): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH, ...(spec.env ?? {}) };
  if (spec.port !== undefined) env.PORT = String(spec.port);
  env.DYNO = spec.name;
  env.HOME = '/app';
  return env;
}

export interface EncodeContext {
  stackDir: string;
  binds: { source: string; target: string }[];
  scratchDir: string;
  /** Size of the dyno's writable layer in bytes, as granted by the runtime's budget. */
  scratchBytes: number;
  /** Bridge mode: the leased address and host veth name. */
  lease?: { address: string; prefixLen: number; gateway: string; veth: string; vethIndex: number; bridgeIndex: number };
}

/** The config message dyno-init reads: NUL-terminated key=value records (native/common/protocol.h). */
export function encodeConfig(spec: DynoSpec, ctx: EncodeContext): Buffer {
  const user = spec.user ?? DEFAULT_USER;
  const records: string[] = [
    `shell=${'shell' in spec.command ? 1 : 0}`,
    `hostname=${spec.hostname ?? spec.name}`,
    `stack=${ctx.stackDir}`,
    `app=${spec.appDir}`,
    `scratch=${ctx.scratchDir}`,
    `scratch_size=${ctx.scratchBytes}`,
    `uid=${user.uid}`,
    `gid=${user.gid}`,
    `nofile=${DEFAULT_NOFILE}`,
    `die_with_parent=${spec.dieWithParent === false ? 0 : 1}`,
    `net=${spec.net?.mode ?? 'none'}`,
  ];
  if (ctx.lease) {
    const l = ctx.lease;
    records.push(`veth=${l.veth}`, `veth_ifindex=${l.vethIndex}`, `address=${l.address}/${l.prefixLen}`, `gateway=${l.gateway}`, `bridge_ifindex=${l.bridgeIndex}`);
  }
  for (const b of ctx.binds) records.push(`bind=${b.source}:${b.target}`);
  for (const a of commandStrings(spec)) records.push(`arg=${a}`);
  for (const [k, v] of Object.entries(dynoEnvironment(spec))) records.push(`env=${k}=${v}`);
  return Buffer.from(records.join('\0') + '\0');
}
