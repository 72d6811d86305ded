/** The training loop: one train.advance per step (apply step t's decision, get step t+1's gradients), with evaluation, checkpoints and a run folder. */
import { basename, join } from 'node:path';
import { loadConfig, type Config } from '../config/index.js';
import { GradpromError } from '../errors.js';
import { makePolicy, policies, type Decision, type Policy, type PolicyKind } from '../policy/index.js';
import { PER_IMAGE_FILE, perImageJson, readRecords, writeRunReport, type RunSummary } from '../report/index.js';
import type { EvalRecord, StepRecord } from '../report/records.js';
import { distributedOptions } from '../sidecar/ranks.js';
import { Sidecar } from '../sidecar/sidecar.js';
import type { Logger } from '../sidecar/logger.js';
import { ipDescent } from './descent.js';
import { noProgress, type Progress } from './progress.js';
import { removeStaleTemps, withRecovery } from './recover.js';
import { RemoteSession, type AdvanceReply, type StepGradsReply } from './remote.js';
import { MetricsLog, prepareRunFolder, writeAtomic, type RunPaths } from './run-folder.js';
import { countsOf, restartLimit, StepLoop, type LoopCounts } from './step-loop.js';
import { TensorBoardWriter, type RecordSink } from './tensorboard.js';

export interface RunOptions {
  /** The run folder; default `<output.dir>/<output.name or a name from policy, λ and seed>`. */
  runDir?: string;
  /** Continue the run in `runDir` from its last checkpoint. */
  resume?: boolean;
  /** Replace what `runDir` holds (it is renamed aside, not deleted). */
  force?: boolean;
  /** A sidecar to reuse; otherwise one is started and stopped here. */
  sidecar?: Sidecar;
  /** A user-defined policy (from definePolicy), bound to `config.policy`'s λ, λ mode, τ and granularity, instead of the one it names. */
  policy?: PolicyKind;
  /** Start at step 0 from this checkpoint (a shared pretrained start) instead of pretraining. */
  startFrom?: string;
  /** After pretraining, save the starting state here (for `startFrom` in sibling runs). */
  savePretrain?: string;
  progress?: Progress;
  logger?: Logger;
  /** Each step's record (losses, cosine, gate, norms, descent, time), as it is logged; skipped steps too. */
  onStep?: (record: StepRecord) => void;
  /** Each evaluation (val during training, test at the end), as it is logged. */
  onEval?: (record: EvalRecord) => void;
  /** Stops the run after the current step; a checkpoint is written first. */
  signal?: AbortSignal;
}

export interface RunResult {
  runDir: string;
  summary: RunSummary;
}

/** The resolved config a run folder holds, checked by the same schema as any config (it may have been edited or damaged). */
async function savedConfig(file: string): Promise<Config> {
  const r = await loadConfig(file);
  if (r.ok) return r.config;
  // A file-level issue (unreadable, not JSON) already names the file.
  const issues = r.issues.map((i) => (i.path ? `${file}: ${i.path}: ${i.message}` : i.message)).join('; ');
  throw new GradpromError('CONFIG', `cannot resume: ${issues}`);
}

/** The folder name for a run without `output.name`. */
export function defaultRunName(config: Config): string {
  const p = config.policy;
  const lam = policies[p.name].usesVr ? `-l${p.lambda}${p.lambda_mode === 'normalized' ? 'n' : ''}` : '';
  const rate = p.open_rate != null ? `-p${p.open_rate}` : ''; // controls at two open rates get two folders
  return `${p.name}${lam}${rate}-s${config.seed}`;
}

