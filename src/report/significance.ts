/**
 * Tests of a paired difference over seeds, and the correction for testing many of them.
 *
 * - paired t: t = mean / (sd/√n) with n − 1 degrees of freedom, two-sided p from Student's t;
 * - exact sign-flip permutation test: under "no difference" each seed's difference is as likely
 *   negative as positive, so p is the share of the 2^n sign patterns whose |sum| reaches the observed
 *   one (the smallest attainable p is 2/2^n: 0.0625 for 5 seeds);
 * - Holm's step-down adjustment across a family of tests (controls the family-wise error rate).
 */
import { incompleteBeta, seededRandom } from './intervals.js';
import { mean, std } from './stats.js';

// Math's functions bound once: under Jest (its vm context) every global lookup in a hot loop costs a slow interceptor call.
const { abs, clz32 } = Math;

/** A paired t test of the mean of `diffs` against zero. */
export interface TTest {
  t: number;
  df: number;
  /** Two-sided p-value. */
  p: number;
}

/** Two-sided paired t test of the differences `diffs` (null for fewer than two). */
export function pairedT(diffs: readonly number[]): TTest | null {
  const n = diffs.length;
  if (n < 2) return null;
  const m = mean(diffs);
  const sd = std(diffs);
  const df = n - 1;
  // Identical differences (spread at rounding level): the test is decided by the sign of the mean alone.
  if (sd <= 1e-13 * abs(m) || sd === 0) return { t: m === 0 ? 0 : Math.sign(m) * Infinity, df, p: m === 0 ? 1 : 0 };
  const t = m / (sd / Math.sqrt(n));
  // P(|T| ≥ |t|) directly from the incomplete beta function (no 1 − cdf cancellation in the tail).
  return { t, df, p: Math.min(1, incompleteBeta(df / (df + t * t), df / 2, 0.5)) };
}

/** Seeds up to which the sign-flip test enumerates every pattern; beyond, it samples patterns. */
export const SIGN_FLIP_EXACT_MAX = 20;
/** Sampled sign patterns beyond SIGN_FLIP_EXACT_MAX seeds, and their PRNG seed (fixed: reproducible reports). */
export const SIGN_FLIP_SAMPLES = 20_000;
export const SIGN_FLIP_SEED = 20250102;

/** A sign-flip permutation test. */
export interface SignFlipTest {
  /** Two-sided p-value. */
  p: number;
  /** True when every sign pattern was enumerated. */
  exact: boolean;
  /** The smallest p-value this number of seeds can give (2/2^n when exact). */
  minP: number;
}

/**
 * The sign-flip permutation test of `diffs` (paired differences over seeds) against zero, two-sided:
 * the share of sign patterns s with |Σ sᵢdᵢ| ≥ |Σ dᵢ| (the observed pattern included); null for none.
 */
export function signFlip(diffs: readonly number[]): SignFlipTest | null {
  const n = diffs.length;
  if (n === 0) return null;
  const total = diffs.reduce((s, x) => s + x, 0);
  const scale = diffs.reduce((s, x) => s + abs(x), 0);
  // Sums equal to the observed one up to rounding count as reaching it (relative tolerance, as scipy does).
  const bar = abs(total) - 1e-12 * Math.max(scale, Number.MIN_VALUE);
  if (n <= SIGN_FLIP_EXACT_MAX) {
    // Gray code: each pattern differs from the last in one sign, so each sum costs one addition.
    const count = 2 ** n;
    let sum = total;
    const sign = new Int8Array(n).fill(1);
    let hits = abs(sum) >= bar ? 1 : 0;
    for (let k = 1; k < count; k++) {
      const i = 31 - clz32(k & -k);
      sum -= 2 * sign[i]! * diffs[i]!;
      sign[i] = -sign[i]! as 1 | -1;
      if (abs(sum) >= bar) hits++;
    }
    return { p: hits / count, exact: true, minP: 2 / count };
  }
  const rand = seededRandom(SIGN_FLIP_SEED);
  let hits = 0;
  for (let r = 0; r < SIGN_FLIP_SAMPLES; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += rand() < 0.5 ? -diffs[i]! : diffs[i]!;
    if (abs(s) >= bar) hits++;
  }
  return { p: (hits + 1) / (SIGN_FLIP_SAMPLES + 1), exact: false, minP: 1 / (SIGN_FLIP_SAMPLES + 1) };
}

/** Holm's step-down adjusted p-values, in the order of `ps` (each at most 1, never below a smaller raw p's). */
export function holm(ps: readonly number[]): number[] {
  const m = ps.length;
  const order = ps.map((p, i) => [p, i] as const).sort((x, y) => x[0] - y[0]);
  const out = new Array<number>(m);
  let running = 0;
  order.forEach(([p, i], k) => {
    running = Math.max(running, Math.min(1, (m - k) * p));
    out[i] = running;
  });
  return out;
}

/** The smallest Holm-adjusted p a family of `m` tests can give when no raw p can fall below `minP`. */
export function holmFloor(minP: number, m: number): number {
  return Math.min(1, m * minP);
}
