/**
 * Paired differences between policies: runs of one seed share their start, so a − b is taken seed by seed.
 *
 * Two 95 % intervals per difference:
 * - over seeds: Student t on the per-seed differences of the final test metrics (training randomness,
 *   on this test set);
 * - over test images: a percentile bootstrap resampling the test images (one draw of image indices
 *   applied to every seed, since every run sees the same degraded test set), seeded so that a report
 *   is reproducible (test-set sampling, for these seeds).
 * An ordering is stated only when both intervals exclude zero on the same side.
 */
import { groupKey, type Comparison } from './comparison.js';
import { isReference, rank, type GroupSummary } from './groups.js';
import { bootstrapMean, tInterval, type BootstrapInterval, type TInterval } from './intervals.js';
import { metricOf, recognitionUnit } from './summary.js';

/** The bootstrap's resamples and PRNG seed (fixed: the same runs always give the same report). */
export const BOOTSTRAP_REPS = 2000;
export const BOOTSTRAP_SEED = 20250101;

export type PairMetric = 'psnr' | 'ssim' | 'fixed' | 'cotrained';

/** The intervals of one paired difference a − b of one metric. */
export interface PairStats {
  /** Seeds present in both groups with the metric. */
  seeds: number[];
  /** Mean over seeds of a − b, in the metric's own unit (accuracy as a fraction). */
  mean: number | null;
  t: TInterval | null;
  /** Over test images; `seeds` says how many seeds had per-image results in both groups. */
  bootstrap: (BootstrapInterval & { seeds: number }) | null;
  /** Which side both intervals put above the other, or null. */
  higher: 'a' | 'b' | null;
}

/** The per-run metric key of a pair metric. */
export function metricKey(metric: PairMetric, task: 'classify' | 'segment'): string {
  if (metric === 'psnr' || metric === 'ssim') return metric;
  return `${metric}_enhanced_${recognitionUnit(task)}`;
}

/** Which side an interval puts higher: 'a' above zero, 'b' below, null when it holds zero. */
function sideOf(iv: { lo: number; hi: number } | null): 'a' | 'b' | null {
  if (!iv) return null;
  return iv.lo > 0 ? 'a' : iv.hi < 0 ? 'b' : null;
}

/** The per-image differences a − b averaged over the seeds both groups have per-image results for. */
function imageDiffs(c: Comparison, a: GroupSummary, b: GroupSummary, key: string, seeds: number[]): { diffs: number[]; seeds: number } {
  let sum: number[] | null = null;
  let used = 0;
  for (const seed of seeds) {
    const va = c.perImageOf(a, seed)?.values[key];
    const vb = c.perImageOf(b, seed)?.values[key];
    if (!va || !vb || va.length !== vb.length || (sum && sum.length !== va.length)) continue;
    sum ??= new Array<number>(va.length).fill(0);
    for (let i = 0; i < va.length; i++) sum[i]! += va[i] === null || vb[i] === null ? NaN : va[i]! - vb[i]!;
    used++;
  }
  if (!sum || used === 0) return { diffs: [], seeds: 0 };
  return { diffs: sum.filter((x) => Number.isFinite(x)).map((x) => x / used), seeds: used };
}

/** Paired statistics already computed, per comparison (fronts and pair tables share them). */
const memos = new WeakMap<Comparison, Map<string, PairStats>>();

/** The paired intervals of a − b for one metric (memoised per comparison). */
export function pairStats(c: Comparison, a: GroupSummary, b: GroupSummary, metric: PairMetric): PairStats {
  let memo = memos.get(c);
  if (!memo) memos.set(c, (memo = new Map()));
  const id = `${groupKey(a)}|${groupKey(b)}|${metric}`;
  const hit = memo.get(id);
  if (hit) return hit;
  const key = metricKey(metric, a.task);
  const seeds: number[] = [];
  const diffs: number[] = [];
  for (const seed of a.seeds) {
    const ra = c.runOf(a, seed);
    const rb = c.runOf(b, seed);
    const va = ra ? metricOf(ra.final, key) : null;
    const vb = rb ? metricOf(rb.final, key) : null;
    if (va === null || vb === null) continue;
    seeds.push(seed);
    diffs.push(va - vb);
  }
  const t = tInterval(diffs);
  const img = imageDiffs(c, a, b, key, seeds);
  const boot = bootstrapMean(img.diffs, { reps: BOOTSTRAP_REPS, seed: BOOTSTRAP_SEED });
  const bootstrap = boot ? { ...boot, seeds: img.seeds } : null;
  const tSide = sideOf(t);
  const higher = tSide !== null && (bootstrap === null || sideOf(bootstrap) === tSide) ? tSide : null;
  const out: PairStats = { seeds, mean: diffs.length ? diffs.reduce((s, x) => s + x, 0) / diffs.length : null, t, bootstrap, higher };
  memo.set(id, out);
  return out;
}