/** Train one configuration end to end and write its report; resolves with the run's summary. */
export async function runExperiment(config: Config, options: RunOptions = {}): Promise<RunResult> {
  const runDir = options.runDir ?? `${config.output.dir}/${config.output.name ?? defaultRunName(config)}`;
  const paths = prepareRunFolder(runDir, options.resume ? 'resume' : options.force ? 'force' : 'new');
  // The ranks are how this invocation runs, not part of the experiment: a run resumes on any number of them.
  if (options.resume) config = { ...(await savedConfig(paths.config)), distributed: config.distributed };
  else writeAtomic(paths.config, `${JSON.stringify(config, null, 2)}\n`);
  const policy = makePolicy(config.policy, options.policy);
  const transport = policy.input === 'vectors' ? 'vectors' : config.train.grad_exchange;
  const started = Date.now();
  const distributed = distributedOptions(config.distributed);
  // The run counts its restarts against train.max_restarts (StepLoop); the sidecar it starts keeps no second limit.
  const sidecar =
    options.sidecar ??
    (await Sidecar.start({
      device: config.device,
      maxRestarts: Infinity,
      distributed,
      ...(options.logger ? { logger: options.logger } : {}),
    }));
  // TensorBoard: every record the loop logs also goes to the event files, so a run can be watched while it trains.
  const tb = config.train.tensorboard
    ? TensorBoardWriter.start(paths.tensorboard, { ...(options.logger ? { logger: options.logger } : {}) })
    : undefined;
  tb?.write({ type: 'config', config });
  try {
    if (options.resume) removeStaleTemps(paths.checkpoint);
    const log = new MetricsLog(paths.metrics, withCallbacks(tb, options));
    const first = await RemoteSession.create(sidecar, config, undefined, options.progress);
    const loop = new StepLoop(first, transport, await startCounts(first, config, paths, log, options), restartLimit(config));
    // A step-0 checkpoint: a sidecar lost before the first periodic one does not cost the pretraining.
    if (!options.resume) await first.save(paths.checkpoint, loop.extra());
    const { signal, logger, progress } = options;
    await withRecovery({ sidecar, config, paths, log, signal, logger, progress }, loop, async () => {
      await trainLoop(loop, config, policy, paths, log, options);
      // The per-image values go beside metrics.jsonl: comparisons bootstrap over test images from them.
      const { metrics: final, images } = await loop.session.evaluateImages('test', config.eval.limit);
      writeAtomic(join(paths.dir, PER_IMAGE_FILE), perImageJson('test', loop.step, images));
      log.append({ type: 'eval', step: loop.step, split: 'test', ...final });
      await loop.session.save(paths.checkpoint, loop.extra());
    });
    const summary = await writeRunReport(
      paths.dir,
      {
        runDir: paths.dir,
        name: basename(paths.dir),
        policy: policy.name,
        usesVr: policy.usesVr,
        lambda: config.policy.lambda,
        lambdaMode: config.policy.lambda_mode,
        seed: config.seed,
        steps: config.train.steps,
        task: config.vr.task,
        wallSeconds: (Date.now() - started) / 1000,
        config,
      },
      await readRecords(paths.metrics),
      { plots: config.output.plots },
    );
    return { runDir: paths.dir, summary };
  } finally {
    await tb?.close();
    if (!options.sidecar) await sidecar.stop();
  }
}

/** The sink every logged record goes to: TensorBoard (when on) and the caller's onStep / onEval. */
function withCallbacks(tb: RecordSink | undefined, options: RunOptions): RecordSink | undefined {
  const { onStep, onEval } = options;
  if (!onStep && !onEval) return tb;
  return {
    write(record) {
      tb?.write(record);
      if (record.type === 'step') onStep?.(record as unknown as StepRecord);
      else if (record.type === 'eval') onEval?.(record as unknown as EvalRecord);
    },
    close: async () => tb?.close(),
  };
}

/** Pretrain (or load a shared start, or resume) and take the step-0 evaluation; where the loop starts. */
async function startCounts(
  session: RemoteSession,
  config: Config,
  paths: RunPaths,
  log: MetricsLog,
  options: RunOptions,
): Promise<LoopCounts> {
  if (options.resume) {
    const loaded = await session.load(paths.checkpoint);
    log.append({ type: 'resume', step: loaded.step });
    return countsOf(loaded);
  }
  if (options.startFrom) {
    const start = await session.load(options.startFrom);
    const pre = (start.extra as { pretrain?: unknown } | null)?.pretrain; // a shared start carries its pre-training result
    if (pre && typeof pre === 'object') log.append({ type: 'pretrain', ...pre });
  } else {
    const pre = await session.pretrain(config.vr.pretrain_steps);
    log.append({ type: 'pretrain', ...pre });
    if (options.savePretrain) await session.save(options.savePretrain, { pretrain: pre });
  }
  log.append({ type: 'eval', step: 0, split: 'val', ...(await session.evaluate('val', config.eval.limit)) });
  return { step: 0, skipped: 0, consecutiveSkips: 0 };
}

/** Why a non-finite step was skipped; in fp16 that is mostly an overflow of the scaled gradients (the sidecar halves the loss scale). */
function skipReason(precision: Config['train']['precision']): string {
  return precision === 'fp16' ? 'loss or gradient not finite (fp16 overflow: the loss scale backs off)' : 'loss or gradient not finite';
}

