/** Recovery from a crashed or hung sidecar: restart it, restore the run's last checkpoint, carry on from there. */
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DEFAULTS, type Config } from '../config/index.js';
import { GradpromError, isGradpromError } from '../errors.js';
import type { Logger } from '../sidecar/logger.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import type { Progress } from './progress.js';
import { RemoteSession } from './remote.js';
import type { MetricsLog, RunPaths } from './run-folder.js';

/** Where the training loop stands; checkpoints carry it in their `extra`. */
export interface ResumeState {
  step: number;
  skips: number;
  consecutiveSkips: number;
}

export interface RecoveryOptions {
  sidecar: Sidecar;
  config: Config;
  paths: RunPaths;
  log: MetricsLog;
  /** Restarts allowed over the run; default `config.train.max_restarts`. */
  maxRestarts?: number;
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

/** The loop state saved in a checkpoint's `extra` (missing fields count as zero). */
export function resumeStateOf(loaded: { step: number; extra?: unknown }): ResumeState {
  const extra = (typeof loaded.extra === 'object' && loaded.extra !== null ? loaded.extra : {}) as Partial<ResumeState>;
  return { step: loaded.step, skips: extra.skips ?? 0, consecutiveSkips: extra.consecutiveSkips ?? 0 };
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
 * Run `body` and, each time the sidecar dies or hangs under it, restart the sidecar, restore the last checkpoint
 * into `state` and run `body` again; resolves with the session in use at the end.
 */
export async function withRecovery(
  opts: RecoveryOptions,
  session: RemoteSession,
  state: ResumeState,
  body: (session: RemoteSession, state: ResumeState) => Promise<void>,
): Promise<RemoteSession> {
  // A config not built by the schema (a plain object from an untyped caller) may lack the field: the default, never "no limit".
  const limit = opts.maxRestarts ?? opts.config.train.max_restarts ?? DEFAULTS.train.max_restarts;
  const { checkpoint, dir } = opts.paths;
  let restarts = 0;
  let failure: unknown = null;
  for (;;) {
    try {
      if (failure !== null) {
        await opts.sidecar.restart();
        removeStaleTemps(checkpoint);
        session = await RemoteSession.create(opts.sidecar, opts.config, undefined, opts.progress);
        const loaded = await session.load(checkpoint);
        Object.assign(state, resumeStateOf(loaded));
        opts.log.append({ type: 'resume', step: loaded.step, restart: restarts, reason: firstLine(failure) });
        opts.logger?.warn(`sidecar restarted (${restarts} of ${limit}); resumed from ${checkpoint} at step ${loaded.step}`);
        failure = null;
      }
      await body(session, state);
      return session;
    } catch (e) {
      if (!isRecoverable(e)) throw e;
      const kept = `the last checkpoint ${checkpoint} is kept; continue with --resume ${dir}`;
      if (opts.signal?.aborted) {
        throw new GradpromError('INTERRUPTED', `interrupted, and the sidecar ended (${firstLine(e)}); ${kept}`, { cause: e });
      }
      if (restarts >= limit) {
        throw new GradpromError(
          'SIDECAR_DEAD',
          `the sidecar failed ${restarts + 1} times, more than train.max_restarts = ${limit} allows (last: ${firstLine(e)}); ${kept}`,
          { cause: e },
        );
      }
      restarts++;
      opts.logger?.warn(`sidecar failed (${firstLine(e)}); restarting it (${restarts} of ${limit})`);
      failure = e;
    }
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}
