/**
 * Confidence intervals for paired comparisons: Student t over seeds, and a seeded percentile bootstrap.
 *
 * The t quantile comes from the regularized incomplete beta function (continued fraction, as in
 * Numerical Recipes §6.4), inverted by bisection: exact to ~1e-12 for any degrees of freedom.
 */
import { mean, std } from './stats.js';

// Math's functions bound once: under Jest (its vm context) every global lookup in a hot loop costs a slow interceptor call.
const { floor, imul } = Math;

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ~1e-15). */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of the incomplete beta function (modified Lentz). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  d = 1 / (Math.abs(d) < tiny ? tiny : d);
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    for (const aa of [(m * (b - m) * x) / ((a + m2 - 1) * (a + m2)), (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1))]) {
      d = 1 + aa * d;
      d = 1 / (Math.abs(d) < tiny ? tiny : d);
      c = 1 + aa / c;
      if (Math.abs(c) < tiny) c = tiny;
      h *= d * c;
    }
    if (Math.abs(d * c - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(a, b, x)) / a : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom. */
export function tCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The `p` quantile of Student's t with `df` degrees of freedom (0 < p < 1). */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return NaN;
  if (p < 0.5) return -tQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (tCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** A two-sided interval for a mean. */
export interface Interval {
  lo: number;
  hi: number;
}

/** Student t interval for the mean of `xs` (paired differences over seeds); null for fewer than two values. */
export interface TInterval extends Interval {
  n: number;
  mean: number;
  sd: number;
  df: number;
  level: number;
}

/** The `level` (e.g. 0.95) Student t confidence interval of the mean of `xs`; null with fewer than two values. */
export function tInterval(xs: readonly number[], level = 0.95): TInterval | null {
  if (xs.length < 2) return null;
  const m = mean(xs);
  const sd = std(xs);
  const df = xs.length - 1;
  const half = tQuantile(1 - (1 - level) / 2, df) * (sd / Math.sqrt(xs.length));
  return { n: xs.length, mean: m, sd, df, level, lo: m - half, hi: m + half };
}

/**
 * mulberry32, a small, fast, seeded PRNG: uniform floats in [0, 1). Its state is a uint32 cell: a number field or a
 * closure variable above 2³¹ is a boxed double in V8, and the resampling loops would allocate one per draw.
 */
class Mulberry32 {
  private readonly state: Uint32Array;
  constructor(seed: number) {
    this.state = Uint32Array.of(seed >>> 0);
  }
  next(): number {
    this.state[0] = this.state[0]! + 0x6d2b79f5; // stored mod 2³²
    let t = this.state[0]!;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** A seeded PRNG (mulberry32): uniform floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  const g = new Mulberry32(seed);
  return () => g.next();
}

/** A percentile bootstrap interval, with what it was drawn from. */
export interface BootstrapInterval extends Interval {
  /** Items resampled (test images). */
  n: number;
  reps: number;
  seed: number;
  level: number;
}

/** Resampling options: resamples (default 2000), PRNG seed (default 1), level (default 95 %). */
interface ResampleOptions {
  reps?: number;
  seed?: number;
  level?: number;
}

/**
 * Percentile bootstrap interval of the mean of `xs`, resampling items with replacement `reps` times from a PRNG
 * seeded with `seed` (the same inputs always give the same interval); null for no items.
 */
export function bootstrapMean(xs: ArrayLike<number>, opts: ResampleOptions = {}): BootstrapInterval | null {
  const n = xs.length;
  if (n === 0) return null;
  return { n, ...twoLevel([Float64Array.from(xs)], opts, false) };
}

/** The linear-interpolated `q` quantile of resampled means (sorted in place on first use). */
function percentile(means: Float64Array, q: number): number {
  means.sort();
  const pos = q * (means.length - 1);
  const i = floor(pos);
  const f = pos - i;
  return i + 1 < means.length ? means[i]! * (1 - f) + means[i + 1]! * f : means[i]!;
}

/**
 * The percentile interval of `reps` resampled means: each draws `groups.length` groups with replacement (when
 * `drawGroups`; else takes the one group), then each drawn group's items with replacement, and averages the
 * group means. One PRNG, seeded, draws everything in that order.
 */
function twoLevel(
  groups: Float64Array[],
  opts: ResampleOptions,
  drawGroups: boolean,
): { reps: number; seed: number; level: number; lo: number; hi: number } {
  const reps = opts.reps ?? 2000;
  const seed = opts.seed ?? 1;
  const level = opts.level ?? 0.95;
  const rng = new Mulberry32(seed);
  const k = groups.length;
  const stats = new Float64Array(reps);
  for (let r = 0; r < reps; r++) {
    let total = 0;
    for (let j = 0; j < k; j++) {
      const xs = groups[drawGroups ? floor(rng.next() * k) : j]!;
      const n = xs.length;
      let s = 0;
      for (let i = 0; i < n; i++) s += xs[floor(rng.next() * n)]!;
      total += s / n;
    }
    stats[r] = total / k;
  }
  const tail = (1 - level) / 2;
  return { reps, seed, level, lo: percentile(stats, tail), hi: percentile(stats, 1 - tail) };
}

/** A two-level bootstrap interval: seeds resampled, then test images within each drawn seed. */
export interface TwoLevelInterval extends Interval {
  seeds: number;
  /** Test images per seed (the smallest count among the seeds). */
  images: number;
  reps: number;
  seed: number;
  level: number;
}

/**
 * Percentile interval of the mean of per-image values pooled over seeds, covering both sources of chance:
 * each of `reps` resamples draws the seeds with replacement, then for each drawn seed its images with
 * replacement, and takes the mean over drawn seeds of each seed's image mean. `perSeed[k]` holds seed k's
 * per-image values (here paired differences a − b). PRNG seeded with `seed`; null without seeds or images.
 */
export function twoLevelBootstrap(perSeed: ReadonlyArray<ArrayLike<number>>, opts: ResampleOptions = {}): TwoLevelInterval | null {
  const k = perSeed.length;
  if (k === 0 || perSeed.some((xs) => xs.length === 0)) return null;
  const interval = twoLevel(
    perSeed.map((xs) => Float64Array.from(xs)),
    opts,
    true,
  );
  return { seeds: k, images: Math.min(...perSeed.map((xs) => xs.length)), ...interval };
}
