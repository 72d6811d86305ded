/** Documented exit codes of the `gradprom` command. */
import { isGradpromError } from '../errors.js';

export const EXIT = {
  ok: 0,
  failed: 1, //     the run or the sidecar failed
  usage: 2, //      bad flags or config (reported before any work starts)
  config: 2,
  pythonEnv: 3, //  no usable Python/torch
  interrupted: 130, // Ctrl-C / SIGTERM: a checkpoint was written
} as const;

/** The exit code for an error that ended a command. */
export function exitCodeOf(e: unknown): number {
  if (isGradpromError(e, 'CONFIG')) return EXIT.config;
  if (isGradpromError(e, 'PYTHON_ENV')) return EXIT.pythonEnv;
  if (isGradpromError(e, 'INTERRUPTED')) return EXIT.interrupted;
  return EXIT.failed;
}
