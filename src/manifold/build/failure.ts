/**
 * The error a failed build or release phase throws. Its own class (not a bare ManifoldError) so
 * that Builder.build knows whether the reason is already in the output (a buildpack's own ` !`
 * line, `told`) and must not be said twice.
 */
import { ManifoldError } from '../errors';

/** A build that failed; `told`: its reason is already in the output (a buildpack's own ` !` line). */
export class BuildFailure extends ManifoldError {
  told = false;
}
