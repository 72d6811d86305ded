/** Every error gradprom raises carries a literal `code`; tests assert the code, not the wording. */
export type ErrorCode =
  | 'CONFIG'
  | 'PYTHON_ENV'
  | 'PROTOCOL'
  | 'PROTOCOL_VERSION'
  | 'SIDECAR_START'
  | 'SIDECAR_ERROR'
  | 'SIDECAR_EXITED'
  | 'SIDECAR_RANK_EXITED'
  | 'SIDECAR_TIMEOUT'
  | 'SIDECAR_CANCELLED'
  | 'SIDECAR_DEAD'
  | 'SIDECAR_STOPPED'
  | 'RUN'
  | 'INTERRUPTED'
  | 'REGION'
  | 'STALE_VIEW';

/** The base of every gradprom error. */
export class GradpromError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `e` is a gradprom error, optionally of the given code. */
export function isGradpromError(e: unknown, code?: ErrorCode): e is GradpromError {
  return e instanceof GradpromError && (code === undefined || e.code === code);
}

/** A Python exception raised while serving an operation. */
export class SidecarError extends GradpromError {
  constructor(
    readonly op: string,
    readonly type: string,
    readonly detail: string,
    readonly traceback: string,
  ) {
    super('SIDECAR_ERROR', `sidecar op '${op}' failed: ${type}: ${detail}`);
  }
}

/** The sidecar process ended; carries its exit code or signal and its last stderr lines. */
export class SidecarExitedError extends GradpromError {
  constructor(
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stderrTail: string[],
    readonly op?: string,
  ) {
    const how = signal ? `signal ${signal}` : `exit code ${exitCode}`;
    const tail = stderrTail.length ? `\n--- last sidecar stderr ---\n${stderrTail.join('\n')}` : '';
    super('SIDECAR_EXITED', `sidecar exited (${how})${op ? ` during '${op}'` : ''}${tail}`);
  }
}

/** Failure details a rank of a distributed sidecar printed before exiting (its op raised). */
export interface RankOpFailure {
  op: string;
  type: string;
  message: string;
}

/**
 * One rank of a distributed sidecar ended, or failed an op; `rank` is null for a torchrun agent.
 * Its own code: a run stops on it (recovery restarts SIDECAR_EXITED only).
 */
export class RankExitedError extends SidecarExitedError {
  override readonly code = 'SIDECAR_RANK_EXITED' as const;
  constructor(
    readonly rank: number | null,
    readonly worldSize: number,
    exitCode: number | null,
    signal: string | null,
    stderrTail: string[],
    readonly failure?: RankOpFailure,
  ) {
    super(exitCode, signal, stderrTail);
    const how = signal ? `signal ${signal}` : `exit code ${exitCode}`;
    const who =
      rank === null ? `sidecar ranks of this machine (torchrun, ${worldSize} ranks in all)` : `sidecar rank ${rank} of ${worldSize}`;
    const what = failure ? `failed in '${failure.op}': ${failure.type}: ${failure.message.split('\n')[0]} (${how})` : `exited (${how})`;
    const tail = stderrTail.length
      ? `\n--- last stderr of ${rank === null ? 'torchrun' : `rank ${rank}`} ---\n${stderrTail.join('\n')}`
      : '';
    this.message = `${who} ${what}${tail}`;
  }
}

/** A request outlived its deadline. */
export class SidecarTimeoutError extends GradpromError {
  constructor(
    readonly op: string,
    readonly timeoutMs: number,
  ) {
    super('SIDECAR_TIMEOUT', `sidecar op '${op}' timed out after ${timeoutMs} ms`);
  }
}

/** A request was cancelled by its caller. */
export class SidecarCancelledError extends GradpromError {
  constructor(readonly op: string) {
    super('SIDECAR_CANCELLED', `sidecar op '${op}' was cancelled`);
  }
}

/** A message broke the framing or schema rules; `field` names where. */
export class ProtocolError extends GradpromError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('PROTOCOL', `${field}: ${message}`);
  }
}

/** The two sides speak different protocol versions. */
export class ProtocolVersionError extends GradpromError {
  constructor(message: string) {
    super('PROTOCOL_VERSION', message);
  }
}

/** The sidecar's Python environment is missing or incomplete. */
export class PythonEnvError extends GradpromError {
  constructor(message: string) {
    super('PYTHON_ENV', message);
  }
}
