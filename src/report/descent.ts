/**
 * The Lemma's descent property in reports: per run and per policy, how often the update pointed against g_IP.
 *
 * `planned` is cos(g_IP, g) of the merged gradient handed to the optimizer (`ip_descent`), `taken` is
 * cos(−g_IP, Δθ) of the step the optimizer made (`ip_descent_actual`); a negative value is a step uphill
 * for IP's own loss.
 */
import type { StepRecord } from './records.js';
import { DASH, finite, fmt, fmtPercent, stat, type Stat } from './stats.js';

/** Bins of the stored histogram: HIST_BINS equal bins over [−1, 1] (the last one includes 1). */
export const HIST_BINS = 40;

/** The distribution of one per-step cosine over a run's steps. */
export interface DescentStats {
  /** Steps with a value (not skipped). */
  steps: number;
  /** Steps with a negative value. */
  negative: number;
  negativeRate: number;
  min: number;
  p05: number;
  median: number;
  p95: number;
  max: number;
  /** Counts in HIST_BINS equal bins over [−1, 1]. */
  hist: number[];
}

/** Both cosines of a run; null where the run recorded none (older runs, or no steps). */
export interface RunDescent {
  planned: DescentStats | null;
  taken: DescentStats | null;
}

/** The q quantile (linear interpolation between order statistics) of sorted values. */
function quantile(sorted: readonly number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < sorted.length ? sorted[i]! * (1 - f) + sorted[i + 1]! * f : sorted[i]!;
}

/** The distribution of per-step cosines; null without any finite value. */
export function descentStats(values: ReadonlyArray<number | undefined>): DescentStats | null {
  const v = finite(values).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const hist = new Array<number>(HIST_BINS).fill(0);
  for (const x of v) hist[Math.min(HIST_BINS - 1, Math.max(0, Math.floor(((x + 1) / 2) * HIST_BINS)))]! += 1;
  const negative = v.filter((x) => x < 0).length;
  return {
    steps: v.length,
    negative,
    negativeRate: negative / v.length,
    min: v[0]!,
    p05: quantile(v, 0.05),
    median: quantile(v, 0.5),
    p95: quantile(v, 0.95),
    max: v[v.length - 1]!,
    hist,
  };
}

/** Both cosines of a run's (non-skipped) steps. */
export function runDescent(steps: readonly StepRecord[]): RunDescent {
  const live = steps.filter((s) => !s.skipped);
  return { planned: descentStats(live.map((s) => s.ip_descent)), taken: descentStats(live.map((s) => s.ip_descent_actual)) };
}

/** One cosine over the runs of a group: pooled counts, the per-run negative shares and medians, the lowest value. */
export interface GroupDescentStats {
  steps: number;
  negative: number;
  /** Pooled share of negative steps over all runs. */
  negativeRate: number;
  /** Per-run share of negative steps, mean ± std over runs. */
  perRun: Stat;
  /** Per-run median, mean ± std over runs. */
  median: Stat;
  min: number;
  hist: number[];
}

/** Pool one cosine's statistics over runs; null when no run has it. */
export function poolDescent(runs: ReadonlyArray<DescentStats | null>): GroupDescentStats | null {
  const have = runs.filter((r): r is DescentStats => r !== null);
  if (have.length === 0) return null;
  const steps = have.reduce((s, r) => s + r.steps, 0);
  const negative = have.reduce((s, r) => s + r.negative, 0);
  const hist = new Array<number>(HIST_BINS).fill(0);
  for (const r of have) r.hist.forEach((c, i) => (hist[i]! += c));
  return {
    steps,
    negative,
    negativeRate: negative / steps,
    perRun: stat(have.map((r) => r.negativeRate)),
    median: stat(have.map((r) => r.median)),
    min: Math.min(...have.map((r) => r.min)),
    hist,
  };
}

/** "k of N (x %)" for pooled negative steps, or a dash. */
export function fmtNegative(g: GroupDescentStats | null): string {
  return g ? `${g.negative} of ${g.steps} (${fmtPercent(g.negativeRate, 2)})` : DASH;
}

/** A run's negative share and median of one cosine, for a per-seed table cell. */
export function fmtRunDescent(d: DescentStats | null): string {
  return d ? `${fmtPercent(d.negativeRate, 1)} · ${fmt(d.median, 3)}` : DASH;
}
