/** The planner's one named error: what cannot be planned, with the path of the input at fault. */
export class PlanError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'PlanError';
  }
}

export function isPlanError(e: unknown): e is PlanError {
  return e instanceof PlanError;
}
