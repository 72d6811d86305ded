/**
 * Paired differences between policies: runs of one seed share their start, so a − b is taken seed by seed.
 *
 * Per difference: the mean over seeds; two p-values over seeds, a paired t test and an exact sign-flip
 * permutation test; one 95 % interval covering both seeds and test images (a two-level bootstrap:
 * seeds resampled, then test images within each drawn seed), seeded so a report is reproducible; and
 * the smallest difference the paired t test over these seeds detects with 80 % power.
 *
 * The comparison declares its primary endpoints (config `compare.primary`); the primary differences of
 * all pairs and λ settings form one family, and both p-values are Holm-adjusted across it. An ordering
 * is stated only for a primary difference whose two adjusted p-values are both below 0.05 (the t test
 * leans on normality over a handful of seeds, the sign-flip test does not but is coarse: a claim needs
 * both). Secondary endpoints are shown with unadjusted p-values, labelled so, and no ordering.
 */
import { groupKey, type Comparison } from './comparison.js';
import { isReference, rank, type GroupSummary } from './groups.js';
import { tInterval, twoLevelBootstrap, type TInterval, type TwoLevelInterval } from './intervals.js';
import { ALPHA, detectableEffect } from './power.js';
import { holm, pairedT, signFlip, type SignFlipTest, type TTest } from './significance.js';
import { metricOf, recognitionUnit } from './summary.js';

/** The bootstrap's resamples and PRNG seed (fixed: the same runs always give the same report). */
export const BOOTSTRAP_REPS = 2000;
export const BOOTSTRAP_SEED = 20250101;

export type PairMetric = 'psnr' | 'ssim' | 'fixed' | 'cotrained';

/** The endpoints as the config names them (`compare.primary`). */
export const ENDPOINTS = { psnr: 'psnr', ssim: 'ssim', fixed_vr: 'fixed', cotrained_vr: 'cotrained' } as const;
export type EndpointName = keyof typeof ENDPOINTS;

/** The statistics of one paired difference a − b of one metric. */
export interface PairStats {
  /** Seeds present in both groups with the metric. */
  seeds: number[];
  /** Mean over seeds of a − b, in the metric's own unit (accuracy as a fraction). */
  mean: number | null;
  /** Student t interval over seeds (kept for the trade-off bars and the study tables). */
  t: TInterval | null;
  tTest: TTest | null;
  signFlip: SignFlipTest | null;
  /** Over seeds and test images; `images` is 1 when no per-image results were recorded (seeds only). */
  interval: TwoLevelInterval | null;
  /** The difference the paired t test over these seeds detects with 80 % power at their spread. */
  detectable: number | null;
  /** Which side both unadjusted p-values (below 0.05) put higher, or null; orderings use the adjusted ones. */
  higherUnadjusted: 'a' | 'b' | null;
}

/** The per-run metric key of a pair metric. */
export function metricKey(metric: PairMetric, task: 'classify' | 'segment'): string {
  if (metric === 'psnr' || metric === 'ssim') return metric;
  return `${metric}_enhanced_${recognitionUnit(task)}`;
}

/** Per seed, the per-image differences a − b (seeds without per-image results in both groups are left out). */
function imageDiffs(c: Comparison, a: GroupSummary, b: GroupSummary, key: string, seeds: number[]): number[][] {
  const out: number[][] = [];
  for (const seed of seeds) {
    const va = c.perImageOf(a, seed)?.values[key];
    const vb = c.perImageOf(b, seed)?.values[key];
    if (!va || !vb || va.length !== vb.length) continue;
    const d: number[] = [];
    for (let i = 0; i < va.length; i++) if (va[i] !== null && vb[i] !== null) d.push(va[i]! - vb[i]!);
    if (d.length) out.push(d);
  }
  return out;
}

/** Paired statistics already computed, per comparison (fronts and pair tables share them). */
const memos = new WeakMap<Comparison, Map<string, PairStats>>();

/** The paired statistics of a − b for one metric (memoised per comparison). */
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
  const tTest = pairedT(diffs);
  const flip = signFlip(diffs);
  // Every seed's images when all have them; otherwise the seeds alone (a seed's final value as its one "image").
  const images = imageDiffs(c, a, b, key, seeds);
  const perSeed = images.length === seeds.length ? images : diffs.map((d) => [d]);
  const interval = twoLevelBootstrap(perSeed, { reps: BOOTSTRAP_REPS, seed: BOOTSTRAP_SEED });
  const both = tTest && flip && tTest.p < ALPHA && flip.p < ALPHA;
  const m = diffs.length ? diffs.reduce((s, x) => s + x, 0) / diffs.length : null;
  const out: PairStats = {
    seeds,
    mean: m,
    t,
    tTest,
    signFlip: flip,
    interval,
    detectable: t ? detectableEffect(t.n) * t.sd : null,
    higherUnadjusted: both && m !== null && m !== 0 ? (m > 0 ? 'a' : 'b') : null,
  };
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
  task: 'classify' | 'segment';
  /** Primary differences form the Holm family; secondary ones are shown unadjusted, with no ordering. */
  endpoint: 'primary' | 'secondary';
  /** Holm-adjusted p-values across the family (primary only). */
  adjusted: { t: number; signFlip: number } | null;
  verdict: 'a-higher' | 'b-higher' | 'no-difference' | 'too-few-seeds' | 'secondary';
  text: string;
}

