/** Small statistics and number formatting shared by the run and comparison reports. */

/** Placeholder printed where a value is absent. */
export const DASH = '–';

/** The finite numbers among `xs` (absent, NaN and infinite values dropped). */
export function finite(xs: ReadonlyArray<number | null | undefined>): number[] {
  return xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
}

/** Arithmetic mean, or NaN for an empty list. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (n − 1 denominator); 0 for one value, NaN for none. */
export function std(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  if (xs.length === 1) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** Median (mean of the two middle values for an even count), or NaN for an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Linear-interpolated quantile q ∈ [0, 1] (q = 0.5 gives the median), or NaN for an empty list. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

/** Standard error of a proportion `p` measured on `n` items: sqrt(p(1 − p)/n). */
export function proportionStderr(p: number, n: number): number {
  return n > 0 ? Math.sqrt((p * (1 - p)) / n) : NaN;
}

/** Centred moving average with a window of `window` points (shrinking at the ends). */
export function movingAverage(xs: readonly number[], window: number): number[] {
  const half = Math.max(0, Math.floor((Math.max(1, Math.round(window)) - 1) / 2));
  const prefix = [0];
  for (const x of xs) prefix.push((prefix[prefix.length - 1] as number) + x);
  return xs.map((_, i) => {
    const lo = Math.max(0, i - half);
    const hi = Math.min(xs.length, i + half + 1);
    return ((prefix[hi] as number) - (prefix[lo] as number)) / (hi - lo);
  });
}

/** Mean, sample std and count of a set of values. */
export interface Stat {
  mean: number | null;
  std: number | null;
  n: number;
}

/** Summarize the finite values among `xs` as mean, std and count (null mean and std when none). */
export function stat(xs: ReadonlyArray<number | null | undefined>): Stat {
  const v = finite(xs);
  return v.length === 0 ? { mean: null, std: null, n: 0 } : { mean: mean(v), std: std(v), n: v.length };
}

/** A number with fixed decimals, or a dash when absent or not finite. */
export function fmt(x: number | null | undefined, digits: number): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : DASH;
}

/** A fraction in [0, 1] as a percentage with `digits` decimals and a % sign. */
export function fmtPercent(x: number | null | undefined, digits = 1): string {
  const s = fmt(typeof x === 'number' ? x * 100 : x, digits);
  return s === DASH ? s : `${s}%`;
}

/** A number with three significant digits, for ratios that span orders of magnitude. */
export function fmtSig(x: number | null | undefined, digits = 3): string {
  return typeof x === 'number' && Number.isFinite(x) ? Number(x.toPrecision(digits)).toString() : DASH;
}

/** "mean ± std" with `digits` decimals (values multiplied by `scale` first); just the mean for one value. */
export function fmtMeanStd(s: Stat, digits: number, scale = 1): string {
  if (s.mean === null || s.n === 0) return DASH;
  const m = (s.mean * scale).toFixed(digits);
  return s.n === 1 || s.std === null ? m : `${m} ± ${(s.std * scale).toFixed(digits)}`;
}
