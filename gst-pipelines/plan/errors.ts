/**
 * Who is at fault when a session cannot be planned: `spec`, the join spec (the hub's
 * request is wrong: `bad_request`, `path` under the command's args); `box`, this box (the
 * request was fine, the box cannot do it: `failed`, e.g. no H.264 encoder).
 */
export type PlanErrorKind = 'spec' | 'box';

/**
 * The planner's one named error: what cannot be planned, whose fault, and the path of the
 * input at fault. The message leads with the path for the spec's faults (the reply adds
 * `args.`), and ends with it for the box's.
 */
export class PlanError extends Error {
  constructor(
    readonly kind: PlanErrorKind,
    readonly path: string,
    message: string,
  ) {
    super(kind === 'spec' ? `${path}: ${message}` : `${message} (${path})`);
    this.name = 'PlanError';
  }
}

export function isPlanError(e: unknown): e is PlanError {
  return e instanceof PlanError;
}
