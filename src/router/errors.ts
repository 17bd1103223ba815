/**
 * Heroku router error codes as data (docs/router.md#h-codes). The connection layer only ever names a
 * code; status, log level, description and page come from this table.
 */

export type HCode =
  | 'H10' | 'H11' | 'H12' | 'H13' | 'H14' | 'H15' | 'H17' | 'H18' | 'H19' | 'H20'
  | 'H21' | 'H25' | 'H26' | 'H27' | 'H28' | 'H80' | 'H99';

export type LogLevel = 'info' | 'warning' | 'error';

export type ErrorPage = 'application-error' | 'maintenance' | 'no-such-app' | 'bad-request';

export interface HCodeInfo {
  readonly desc: string;
  readonly at: LogLevel;
  /** Status sent to the client (and logged). H26's status depends on the cause; this is the default. */
  readonly status: number;
  /** `sock=` prefix on the log line, where Heroku prints one. */
  readonly sock: 'client' | 'backend' | null;
  readonly page: ErrorPage;
}

const appError = (desc: string, sock: 'client' | 'backend' | null = null): HCodeInfo => ({ desc, at: 'error', status: 503, sock, page: 'application-error' });

export const H_CODES: Readonly<Record<HCode, HCodeInfo>> = {
  H10: appError('App crashed'),
  H11: appError('Backlog too deep'),
  H12: appError('Request timeout'),
  H13: appError('Connection closed without response'),
  H14: appError('No web processes running'),
  H15: appError('Idle connection'),
  H17: appError('Poorly formatted HTTP response'),
  H18: appError('Server Request Interrupted', 'backend'),
  H19: appError('Backend connection timeout'),
  H20: appError('App boot timeout'),
  H21: appError('Backend connection refused'),
  H25: { desc: 'HTTP restriction', at: 'error', status: 502, sock: null, page: 'application-error' },
  H26: { desc: 'Request Error', at: 'error', status: 400, sock: null, page: 'bad-request' },
  H27: { desc: 'Client Request Interrupted', at: 'warning', status: 499, sock: 'client', page: 'application-error' },
  H28: { desc: 'Client Connection Idle', at: 'warning', status: 499, sock: 'client', page: 'application-error' },
  H80: { desc: 'Maintenance mode', at: 'info', status: 503, sock: null, page: 'maintenance' },
  H99: appError('Platform error'),
};

/** Typed error for router-internal failures that callers may want to tell apart (config, routes). */
export class RouterError extends Error {
  constructor(
    readonly code: 'EROUTES' | 'ECONFIG' | 'ELISTEN',
    message: string,
  ) {
    super(message);
    this.name = 'RouterError';
  }
}
