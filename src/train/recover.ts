/** Recovery from a crashed or hung sidecar: restart it, restore the run's last checkpoint, carry on from there. */
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Config } from '../config/index.js';
import { GradpromError, isGradpromError } from '../errors.js';
import type { Logger } from '../sidecar/logger.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import type { Progress } from './progress.js';
import { RemoteSession } from './remote.js';
import type { MetricsLog, RunPaths } from './run-folder.js';
import type { StepLoop } from './step-loop.js';

export interface RecoveryOptions {
  sidecar: Sidecar;
  config: Config;
  paths: RunPaths;
  log: MetricsLog;
  /** Once aborted, a dead sidecar ends the run (exit 130) instead of being restarted. */
  signal?: AbortSignal;
  logger?: Logger;
  /** Where the restarted session reports its phases. */
  progress?: Progress;
}

/** True for a failure a fresh sidecar can cure: the process ended (crash, SIGKILL, heartbeat kill) or an op outlived its deadline. */
export function isRecoverable(e: unknown): boolean {
  return isGradpromError(e, 'SIDECAR_EXITED') || isGradpromError(e, 'SIDECAR_TIMEOUT');
}

/** Remove temporary files a save cut short left beside the checkpoint (`.last.pt.*.tmp`); returns their names. */
export function removeStaleTemps(checkpoint: string): string[] {
  const dir = dirname(checkpoint);
  const prefix = `.${basename(checkpoint)}.`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith(prefix) && n.endsWith('.tmp'));
  } catch {
    return [];
  }
  for (const n of names) rmSync(join(dir, n), { force: true });
  return names;
}

/**
 * Run `body` and, each time the sidecar dies or hangs under it, restart the sidecar, restore the last checkpoint into
 * `loop` (its restarts counted against its limit, `train.max_restarts`) and run `body` again.
 */
export async function withRecovery(opts: RecoveryOptions, loop: StepLoop, body: (loop: StepLoop) => Promise<void>): Promise<void> {
  const { checkpoint, dir } = opts.paths;
  let failure: unknown = null;
  for (;;) {
    try {
      if (failure !== null) {
        await opts.sidecar.restart();
        removeStaleTemps(checkpoint);
        const session = await RemoteSession.create(opts.sidecar, opts.config, undefined, opts.progress);
        const loaded = await session.load(checkpoint);
        loop.resume(session, loaded);
        opts.log.append({ type: 'resume', step: loaded.step, restart: loop.restarts, reason: firstLine(failure) });
        opts.logger?.warn(`sidecar restarted (${loop.restarts} of ${loop.maxRestarts}); resumed from ${checkpoint} at step ${loaded.step}`);
        failure = null;
      }
      await body(loop);
      return;
    } catch (e) {
      if (!isRecoverable(e)) throw e;
      const kept = `the last checkpoint ${checkpoint} is kept; continue with --resume ${dir}`;
      if (opts.signal?.aborted) {
        throw new GradpromError('INTERRUPTED', `interrupted, and the sidecar ended (${firstLine(e)}); ${kept}`, { cause: e });
      }
      if (!loop.countRestart()) {
        throw new GradpromError(
          'SIDECAR_DEAD',
          `the sidecar failed ${loop.restarts + 1} times, more than train.max_restarts = ${loop.maxRestarts} allows (last: ${firstLine(e)}); ${kept}`,
          { cause: e },
        );
      }
      opts.logger?.warn(`sidecar failed (${firstLine(e)}); restarting it (${loop.restarts} of ${loop.maxRestarts})`);
      failure = e;
    }
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}