/** What the paired differences are read for. */
export interface PairedOptions {
  /** The primary endpoints (default PSNR and the fixed VR's recognition). */
  primary?: readonly PairMetric[];
  /** False when the VR is frozen: the co-trained VR is the fixed one, so it is no endpoint of its own. */
  cotrained?: boolean;
  /** Pairs in the Holm family: all (default), or only gradprom against each other policy (the rest secondary). */
  primaryPairs?: 'all' | 'gradprom';
}

/** The default primary endpoints. */
export const DEFAULT_PRIMARY: readonly PairMetric[] = ['psnr', 'fixed'];

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

/** A p-value for reading: three decimals, two significant digits below 0.01, "0.0000" never (below 1e-4 it is "< 0.0001"). */
export function fmtP(p: number): string {
  return p >= 0.01 ? p.toFixed(3) : p >= 1e-4 ? p.toPrecision(2) : '< 0.0001';
}

/** "p = 0.031", or "p < 0.0001". */
function pIs(p: number): string {
  const s = fmtP(p);
  return s.startsWith('<') ? `p ${s}` : `p = ${s}`;
}

/** The reading of one paired difference, given its adjusted p-values (null: secondary). */
function readingText(
  s: PairStats,
  a: GroupSummary,
  b: GroupSummary,
  metric: PairMetric,
  adjusted: PairedDifference['adjusted'],
): [PairedDifference['verdict'], string] {
  const d = metricDisplay(metric, a.task);
  if (!s.tTest || !s.signFlip || s.mean === null || !s.t)
    return ['too-few-seeds', `${d.label}: ${s.seeds.length} paired seed(s): no test, no ordering claimed`];
  const head = `${d.label} ${signed(s.mean * d.scale, d.digits)}${d.unit}`;
  const where = s.interval && s.interval.images > 1 ? 'over seeds and test images' : 'over seeds (no per-image results)';
  const iv = `95 % interval ${where} ${fmtInterval(s.interval, d.scale, d.digits)}`;
  const raw = `paired t ${pIs(s.tTest.p)}, sign-flip ${pIs(s.signFlip.p)}${s.signFlip.exact ? ' (exact)' : ''}`;
  const mdd =
    s.detectable === null
      ? ''
      : `; detectable with 80 % power over ${s.t.n} seeds: ±${(s.detectable * d.scale).toFixed(d.digits)}${d.unit}`;
  if (!adjusted) return ['secondary', `${head} (${iv}); ${raw}, unadjusted (secondary endpoint: no ordering claimed)${mdd}`];
  const adj = `Holm-adjusted: t ${pIs(adjusted.t)}, sign-flip ${pIs(adjusted.signFlip)}`;
  if (adjusted.t < ALPHA && adjusted.signFlip < ALPHA && s.mean !== 0) {
    const aHigher = s.mean > 0;
    return [aHigher ? 'a-higher' : 'b-higher', `${head}: \`${aHigher ? a.policy : b.policy}\` higher (${iv}; ${raw}; ${adj})${mdd}`];
  }
  return ['no-difference', `${head}: no ordering shown (${iv}; ${raw}; ${adj})${mdd}`];
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

/** Every paired difference of the comparison (PSNR, SSIM, recognition by each VR, for each pair), primary ones Holm-adjusted. */
export function pairedDifferences(c: Comparison, opts: PairedOptions = {}): PairedDifference[] {
  const endpoints = new Set(opts.primary ?? DEFAULT_PRIMARY);
  const isPrimary = (a: GroupSummary, b: GroupSummary, metric: PairMetric): boolean =>
    endpoints.has(metric) && (opts.primaryPairs !== 'gradprom' || a.policy === 'gradprom' || b.policy === 'gradprom');
  const metrics = (['psnr', 'ssim', 'fixed', 'cotrained'] as const).filter((m) => m !== 'cotrained' || opts.cotrained !== false);
  const found: Array<{ a: GroupSummary; b: GroupSummary; metric: PairMetric; s: PairStats }> = [];
  for (const [a, b] of pairsOf(c.groups)) {
    for (const metric of metrics) {
      const s = pairStats(c, a, b, metric);
      if (s.seeds.length > 0) found.push({ a, b, metric, s });
    }
  }
  // The family: every primary difference that has both tests.
  const family = found.filter((f) => isPrimary(f.a, f.b, f.metric) && f.s.tTest && f.s.signFlip);
  const adjT = holm(family.map((f) => f.s.tTest!.p));
  const adjFlip = holm(family.map((f) => f.s.signFlip!.p));
  const adjusted = new Map(family.map((f, i) => [f, { t: adjT[i]!, signFlip: adjFlip[i]! }]));
  return found.map((f) => {
    const { a, b, metric, s } = f;
    const adj = adjusted.get(f) ?? null;
    const [verdict, text] = readingText(s, a, b, metric, adj);
    return {
      ...s,
      a: a.policy,
      b: b.policy,
      lambda: a.lambda,
      lambdaMode: a.lambdaMode,
      bLambda: b.lambda,
      bUsesVr: b.usesVr,
      metric,
      task: a.task,
      endpoint: isPrimary(a, b, metric) ? ('primary' as const) : ('secondary' as const),
      adjusted: adj,
      verdict,
      text,
    };
  });
}
