/**
 * The one place where an error thrown while serving a request becomes what the client sees: a
 * stable code, an HTTP-like status and one line of text. Manifold errors pass as they are;
 * supervisor refusals keep their own meaning (an unknown app is ENOAPP, not "unknown dyno");
 * anything else is an internal error with its message.
 */
import { ManifoldError, type ManifoldErrorCode } from '../errors';
import { SupervisorError, type SupervisorErrorCode } from '../supervisor/errors';
import type { ErrorBody } from './protocol';

const SUPERVISOR_CODES: Record<SupervisorErrorCode, ManifoldErrorCode> = {
  NO_SUCH_APP: 'ENOAPP',
  NO_SUCH_DYNO: 'ENODYNO',
  NO_SUCH_TYPE: 'ENODYNO',
  NOT_DEPLOYED: 'ENORELEASE',
};

export function apiErrorOf(err: unknown): ManifoldError {
  if (err instanceof ManifoldError) return err;
  if (err instanceof SupervisorError) return new ManifoldError(SUPERVISOR_CODES[err.code], err.message);
  return new ManifoldError('EINTERNAL', err instanceof Error ? err.message : String(err));
}

/** The JSON body of an error answer. */
export function errorBody(err: ManifoldError): ErrorBody {
  return { error: { code: err.code, message: err.message } };
}
