/** Errors the manifold reports to API clients: a stable code, an HTTP-like status and one line of text. */
export type ManifoldErrorCode =
  | 'ENOAPP' // unknown app
  | 'EEXIST' // app already exists
  | 'EINVAL' // bad input (name, key, syntax)
  | 'ENORELEASE' // unknown release / nothing deployed
  | 'ENODYNO' // unknown dyno or type
  | 'ECONFIRM' // destructive command without the right --confirm
  | 'EPROCFILE'
  | 'ESCALE'
  | 'EDEPLOY'
  | 'ENOHOST' // cluster: unknown host id
  | 'ECLUSTER' // cluster: refused (not in cluster mode, last host of a type, no agent for a one-off)
  | 'EBUILDFAILED' // build: detect or compile failed
  | 'ESLUGTOOBIG' // build: slug over the size limit
  | 'EBUILDTIMEOUT' // build: over the time limit
  | 'ERELEASEPHASE' // build: the release phase failed or timed out
  | 'EBUILDBUSY' // build: another build of the app did not finish in time
  | 'EBUILDPACK' // build: malformed or unusable buildpack
  | 'EINTERNAL';

const STATUS: Record<ManifoldErrorCode, number> = {
  ENOAPP: 404,
  EEXIST: 409,
  EINVAL: 400,
  ENORELEASE: 404,
  ENODYNO: 404,
  ECONFIRM: 400,
  EPROCFILE: 422,
  ESCALE: 422,
  EDEPLOY: 422,
  ENOHOST: 404,
  ECLUSTER: 409,
  EBUILDFAILED: 422,
  ESLUGTOOBIG: 413,
  EBUILDTIMEOUT: 408,
  ERELEASEPHASE: 422,
  EBUILDBUSY: 409,
  EBUILDPACK: 422,
  EINTERNAL: 500,
};

export class ManifoldError extends Error {
  readonly status: number;
  constructor(readonly code: ManifoldErrorCode, message: string) {
    super(message);
    this.name = 'ManifoldError';
    this.status = STATUS[code];
  }
}
