/** One run's records reduced to the numbers the reports show. */
import { isEval, isPretrain, isResume, isStep, latestRecords } from './records.js';
import type { EvalRecord, MetricRecord, MetricValue, StepRecord } from './records.js';
import { runDescent, type RunDescent } from './descent.js';
import { finite, mean, median } from './stats.js';

/** What names a run: policy, λ, seed, length and task. */
export interface RunIdentity {
  name: string;
  policy: string;
  /** The policy's declared `usesVr`: false when λ and g_VR play no part (its runs are baselines). */
  usesVr: boolean;
  lambda: number;
  lambdaMode: string;
  seed: number;
  steps: number;
  task: 'classify' | 'segment';
}

/** What the report writers need to know about a run beside its records. */
export interface RunMeta extends RunIdentity {
  runDir: string;
  wallSeconds: number;
  config: unknown;
}

/** An evaluation's metrics (with its `step` and `split`, without `type`). */
export type EvalMetrics = Record<string, MetricValue>;

/** The per-run numbers; statistics with no data are null. */
export interface RunSummary extends RunIdentity {
  /** Metrics of the last test evaluation (the last val one when there is no test); empty without evaluations. */
  final: EvalMetrics;
  /** Where that evaluation ran: facts of the machine, not results (kept out of `final`, so results compare across machines). */
  machine: { device: string | null; peakMemoryMb: number | null };
  gateOpenRate: number | null;
  cosEarly: number | null;
  cosLate: number | null;
  normRatio: number | null;
  skipped: number;
  stepMsMedian: number | null;
  wallSeconds: number;
  recognitionKey: string;
  /** Step records in force (after resumes). */
  loggedSteps: number;
  /** Steps the run resumed at, in order. */
  resumedAt: number[];
  /** VR pre-training result, when logged. */
  pretrain: { loss: number; accuracy: number } | null;
  /** The descent property per step: cos(g_IP, g) planned and cos(−g_IP, Δθ) taken. */
  descent: RunDescent;
  /** The config's `vr.mode` (frozen: no co-trained VR); absent in summaries written before it was recorded. */
  vrMode?: string;
}

/** The `vr.mode` of a run's config, when it has one. */
function vrModeOf(config: unknown): string | undefined {
  const vr = config && typeof config === 'object' ? (config as { vr?: unknown }).vr : undefined;
  const mode = vr && typeof vr === 'object' ? (vr as { mode?: unknown }).mode : undefined;
  return typeof mode === 'string' ? mode : undefined;
}

/** The recognition metric suffix of a task: accuracy for classification, Dice for segmentation. */
export function recognitionUnit(task: 'classify' | 'segment'): 'acc' | 'dice' {
  return task === 'segment' ? 'dice' : 'acc';
}

/** The numeric value of metric `key` in `m`, or null when absent or not a finite number. */
export function metricOf(m: EvalMetrics, key: string): number | null {
  const v = m[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Step records in force, in step order. */
export function stepsOf(records: readonly MetricRecord[]): StepRecord[] {
  return latestRecords(records)
    .filter(isStep)
    .sort((a, b) => a.step - b.step);
}

/** Evaluation records in force for `split`, in step order. */
export function evalsOf(records: readonly MetricRecord[], split: 'val' | 'test'): EvalRecord[] {
  return latestRecords(records)
    .filter(isEval)
    .filter((r) => r.split === split)
    .sort((a, b) => a.step - b.step);
}

/** The number of leading (or trailing) items that make up 10% of `n`, at least one. */
function tenth(n: number): number {
  return Math.max(1, Math.ceil(n * 0.1));
}

/** Mean of finite values, or null when there are none. */
function meanOrNull(xs: number[]): number | null {
  const v = finite(xs);
  return v.length ? mean(v) : null;
}

/** Median of finite values, or null when there are none. */
function medianOrNull(xs: number[]): number | null {
  const v = finite(xs);
  return v.length ? median(v) : null;
}

/** Fields of an evaluation record that describe the machine (device, peak memory), not the result. */
const MACHINE_KEYS = new Set(['device', 'peak_memory_mb']);

/** Reduce a run's records (resumes resolved here) to its summary. */
export function summarizeRun(records: readonly MetricRecord[], meta: RunMeta): RunSummary {
  const live = latestRecords(records);
  const steps = stepsOf(live);
  const active = steps.filter((s) => !s.skipped);
  const withCos = active.filter((s) => Number.isFinite(s.cos));
  const k = tenth(withCos.length);
  const lastEval = evalsOf(live, 'test').at(-1) ?? evalsOf(live, 'val').at(-1);
  const final: EvalMetrics = {};
  if (lastEval) for (const [key, v] of Object.entries(lastEval)) if (key !== 'type' && !MACHINE_KEYS.has(key)) final[key] = v;
  const machine = {
    device: typeof lastEval?.device === 'string' ? lastEval.device : null,
    peakMemoryMb: typeof lastEval?.peak_memory_mb === 'number' ? lastEval.peak_memory_mb : null,
  };
  const unit = recognitionUnit(meta.task);
  const fixedKey = `fixed_enhanced_${unit}`;
  const pre = live.filter(isPretrain).at(-1);
  return {
    name: meta.name,
    policy: meta.policy,
    usesVr: meta.usesVr,
    lambda: meta.lambda,
    lambdaMode: meta.lambdaMode,
    seed: meta.seed,
    steps: meta.steps,
    task: meta.task,
    final,
    machine,
    gateOpenRate: meanOrNull(active.map((s) => s.gate_rate)),
    cosEarly: withCos.length ? mean(withCos.slice(0, k).map((s) => s.cos)) : null,
    cosLate: withCos.length ? mean(withCos.slice(-k).map((s) => s.cos)) : null,
    normRatio: medianOrNull(active.filter((s) => s.vr_norm > 0).map((s) => s.ip_norm / s.vr_norm)),
    skipped: steps.filter((s) => s.skipped).length,
    stepMsMedian: medianOrNull(steps.map((s) => s.time_ms)),
    wallSeconds: meta.wallSeconds,
    recognitionKey: metricOf(final, fixedKey) !== null ? fixedKey : `cotrained_enhanced_${unit}`,
    loggedSteps: steps.length,
    resumedAt: live.filter(isResume).map((r) => r.step),
    pretrain: pre ? { loss: pre.loss, accuracy: pre.accuracy } : null,
    descent: runDescent(steps),
    ...(vrModeOf(meta.config) !== undefined ? { vrMode: vrModeOf(meta.config)! } : {}),
  };
}
