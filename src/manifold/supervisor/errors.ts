/**
 * What the supervisor refuses, as a code the API layer maps to a client error
 * (src/manifold/api/errors.ts): the caller never has to guess from the message.
 */
export type SupervisorErrorCode =
  /** The supervisor does not know the app (not loaded, or being removed). */
  | 'NO_SUCH_APP'
  /** A dyno name (web.3, run.7) that is not running in the app. */
  | 'NO_SUCH_DYNO'
  /** A process type with no dyno in the app's formation. */
  | 'NO_SUCH_TYPE'
  /** The app has no release with code, so there is nothing to run. */
  | 'NOT_DEPLOYED';

export class SupervisorError extends Error {
  constructor(readonly code: SupervisorErrorCode, message: string) {
    super(message);
    this.name = 'SupervisorError';
  }
}
