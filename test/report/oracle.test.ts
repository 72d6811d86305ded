/** The comparison statistics against scipy (test/fixtures/stats-oracle.json, written by python/tests/stats_oracle.py). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  detectableEffect,
  holm,
  noncentralTCdf,
  normalCdf,
  pairedT,
  pairedTPower,
  seedsNeeded,
  signFlip,
  tQuantile,
} from '../../src/report/index.js';

interface Oracle {
  t_quantiles: Array<{ p: number; df: number; q: number }>;
  paired: Array<{ a: number[]; b: number[]; t: number; p_t: number; p_signflip: number }>;
  holm: Array<{ p: number[]; adjusted: number[] }>;
  normal_cdf: Array<{ x: number; cdf: number }>;
  noncentral_t_cdf: Array<{ t: number; df: number; ncp: number; cdf: number }>;
  paired_t_power: Array<{ d: number; n: number; power: number }>;
  detectable_effect: Array<{ n: number; d: number }>;
  seeds_needed: Array<{ d: number; n: number }>;
}

const oracle = JSON.parse(readFileSync(join(process.cwd(), 'test', 'fixtures', 'stats-oracle.json'), 'utf8')) as Oracle;

/** |got − want| within `rel` of |want| (or `abs` near zero). */
function near(got: number, want: number, rel: number, abs = 1e-12): void {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(Math.max(abs, rel * Math.abs(want)));
}

test('t quantiles for df 1–30 match scipy.stats.t.ppf', () => {
  expect(oracle.t_quantiles.length).toBe(120);
  for (const { p, df, q } of oracle.t_quantiles) near(tQuantile(p, df), q, 1e-9);
});

test('paired t statistics and two-sided p-values match scipy.stats.ttest_rel', () => {
  for (const c of oracle.paired) {
    const r = pairedT(c.a.map((x, i) => x - c.b[i]!))!;
    near(r.t, c.t, 1e-9);
    near(r.p, c.p_t, 1e-8);
  }
});

test('the exact sign-flip test matches scipy.stats.permutation_test (paired samples, every pattern)', () => {
  for (const c of oracle.paired) {
    const r = signFlip(c.a.map((x, i) => x - c.b[i]!))!;
    expect(r.exact).toBe(true);
    near(r.p, c.p_signflip, 1e-12);
    expect(r.minP).toBe(2 / 2 ** c.a.length);
  }
  // Five seeds can never reach 0.05: the floor is 2/32.
  expect(signFlip([0.1, 0.2, 0.3, 0.4, 0.5])!.p).toBe(0.0625);
});

test('Holm adjustment matches the reference implementation', () => {
  for (const { p, adjusted } of oracle.holm) holm(p).forEach((x, i) => near(x, adjusted[i]!, 1e-12));
});

test('normal and noncentral t CDFs match scipy.stats.norm and scipy.stats.nct', () => {
  for (const { x, cdf } of oracle.normal_cdf) near(normalCdf(x), cdf, 1e-9, 1e-15);
  for (const { t, df, ncp, cdf } of oracle.noncentral_t_cdf) near(noncentralTCdf(t, df, ncp), cdf, 1e-6, 1e-9);
});

test('power, detectable difference and seeds needed of the paired t test match scipy', () => {
  for (const { d, n, power } of oracle.paired_t_power) near(pairedTPower(d, n), power, 1e-6);
  for (const { n, d } of oracle.detectable_effect) near(detectableEffect(n), d, 1e-5);
  for (const { d, n } of oracle.seeds_needed) expect(seedsNeeded(d, 1)).toBe(n);
});
