/**
 * Power of the two-sided paired t test: the smallest difference a number of seeds can detect, and the
 * seeds a difference needs.
 *
 * Power at a true mean difference δ with seed-to-seed sd σ over n seeds is P(|T'| > t_{1−α/2, n−1})
 * where T' is noncentral t with n − 1 degrees of freedom and noncentrality δ√n/σ. Its CDF is the
 * expectation over the chi distribution, P(T' ≤ t) = E[Φ(t·S − ncp)] with S = √(χ²_df/df),
 * integrated here by Simpson's rule.
 */
import { lnGamma, tQuantile } from './intervals.js';

// Math's functions bound once: under Jest (its vm context) every global lookup in a hot loop costs a slow interceptor call.
const { exp, log, sqrt } = Math;

/** The error function's complement: an all-positive series below 3, a continued fraction above. */
function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  if (x < 3) {
    // erf(x) = 2/√π · e^{−x²} Σ (2x²)^k x / (1·3·…·(2k+1))
    let term = x;
    let sum = x;
    for (let k = 1; k < 200 && term > 1e-17 * sum; k++) {
      term *= (2 * x * x) / (2 * k + 1);
      sum += term;
    }
    return 1 - (2 / sqrt(Math.PI)) * exp(-x * x) * sum;
  }
  // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the back.
  let k = x;
  for (let i = 80; i >= 1; i--) k = x + i / 2 / k;
  return exp(-x * x) / (sqrt(Math.PI) * k);
}

/** The standard normal CDF Φ(x). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Simpson intervals over the chi distribution (even). */
const PANELS = 400;

/** P(T' ≤ t) for the noncentral t with `df` degrees of freedom and noncentrality `ncp`. */
export function noncentralTCdf(t: number, df: number, ncp: number): number {
  // Density of S = √(V/df), V ~ χ²_df: 2 (df/2)^{df/2} / Γ(df/2) · s^{df−1} e^{−df s²/2}.
  const logC = log(2) + (df / 2) * log(df / 2) - lnGamma(df / 2);
  const density = (s: number): number => (s <= 0 ? (df === 1 ? exp(logC) : 0) : exp(logC + (df - 1) * log(s) - (df * s * s) / 2));
  // S concentrates at 1 with spread ~1/√(2 df); beyond hi the density is below e^{-40}-ish.
  const hi = 1 + 12 / sqrt(df);
  const h = hi / PANELS;
  let sum = 0;
  for (let i = 0; i <= PANELS; i++) {
    const s = i * h;
    const w = i === 0 || i === PANELS ? 1 : i % 2 ? 4 : 2;
    sum += w * density(s) * normalCdf(t * s - ncp);
  }
  return Math.min(1, Math.max(0, (sum * h) / 3));
}

/** Two-sided significance level and power the design figures use. */
export const ALPHA = 0.05;
export const POWER = 0.8;

/** Power of the two-sided paired t test over `n` seeds at a standardized difference d = δ/σ. */
export function pairedTPower(d: number, n: number, alpha = ALPHA): number {
  return n < 2 ? NaN : powerAt(d, n, tQuantile(1 - alpha / 2, n - 1));
}

/** Power over `n` seeds at d = δ/σ given the critical value (the quantile is the slow part: callers reuse it). */
function powerAt(d: number, n: number, crit: number): number {
  const ncp = d * sqrt(n);
  return 1 - noncentralTCdf(crit, n - 1, ncp) + noncentralTCdf(-crit, n - 1, ncp);
}

/** The standardized difference δ/σ the paired t test over `n` seeds detects with probability `power`. */
export function detectableEffect(n: number, power = POWER, alpha = ALPHA): number {
  if (n < 2) return NaN;
  const key = `${n}/${power}/${alpha}`;
  const hit = detectable.get(key);
  if (hit !== undefined) return hit;
  const crit = tQuantile(1 - alpha / 2, n - 1);
  let lo = 0;
  let hi = 1;
  while (powerAt(hi, n, crit) < power) hi *= 2;
  for (let i = 0; i < 60 && hi - lo > 1e-8 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (powerAt(mid, n, crit) < power) lo = mid;
    else hi = mid;
  }
  detectable.set(key, (lo + hi) / 2);
  return (lo + hi) / 2;
}

/** detectableEffect's answers (a report asks for the same few seed counts many times). */
const detectable = new Map<string, number>();

/** The most seeds `seedsNeeded` looks at before saying "more than this". */
export const MAX_SEEDS = 500;

/**
 * The fewest seeds (at least 2) at which the paired t test detects a difference `delta` with seed-to-seed
 * sd `sd` with probability `power`; null when more than MAX_SEEDS would be needed or the sd is unknown.
 */
export function seedsNeeded(delta: number, sd: number, power = POWER, alpha = ALPHA): number | null {
  if (!(sd > 0) || !(Math.abs(delta) > 0)) return null;
  const d = Math.abs(delta) / sd;
  if (pairedTPower(d, MAX_SEEDS, alpha) < power) return null;
  let lo = 1; // power below target (no test with one seed)
  let hi = MAX_SEEDS;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (pairedTPower(d, mid, alpha) >= power) hi = mid;
    else lo = mid;
  }
  return hi;
}
