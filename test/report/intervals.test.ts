import {
  bootstrapMean,
  holm,
  holmFloor,
  incompleteBeta,
  pairedT,
  seededRandom,
  signFlip,
  tCdf,
  tInterval,
  tQuantile,
  twoLevelBootstrap,
} from '../../src/report/index.js';

describe('Student t', () => {
  test.each([
    [1, 12.706204736],
    [2, 4.30265273],
    [4, 2.776445105],
    [9, 2.262157163],
    [30, 2.042272456],
    [1000, 1.962339081],
  ])('the 97.5 %% quantile with %i degrees of freedom is the tabulated value', (df, q) => {
    expect(tQuantile(0.975, df)).toBeCloseTo(q, 8);
    expect(tQuantile(0.025, df)).toBeCloseTo(-q, 8);
  });

  test('the CDF is symmetric and matches closed forms (df 1: Cauchy; df 2)', () => {
    for (const t of [-3, -0.5, 0, 0.7, 4]) {
      expect(tCdf(t, 1)).toBeCloseTo(0.5 + Math.atan(t) / Math.PI, 12);
      expect(tCdf(t, 2)).toBeCloseTo(0.5 + t / (2 * Math.sqrt(2 + t * t)), 12);
      expect(tCdf(t, 7) + tCdf(-t, 7)).toBeCloseTo(1, 12);
    }
    expect(incompleteBeta(0.3, 1, 1)).toBeCloseTo(0.3, 12);
    expect(incompleteBeta(0.3, 2, 1)).toBeCloseTo(0.09, 12);
  });

  test('interval of a mean: mean ± t·s/√n; none for fewer than two values', () => {
    const iv = tInterval([0.02, -0.01, 0.03, -0.02, 0.01])!;
    expect(iv.mean).toBeCloseTo(0.006, 12);
    expect(iv.sd).toBeCloseTo(Math.sqrt(4.3e-4), 12);
    expect(iv.df).toBe(4);
    expect(iv.lo).toBeCloseTo(0.006 - 2.776445105 * Math.sqrt(4.3e-4 / 5), 8);
    expect(iv.hi).toBeCloseTo(0.006 + 2.776445105 * Math.sqrt(4.3e-4 / 5), 8);
    expect(tInterval([1])).toBeNull();
    expect(tInterval([])).toBeNull();
  });
});

describe('bootstrap', () => {
  const xs = Array.from({ length: 400 }, (_, i) => Math.sin(i) + 0.1);

  test('is reproducible for a PRNG seed, and another seed gives another interval', () => {
    const a = bootstrapMean(xs, { seed: 7 })!;
    expect(bootstrapMean(xs, { seed: 7 })).toEqual(a);
    expect(bootstrapMean(xs, { seed: 8 })!.lo).not.toBe(a.lo);
    expect(a.reps).toBe(2000);
    expect(a.n).toBe(400);
  });

  test('covers the mean with about the width of the normal interval', () => {
    const m = xs.reduce((s, x) => s + x, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
    const b = bootstrapMean(xs, { seed: 3 })!;
    expect(b.lo).toBeLessThan(m);
    expect(b.hi).toBeGreaterThan(m);
    const normalHalf = (1.96 * sd) / Math.sqrt(xs.length);
    expect((b.hi - b.lo) / 2 / normalHalf).toBeGreaterThan(0.85);
    expect((b.hi - b.lo) / 2 / normalHalf).toBeLessThan(1.15);
  });

  test('a constant sample has a zero-width interval; no items give none', () => {
    expect(bootstrapMean([2, 2, 2])).toMatchObject({ lo: 2, hi: 2 });
    expect(bootstrapMean([])).toBeNull();
  });

  test('the PRNG is uniform enough: mean near 1/2 over 100k draws', () => {
    const r = seededRandom(42);
    let s = 0;
    for (let i = 0; i < 100_000; i++) s += r();
    expect(s / 100_000).toBeCloseTo(0.5, 2);
  });
});

describe('two-level bootstrap (seeds, then images within seeds)', () => {
  const perSeed = [0.3, -0.1, 0.5, 0.2, 0.0].map((m, k) => Array.from({ length: 60 }, (_, i) => m + Math.sin(i * (k + 1))));

  test('is reproducible for a PRNG seed and covers the pooled mean', () => {
    const a = twoLevelBootstrap(perSeed, { seed: 5 })!;
    expect(twoLevelBootstrap(perSeed, { seed: 5 })).toEqual(a);
    const pooled = perSeed.flat().reduce((s, x) => s + x, 0) / (5 * 60);
    expect(a.lo).toBeLessThan(pooled);
    expect(a.hi).toBeGreaterThan(pooled);
    expect([a.seeds, a.images, a.reps]).toEqual([5, 60, 2000]);
  });

  test('is wider than resampling images alone when seeds disagree', () => {
    const two = twoLevelBootstrap(perSeed, { seed: 5 })!;
    const pooledImages = perSeed[0]!.map((_, i) => perSeed.reduce((s, xs) => s + xs[i]!, 0) / perSeed.length);
    const one = bootstrapMean(pooledImages, { seed: 5 })!;
    expect(two.hi - two.lo).toBeGreaterThan(1.5 * (one.hi - one.lo));
  });

  test('identical seeds of a constant give a zero-width interval; an empty seed gives none', () => {
    const c = twoLevelBootstrap([
      [1, 1],
      [1, 1],
    ])!;
    expect([c.lo, c.hi]).toEqual([1, 1]);
    expect(twoLevelBootstrap([[1], []])).toBeNull();
    expect(twoLevelBootstrap([])).toBeNull();
  });
});

describe('tests over seeds', () => {
  test('Holm never lowers a p-value and keeps the order of the raw ones', () => {
    const ps = [0.03, 0.001, 0.2, 0.04];
    const adj = holm(ps);
    adj.forEach((a, i) => expect(a).toBeGreaterThanOrEqual(ps[i]!));
    expect(adj).toEqual([0.09, 0.004, 0.2, 0.09]);
  });

  test('the sign-flip floor is 2/2^n, and a family of m tests multiplies it', () => {
    expect(signFlip([1, 2, 3, 4, 5])!.minP).toBe(0.0625);
    expect(signFlip([1, 2, 3, 4, 5, 6, 7, 8])!.minP).toBe(2 / 256);
    expect(holmFloor(2 / 256, 18)).toBeCloseTo(0.140625, 12);
  });

  test('beyond the exact limit the sign-flip test samples, reproducibly', () => {
    const xs = Array.from({ length: 24 }, (_, i) => Math.sin(i) + 0.2);
    const r = signFlip(xs)!;
    expect(r.exact).toBe(false);
    expect(signFlip(xs)).toEqual(r);
    expect(r.p).toBeGreaterThan(0);
    expect(r.p).toBeLessThan(1);
  });

  test('paired t: identical differences decide by their sign; one value gives no test', () => {
    expect(pairedT([0.2, 0.2, 0.2])!.p).toBe(0);
    expect(pairedT([0, 0])!.p).toBe(1);
    expect(pairedT([1])).toBeNull();
  });
});
