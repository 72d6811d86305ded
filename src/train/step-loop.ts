/** The training loop's side of the pipelined step: what is pending on the sidecar, the counts, the restarts. */
import { DEFAULTS, type Config } from '../config/index.js';
import { GradpromError } from '../errors.js';
import type { Decision } from '../policy/index.js';
import type { AdvanceReply, RemoteSession, StepGradsReply } from './remote.js';

/** What a checkpoint's `extra` carries of the loop (the sidecar's own part of the checkpoint holds the step and skip counts). */
export type LoopExtra = { consecutiveSkips: number };

/** Where a run stands: the sidecar's counts, and this side's run of skips. */
export interface LoopCounts {
  step: number;
  skipped: number;
  consecutiveSkips: number;
}

/** The restarts a run survives: `train.max_restarts`, its default when a config read back lacks it (never "no limit"). */
export function restartLimit(config: Config): number {
  return config.train.max_restarts ?? DEFAULTS.train.max_restarts;
}

/** The loop's counts in a loaded checkpoint: the sidecar's step and skip counts, and `extra.consecutiveSkips` (0 when absent). */
export function countsOf(loaded: { step: number; skipped: number; extra?: unknown }): LoopCounts {
  const extra = (typeof loaded.extra === 'object' && loaded.extra !== null ? loaded.extra : {}) as Partial<LoopExtra>;
  return { step: loaded.step, skipped: loaded.skipped, consecutiveSkips: extra.consecutiveSkips ?? 0 };
}

/**
 * The loop state of the pipelined exchange: step t's decision rides on the request for step t+1's gradients, so this
 * object holds those gradients between two requests.
 *
 * States:
 *
 *     idle     nothing is pending on the sidecar: the next request asks for gradients only
 *     pending  step t+1's gradients are here (`pending`), waiting for their decision
 *
 * Transitions:
 *
 *     idle     --gradients()-----------> pending   train.advance without a decision (the first step, or after a stop)
 *     pending  --send(decision, true)--> pending   the decision for t, the gradients of t+1
 *     pending  --send(decision, false)-> idle      before an evaluation, a checkpoint, the end or an interruption
 *     any      --resume(session, ckpt)-> idle      a fresh session restored from a checkpoint (after a counted restart)
 *
 * Counts: `step` and `skipped` are the sidecar's (it takes and skips the steps, and its checkpoints hold both), read
 * from every reply. `consecutiveSkips` is this side's (`train.max_skips` is the loop's rule) and travels in the
 * checkpoint's `extra`. `restarts` is this side's too, against `maxRestarts` (`train.max_restarts`): the run's limit.
 */
export class StepLoop {
  step: number;
  skipped: number;
  consecutiveSkips: number;
  /** Sidecar restarts this run has made. */
  restarts = 0;
  private grads: StepGradsReply | null = null;

  constructor(
    /** The session steps are sent to (replaced by `resume` after a restart). */
    public session: RemoteSession,
    readonly transport: 'gram' | 'vectors',
    start: LoopCounts,
    readonly maxRestarts: number,
  ) {
    ({ step: this.step, skipped: this.skipped, consecutiveSkips: this.consecutiveSkips } = start);
  }

  /** The gradients waiting for their decision (of step `step + 1`), or null when idle. */
  get pending(): StepGradsReply | null {
    return this.grads;
  }

  /** The pending gradients; when idle, asked for now (idle → pending). */
  async gradients(): Promise<StepGradsReply> {
    if (this.grads) return this.grads;
    const r = await this.session.advance(null, true, this.transport); // host-device sync: losses and Gram come back
    this.read(r);
    return this.grads!;
  }

  /** Send the pending step's decision and, with `more`, ask for the next step's gradients (pending → pending | idle). */
  async send(decision: Decision | 'skip', more: boolean): Promise<AdvanceReply> {
    if (!this.grads) throw new GradpromError('RUN', `step ${this.step + 1}: a decision with no gradients pending`);
    const r = await this.session.advance(decision, more, this.transport);
    this.consecutiveSkips = decision === 'skip' ? this.consecutiveSkips + 1 : 0;
    this.read(r);
    return r;
  }

  /** What a checkpoint written now carries in its `extra`. */
  extra(): LoopExtra {
    return { consecutiveSkips: this.consecutiveSkips };
  }

  /** Carry on with `session`, restored from a checkpoint (any state → idle). */
  resume(session: RemoteSession, loaded: { step: number; skipped: number; extra?: unknown }): void {
    this.session = session;
    this.grads = null;
    ({ step: this.step, skipped: this.skipped, consecutiveSkips: this.consecutiveSkips } = countsOf(loaded));
  }

  /** Count one more restart; false when the limit is already spent (the run must end). */
  countRestart(): boolean {
    if (this.restarts >= this.maxRestarts) return false;
    this.restarts++;
    return true;
  }

  private read(r: AdvanceReply): void {
    this.step = r.step;
    this.skipped = r.skipped;
    this.grads = r.next;
  }
}
