/** JSON shapes exchanged between the CLI and the daemon (POST /v1/<method>, body = params). */
import type { DynoStatus } from '../supervisor/supervisor';
import type { LogLine } from '../logs/log-buffer';

export interface AppInfo {
  name: string;
  url: string;
  createdAt: number;
  release: number;
  slug: string | null;
  formation: { type: string; quantity: number; size: string; command: string | null }[];
  settings: { stopGraceMs?: number; stopSignal?: string; bootTimeoutMs?: number };
  dynos: number;
}

export interface ReleaseInfo {
  version: number;
  description: string;
  createdAt: number;
  current: boolean;
  /** Releases made by `build`: slug size, build time, buildpacks used. */
  build?: { slugBytes: number; buildMs: number; buildpacks: string[] };
  /** Who made it (Release.by); absent on releases stored before authors were kept. */
  by?: string;
}

export interface PsResult {
  app: string;
  now: number;
  dynos: DynoStatus[];
  /** type → command and size for the `=== web (Standard-1X): \`cmd\`` headers. */
  types: Record<string, { command: string; size: string }>;
}

export interface ScaleResult {
  formation: { type: string; quantity: number; size: string }[];
}

export interface DaemonInfo {
  version: string;
  pid: number;
  stateDir: string;
  listen: string | null;
  domain: string;
  net: string;
  warning: string | null;
  /** The dashboard's address and the root-only file with its token (docs/dashboard.md); null when off. Absent from older daemons. */
  dashboard?: { url: string; tokenFile: string } | null;
}

/** The most log lines one `logs` request may ask for (-n). */
export const LOG_LINES_MAX = 1500;

export interface ErrorBody {
  error: { code: string; message: string };
}

export type { DynoStatus, LogLine };

/** Frames of an attached one-off session (after the HTTP upgrade): [type u8][length u32 BE][payload]. */
export const FRAME = {
  STDIN: 0,
  STDIN_EOF: 1,
  SIGNAL: 2,
  /** JSON {cols, rows}: the client's terminal was resized. */
  RESIZE: 3,
  STDOUT: 11,
  STDERR: 12,
  STARTED: 13,
  EXIT: 14,
  ERROR: 15,
} as const;

export function frame(type: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const head = Buffer.alloc(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Incremental frame decoder. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (type: number, payload: Buffer) => void) {}
  push(data: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) break;
      const type = this.buf.readUInt8(0);
      const payload = this.buf.subarray(5, 5 + len);
      this.buf = this.buf.subarray(5 + len);
      this.onFrame(type, payload);
    }
  }
}

/**
 * `build` (issue 14): builds a directory with buildpacks in a build dyno and releases the slug.
 * Called like `deploy` (POST /v1/build; with `progress: true` the answer streams NDJSON
 * `{progress: BuildProgress}` lines, then one `{result: BuildResult}` or `{error}` line).
 * `dir` is read by the daemon and never written (it is copied into the build).
 */
export const BUILD_METHOD = 'build';

export interface BuildParams {
  app: string;
  /** Absolute path of the source tree (e.g. an exported git tree). */
  dir: string;
  /** The source's version (e.g. a git commit), shown in the release description. */
  version?: string;
  /** The release description (default: `Build <version or slug id>`). */
  description?: string;
  /** Who asked for the build (e.g. the git pusher), for the log. */
  user?: string;
}

/** One line of build output: headings (`-----> ...`) included, no `remote:` prefix, no trailing newline. */
export interface BuildProgress {
  line: string;
}

export interface BuildResult extends ReleaseInfo {
  slugBytes: number;
  buildMs: number;
  /** The buildpacks used, in order (names for shipped/local ones, URL#commit for git ones). */
  buildpacks: string[];
  /** Time spent in the buildpacks' bin/compile (measured in the build dyno); an addition to the contract. */
  compileMs?: number;
}

/** Error codes a build may answer with (besides the general ones such as EINVAL). */
export const BUILD_ERROR_CODES = ['ENOAPP', 'EBUILDFAILED', 'ESLUGTOOBIG', 'EBUILDTIMEOUT', 'ERELEASEPHASE', 'EBUILDBUSY', 'EBUILDPACK'] as const;
export type BuildErrorCode = (typeof BUILD_ERROR_CODES)[number];