/** One paired difference as reported: the pair, the metric, the intervals and the reading. */
export interface PairedDifference extends PairStats {
  a: string;
  b: string;
  lambda: number;
  lambdaMode: string;
  /** λ of b (a reference such as ip-only is read against every λ). */
  bLambda: number;
  /** False when b is a reference without a VR term (its λ plays no part). */
  bUsesVr: boolean;
  metric: PairMetric;
  verdict: 'a-higher' | 'b-higher' | 'no-difference' | 'too-few-seeds';
  text: string;
}

/** How each metric is shown: label, scale to display units, unit, decimals. */
export function metricDisplay(
  metric: PairMetric,
  task: 'classify' | 'segment',
): { label: string; scale: number; unit: string; digits: number } {
  const rec = task === 'segment' ? 'Dice' : 'accuracy';
  if (metric === 'psnr') return { label: 'PSNR', scale: 1, unit: ' dB', digits: 2 };
  if (metric === 'ssim') return { label: 'SSIM', scale: 1, unit: '', digits: 4 };
  return { label: `${metric === 'fixed' ? 'fixed-VR' : 'co-trained-VR'} ${rec}`, scale: 100, unit: ' points', digits: 1 };
}

/** "[lo, hi]" of an interval in display units. */
export function fmtInterval(iv: { lo: number; hi: number } | null, scale: number, digits: number): string {
  return iv ? `[${signed(iv.lo * scale, digits)}, ${signed(iv.hi * scale, digits)}]` : '–';
}

/** A number with an explicit sign (− for negatives); one too small for `digits` decimals in exponent form, not as a bare 0. */
export function signed(x: number, digits: number): string {
  const fixed = Math.abs(x).toFixed(digits);
  const s = x !== 0 && Number(fixed) === 0 ? Math.abs(x).toExponential(1) : fixed;
  return x > 0 ? `+${s}` : x < 0 ? `−${s}` : s;
}

/** The reading of one paired difference. */
function readingText(s: PairStats, a: GroupSummary, b: GroupSummary, metric: PairMetric): [PairedDifference['verdict'], string] {
  const d = metricDisplay(metric, a.task);
  if (!s.t || s.mean === null) return ['too-few-seeds', `${d.label}: ${s.seeds.length} paired seed(s): no interval, no ordering claimed`];
  const seedsIv = `over ${s.t.n} seeds ${fmtInterval(s.t, d.scale, d.digits)}`;
  const imgIv = s.bootstrap
    ? `, over test images ${fmtInterval(s.bootstrap, d.scale, d.digits)}`
    : ' (no per-image results: seed interval only)';
  const head = `${d.label} ${signed(s.mean * d.scale, d.digits)}${d.unit}`;
  if (s.higher) {
    const who = s.higher === 'a' ? a.policy : b.policy;
    return [s.higher === 'a' ? 'a-higher' : 'b-higher', `${head}: \`${who}\` higher (95 % CI ${seedsIv}${imgIv})`];
  }
  // Name the interval that holds zero: the seed one first.
  const holding =
    sideOf(s.t) === null
      ? `the interval is ${fmtInterval(s.t, d.scale, d.digits)} (over ${s.t.n} seeds${s.bootstrap ? `; over test images ${fmtInterval(s.bootstrap, d.scale, d.digits)}` : ''})`
      : `the test-image interval is ${fmtInterval(s.bootstrap, d.scale, d.digits)} (over ${s.t.n} seeds ${fmtInterval(s.t, d.scale, d.digits)})`;
  return ['no-difference', `${head}: no difference shown, ${holding}`];
}

/** The pairs to compare: distinct policies at the same λ and mode, and every policy against a reference (ip-only). */
export function pairsOf(groups: readonly GroupSummary[]): Array<[GroupSummary, GroupSummary]> {
  const pairs: Array<[GroupSummary, GroupSummary]> = [];
  for (const a of groups) {
    for (const b of groups) {
      if (a.task !== b.task || a.policy === b.policy || isReference(a)) continue;
      if (isReference(b)) {
        pairs.push([a, b]);
        continue;
      }
      // Each pair once, the later policy first (gradprom − joint).
      const later = rank(a.policy) - rank(b.policy) || b.policy.localeCompare(a.policy);
      if (later > 0 && a.lambda === b.lambda && a.lambdaMode === b.lambdaMode) pairs.push([a, b]);
    }
  }
  return pairs;
}

/** Every paired difference of the comparison: PSNR, SSIM and recognition by both VRs, for each pair. */
export function pairedDifferences(c: Comparison): PairedDifference[] {
  const out: PairedDifference[] = [];
  for (const [a, b] of pairsOf(c.groups)) {
    for (const metric of ['psnr', 'ssim', 'fixed', 'cotrained'] as const) {
      const s = pairStats(c, a, b, metric);
      if (s.seeds.length === 0) continue;
      const [verdict, text] = readingText(s, a, b, metric);
      out.push({
        ...s,
        a: a.policy,
        b: b.policy,
        lambda: a.lambda,
        lambdaMode: a.lambdaMode,
        bLambda: b.lambda,
        bUsesVr: b.usesVr,
        metric,
        verdict,
        text,
      });
    }
  }
  return out;
}