/** True when step `n` ends with an evaluation or a checkpoint, or is the last: nothing may be pending after it. */
function isBoundary(n: number, train: Config['train']): boolean {
  const due = (every: number) => every > 0 && n % every === 0;
  return n >= train.steps || due(train.eval_every) || due(train.checkpoint_every);
}

/** A step's line of metrics.jsonl: the one place the loop's names become the record's. */
function stepRecord(
  g: StepGradsReply,
  t: Decision['telemetry'],
  applied: AdvanceReply | null,
  planned: number,
  reason: string | undefined,
  stepMs: number,
  step: number,
): Record<string, unknown> {
  return {
    type: 'step',
    step,
    loss_ip: g.lossIp,
    loss_vr: g.lossVr,
    cos: t.cos,
    gate: t.gate,
    gate_rate: t.gateRate,
    ip_norm: t.ipNorm,
    vr_norm: t.vrNorm,
    lambda_eff: t.lambdaEff,
    // The Lemma's descent property: cos(g_IP, g) planned, cos(−g_IP, Δθ) taken (a skip takes none).
    ...(applied
      ? { lr_ip: applied.lrIp, lr_vr: applied.lrVr, ip_descent: planned, ip_descent_actual: applied.ipDescentActual }
      : { lr_ip: 0, lr_vr: 0 }),
    skipped: applied === null,
    ...(reason !== undefined ? { reason } : {}),
    time_ms: stepMs,
  };
}

/**
 * The steps, one `train.advance` round trip each (`StepLoop`): it applies step t's decision and returns step t+1's
 * gradients, so the sidecar computes while this process decides. Before an evaluation, a checkpoint, the end or an
 * interruption the decision goes without a request for more, so nothing is pending there (a checkpoint never holds
 * half a step).
 */
async function trainLoop(
  loop: StepLoop,
  config: Config,
  policy: Policy,
  paths: RunPaths,
  log: MetricsLog,
  options: RunOptions,
): Promise<void> {
  const { steps, eval_every: evalEvery, checkpoint_every: ckptEvery, max_skips: maxSkips } = config.train;
  const progress = options.progress ?? noProgress;
  const aborted = () => options.signal?.aborted === true;
  progress.start(basename(paths.dir), steps, loop.step);
  let t0 = performance.now();
  try {
    while (loop.step < steps) {
      if (loop.pending === null) {
        if (aborted()) {
          await loop.session.save(paths.checkpoint, loop.extra());
          throw new GradpromError('INTERRUPTED', `interrupted at step ${loop.step}; checkpoint written, resume with --resume ${paths.dir}`);
        }
        t0 = performance.now();
      }
      const g = await loop.gradients();
      const { layout } = loop.session;
      const context = { step: loop.step, seed: config.seed }; // keyed on the step, a random policy draws the same on resume
      const decision: Decision =
        loop.transport === 'vectors'
          ? policy.decideFromVectors(layout, g.gIp!, g.gVr!, context)
          : policy.decide({ layout, gram: g.gram, context });
      const t = decision.telemetry;
      const skipped = !g.finite || t.skipped;
      const more = !(!skipped && isBoundary(loop.step + 1, config.train)) && !aborted();
      // Measured before sending: g's vectors are valid only until the next step's arrive.
      const planned = skipped ? NaN : ipDescent(decision, g.gram, g.gIp);
      const r = await loop.send(skipped ? 'skip' : decision, more);
      const now = performance.now();
      const stepMs = now - t0;
      t0 = now;
      const reason = skipped ? (t.reason ?? skipReason(config.train.precision)) : undefined;
      log.append(stepRecord(g, t, skipped ? null : r, planned, reason, stepMs, loop.step));
      if (loop.consecutiveSkips > maxSkips) {
        throw new GradpromError(
          'RUN',
          `step ${loop.step + 1}: ${loop.consecutiveSkips} consecutive steps skipped (non-finite loss or gradient; limit train.max_skips = ${maxSkips}); the last good checkpoint is ${paths.checkpoint}`,
        );
      }
      if (skipped) continue;
      progress.update({ step: loop.step, lossIp: g.lossIp, cos: t.cos, gateRate: t.gateRate, stepMs });
      if (evalEvery > 0 && loop.step % evalEvery === 0 && loop.step < steps) {
        log.append({ type: 'eval', step: loop.step, split: 'val', ...(await loop.session.evaluate('val', config.eval.limit)) });
      }
      if (ckptEvery > 0 && loop.step % ckptEvery === 0 && loop.step < steps) {
        await loop.session.save(paths.checkpoint, loop.extra());
      }
    }
  } finally {
    progress.stop();
  }
}
