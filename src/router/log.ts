/**
 * Heroku's router log line (docs/router.md#log-line):
 *   [sock=client|backend] at=info|warning|error [code=Hnn desc="…" [cause="…"] | cause="…" (retry notice)] method= path="…" host=
 *   request_id= fwd="…" dyno= connect=Nms service=Nms status= bytes= protocol=
 * Fields without a value print as a bare `key=`.
 */
import type { HCode, LogLevel } from './errors';

export interface RouterLogRecord {
  at: LogLevel;
  code: HCode | null;
  desc: string | null;
  cause: string | null;
  sock: 'client' | 'backend' | null;
  /** App the request was routed to, when known (not part of the line). */
  app: string | null;
  method: string;
  path: string;
  host: string;
  requestId: string;
  fwd: string;
  dyno: string;
  connectMs: number | null;
  serviceMs: number | null;
  status: number | null;
  bytes: number | null;
  protocol: string;
}

/**
 * A retry notice (a connect or an unanswered request abandoned and tried on another dyno): a warning
 * line of its own, but not a request; the request's own line follows. Statistics count only requests.
 */
export function isRetryNotice(r: Pick<RouterLogRecord, 'code' | 'cause'>): boolean {
  return r.code === null && r.cause !== null;
}

/** Backslash-escapes what would break a double-quoted value (a char scan: most values need nothing). */
function quote(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) return `"${value.replace(/["\\]/g, '\\$&')}"`;
  }
  return '"' + value + '"';
}

const ms = (v: number | null): string => (v === null ? '' : `${Math.max(0, Math.round(v))}ms`);
const num = (v: number | null): string => (v === null ? '' : String(v));

export function formatLogLine(r: RouterLogRecord): string {
  let line = r.sock !== null ? 'sock=' + r.sock + ' at=' + r.at : 'at=' + r.at;
  if (r.code !== null) {
    line += ' code=' + r.code + ' desc=' + quote(r.desc ?? '');
    if (r.cause !== null) line += ' cause=' + quote(r.cause);
  } else if (r.cause !== null) line += ' cause=' + quote(r.cause); // a retry notice: no H-code
  return (
    line +
    ' method=' +
    r.method +
    ' path=' +
    quote(r.path) +
    ' host=' +
    r.host +
    ' request_id=' +
    r.requestId +
    ' fwd=' +
    quote(r.fwd) +
    ' dyno=' +
    r.dyno +
    ' connect=' +
    ms(r.connectMs) +
    ' service=' +
    ms(r.serviceMs) +
    ' status=' +
    num(r.status) +
    ' bytes=' +
    num(r.bytes) +
    ' protocol=' +
    r.protocol
  );
}
