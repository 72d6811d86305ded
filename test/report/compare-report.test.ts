import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descentStats, writeCompareReport, type PerImage, type RunSummary } from '../../src/report/index.js';
import { signed } from '../../src/report/paired.js';

/** A run summary with a final test evaluation; `acc` and `psnr` vary per test case. */
function run(
  policy: string,
  lambda: number,
  seed: number,
  acc: number,
  psnr: number,
  task: 'classify' | 'segment' = 'classify',
  lambdaMode = 'plain',
): RunSummary {
  const u = task === 'segment' ? 'dice' : 'acc';
  return {
    name: `${policy}-l${lambda}${lambdaMode === 'normalized' ? 'n' : ''}-s${seed}`,
    policy,
    usesVr: policy !== 'ip-only',
    machine: { device: 'cpu', peakMemoryMb: 300 + seed },
    lambda,
    lambdaMode,
    seed,
    steps: 1000,
    task,
    final: {
      step: 1000,
      split: 'test',
      n: 1000,
      psnr,
      ssim: 0.8,
      psnr_degraded: 11.9,
      ssim_degraded: 0.12,
      [`fixed_clean_${u}`]: 1,
      [`fixed_degraded_${u}`]: 0.39,
      [`fixed_enhanced_${u}`]: acc,
      [`cotrained_enhanced_${u}`]: acc + 0.1,
    },
    gateOpenRate: policy === 'ip-only' ? 0 : 0.64,
    cosEarly: 0.05,
    cosLate: 0.12,
    normRatio: 0.002,
    skipped: 0,
    stepMsMedian: 101,
    wallSeconds: 100,
    recognitionKey: `fixed_enhanced_${u}`,
    loggedSteps: 1000,
    resumedAt: [],
    pretrain: null,
    descent: { planned: null, taken: null },
  };
}

/** Per-image PSNR values around `psnr` (an alternating ±spread pattern whose mean is exactly `psnr`). */
function images(psnr: number, spread: number, n = 40): PerImage {
  return { split: 'test', step: 1000, n, values: { psnr: Array.from({ length: n }, (_, i) => psnr + (i % 2 ? spread : -spread)) } };
}

/** Seeds 0..4 of gradprom and joint at λ 0.003; gradprom's fixed-VR accuracy minus joint's is `diffs[seed]`. */
function fiveSeeds(diffs: number[], psnrDiff = 0.5): RunSummary[] {
  return diffs.flatMap((d, s) => [run('gradprom', 0.003, s, 0.5 + d, 26 + psnrDiff + s * 0.1), run('joint', 0.003, s, 0.5, 26 + s * 0.1)]);
}

describe('writeCompareReport', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gradprom-compare-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('tables give mean ± std and per-seed rows; compare.json carries groups, pairs, fronts and summaries', async () => {
    const runs = [0, 1, 2].flatMap((s) => [
      run('gradprom', 0.003, s, 0.6 + s / 100, 25.7 + s / 10),
      run('ip-only', 0.003, s, 0.5 + s / 100, 26.2 + s / 10),
    ]);
    const r = await writeCompareReport(dir, runs);
    expect(r.groups.map((g) => [g.policy, g.n])).toEqual([
      ['ip-only', 3],
      ['gradprom', 3],
    ]);
    const md = await readFile(join(dir, 'compare.md'), 'utf8');
    expect(md).toBe(r.markdown);
    expect(md).toContain('| `gradprom` | 0.003 | 3 | 25.80 ± 0.10 | 0.8000 ± 0.0000 | 61.0 ± 1.0 | 71.0 ± 1.0 | 64.0 ± 0.0 |');
    // Reference rows count seeds (3), not runs (6); ip-only has no λ.
    expect(md).toContain('| *degraded input* | – | 3 | 11.90 ± 0.00 | 0.1200 ± 0.0000 | 39.0 ± 0.0 |');
    expect(md).toContain('| *clean input* | – | 3 | – | – | 100.0 ± 0.0 |');
    expect(md).toContain('| `ip-only` | – | 3 |');
    for (const s of runs) expect(md).toContain(`| ${s.name} | \`${s.policy}\` | ${s.usesVr ? '0.003' : '–'} | ${s.seed} |`);
    // Every seed's difference is exactly +10 points: the t test is certain, but 3 seeds' sign-flip test cannot go below 0.25.
    expect(md).toContain(
      'fixed-VR accuracy +10.0 points: no ordering shown (95 % interval over seeds (no per-image results) [+10.0, +10.0]; paired t p < 0.0001, sign-flip p = 0.250 (exact); Holm-adjusted: t p < 0.0001, sign-flip p = 0.500)',
    );
    expect(md).toContain('*secondary* SSIM');
    expect(md).toContain('**This design cannot state any ordering.** With 3 seeds');
    expect(md).toContain('standard error of ±1.6 points');
    expect(r.pairs.find((x) => x.metric === 'fixed')?.verdict).toBe('no-difference');
    const svg = await readFile(join(dir, 'tradeoff.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('PSNR (dB)');
    const json = JSON.parse(await readFile(join(dir, 'compare.json'), 'utf8'));
    expect(json.groups).toHaveLength(2);
    expect(json.summaries).toHaveLength(6);
    expect(json.pairs.find((p: { metric: string }) => p.metric === 'fixed').t.n).toBe(3);
    expect(json.fronts.length).toBeGreaterThan(0);
  });

  test('a difference that holds zero states no ordering; the detectable difference says how small the design is', async () => {
    const r = await writeCompareReport(dir, fiveSeeds([0.02, -0.01, 0.03, -0.02, 0.01]), { differences: { fixed: 1 } });
    const fixed = r.pairs.find((x) => x.metric === 'fixed')!;
    expect(fixed.verdict).toBe('no-difference');
    expect(fixed.mean).toBeCloseTo(0.006, 12);
    expect(fixed.endpoint).toBe('primary');
    expect(fixed.adjusted!.signFlip).toBeGreaterThanOrEqual(fixed.signFlip!.p);
    // sd 2.07 points over 5 seeds: the paired t test detects 1.682 · 2.07 = 3.5 points with 80 % power.
    expect(fixed.detectable! * 100).toBeCloseTo(1.682 * Math.sqrt(4.3), 1);
    expect(fixed.text).toContain('detectable with 80 % power over 5 seeds: ±3.5 points');
    expect(r.markdown).toContain('With 5 seeds the exact sign-flip test');
    expect(r.markdown).toMatch(
      /\| `gradprom` − `joint` λ 0\.003 \| fixed-VR accuracy \| 5 \| 2\.07 \| \+0\.6 \| ±3\.5 \| yes \| 1 points: \d+ \|/,
    );
  });

  test('eight seeds that agree show an ordering after Holm; secondary endpoints never do', async () => {
    const diffs = [0.1, 0.12, 0.09, 0.11, 0.1, 0.13, 0.08, 0.1];
    const r = await writeCompareReport(dir, fiveSeeds(diffs));
    const fixed = r.pairs.find((x) => x.metric === 'fixed')!;
    expect(fixed.signFlip!.p).toBe(2 / 256);
    expect(fixed.adjusted!.signFlip).toBeCloseTo(4 / 256, 12); // a family of two: PSNR and fixed VR
    expect(fixed.verdict).toBe('a-higher');
    expect(fixed.text).toContain('`gradprom` higher');
    expect(r.pairs.find((x) => x.metric === 'ssim')!.verdict).toBe('secondary');
    // Declared otherwise, the family changes: SSIM alone is primary, and the fixed VR becomes secondary.
    const ssimOnly = await writeCompareReport(dir, fiveSeeds(diffs), { primary: ['ssim'] });
    expect(ssimOnly.pairs.find((x) => x.metric === 'fixed')!.verdict).toBe('secondary');
  });

  test('primary_pairs gradprom: only pairs with gradprom form the family, so it shrinks and the rest are secondary', async () => {
    const diffs = [0.1, 0.12, 0.09, 0.11, 0.1, 0.13, 0.08, 0.1];
    const runs = [...fiveSeeds(diffs), ...diffs.map((_, s) => run('ip-only', 0, s, 0.45, 25 + s * 0.1))];
    const all = await writeCompareReport(dir, runs);
    const mine = await writeCompareReport(dir, runs, { primaryPairs: 'gradprom' });
    const fixed = (r: typeof all, b: string) => r.pairs.find((x) => x.metric === 'fixed' && x.a === 'gradprom' && x.b === b)!;
    // All pairs: 3 pairs × 2 endpoints = 6; gradprom's pairs only: 2 × 2 = 4.
    expect(fixed(all, 'joint').adjusted!.signFlip).toBeCloseTo((6 * 2) / 256, 12);
    expect(fixed(mine, 'joint').adjusted!.signFlip).toBeCloseTo((4 * 2) / 256, 12);
    const jointVsIpOnly = mine.pairs.find((x) => x.metric === 'fixed' && x.a === 'joint' && x.b === 'ip-only')!;
    expect([jointVsIpOnly.endpoint, jointVsIpOnly.verdict]).toEqual(['secondary', 'secondary']);
    expect(mine.markdown).toContain('the pairs of gradprom with each other policy (other pairs are secondary)');
    // ip-only carries no λ, in the descent table too.
    expect(mine.markdown.split('## The descent property')[1]).toMatch(/\| `ip-only` \| – \| 8 \|/);
  });

  test('one seed gives no test and claims nothing', async () => {
    const r = await writeCompareReport(dir, [run('gradprom', 0.003, 0, 0.9, 20), run('joint', 0.003, 0, 0.1, 30)]);
    expect(r.pairs.every((x) => x.verdict === 'too-few-seeds')).toBe(true);
    expect(r.markdown).toContain('1 paired seed(s): no test, no ordering claimed');
    expect(r.markdown).not.toMatch(/` higher/);
  });

  test('the interval covers seeds and test images: noisy images widen it, and it is reproducible', async () => {
    const runs = fiveSeeds([0.01, 0.011, 0.012, 0.009, 0.01], 0.05);
    const perImage = new Map<string, PerImage>();
    for (const s of runs) {
      // Per image, gradprom's PSNR swings ±3 dB around its mean where joint's is flat: 40 images cannot pin +0.05 dB.
      perImage.set(s.name, s.policy === 'gradprom' ? images(Number(s.final.psnr), 3) : images(Number(s.final.psnr), 0));
    }
    const r = await writeCompareReport(dir, runs, { perImage });
    const psnr = r.pairs.find((x) => x.metric === 'psnr')!;
    expect(psnr.t!.lo).toBeGreaterThan(0); // over seeds alone: always +0.05 dB
    expect(psnr.interval!.lo).toBeLessThan(0);
    expect([psnr.interval!.seeds, psnr.interval!.images]).toEqual([5, 40]);
    expect(psnr.text).toMatch(/^PSNR \+0\.05 dB: no ordering shown \(95 % interval over seeds and test images \[−0\.\d\d, \+0\.\d\d\];/);
    const again = await writeCompareReport(dir, runs, { perImage });
    expect(again.pairs).toEqual(r.pairs);
    for (const s of runs) perImage.set(s.name, images(Number(s.final.psnr), 0.01));
    const quiet = await writeCompareReport(dir, runs, { perImage });
    expect(quiet.pairs.find((x) => x.metric === 'psnr')!.interval!.lo).toBeGreaterThan(0);
  });

  test('with a frozen VR there is no co-trained column or endpoint', async () => {
    const runs = fiveSeeds([0.01, 0.02, 0.03, 0.02, 0.01]).map((s) => ({ ...s, vrMode: 'frozen' }));
    const r = await writeCompareReport(dir, runs);
    expect(r.markdown).not.toContain('Co-trained VR');
    expect(r.pairs.some((p) => p.metric === 'cotrained')).toBe(false);
    expect(r.fronts.every((f) => f.reader === 'fixed')).toBe(true);
    expect(r.markdown).toContain('there is no co-trained VR');
  });

  test('fronts over λ: a policy better in both coordinates at every λ dominates; a trade-off dominates neither way', async () => {
    const runs: RunSummary[] = [];
    for (let s = 0; s < 6; s++) {
      const j = s / 1000; // a small, shared seed effect
      runs.push(run('ip-only', 0, s, 0.5 + j, 26.4 + j));
      for (const [lam, dPsnr, dAcc] of [
        [0.001, -0.1, 0.02],
        [0.01, -0.6, 0.06],
      ] as const) {
        runs.push(run('joint', lam, s, 0.5 + dAcc + j, 26.4 + dPsnr + j));
        runs.push(run('gradprom', lam, s, 0.5 + dAcc + 0.01 + j, 26.4 + dPsnr + 0.05 + j + s / 10000));
      }
    }
    const r = await writeCompareReport(dir, runs);
    const gj = r.fronts.find((f) => f.a === 'gradprom' && f.b === 'joint' && f.reader === 'fixed')!;
    expect(gj.verdict).toBe('a-dominates');
    expect(gj.text).toContain('the `gradprom` front dominates (unadjusted; `gradprom` dominates 2 of 2 `joint` point(s)');
    const ji = r.fronts.find((f) => f.a === 'joint' && f.b === 'ip-only' && f.reader === 'fixed')!;
    expect(ji.verdict).toBe('neither'); // more accuracy, less PSNR: a trade-off, not a domination
    expect(r.markdown).toContain('## Trade-off fronts');
    expect(await readFile(join(dir, 'tradeoff.svg'), 'utf8')).toContain('ip-only');
  });

  test('failed runs are data: their reasons, the failure rate per policy and λ, and the pairs that lost seeds', async () => {
    const runs = fiveSeeds([0.01, 0.02, 0.03, 0.02, 0.01]).filter((s) => !(s.policy === 'joint' && s.seed === 4));
    const failed = [
      {
        name: 'joint-l0.003-s4',
        policy: 'joint',
        lambda: 0.003,
        lambdaMode: 'plain',
        seed: 4,
        reason: 'step 12: 4 consecutive steps skipped',
      },
    ];
    const r = await writeCompareReport(dir, runs, { failed });
    expect(r.failed).toEqual(failed);
    expect(r.markdown).toContain('**1 run(s) failed on their own**');
    expect(r.markdown).toContain('| `joint` | 0.003 | 1 of 5 (20 %) | 4 |');
    expect(r.markdown).toContain('- `joint-l0.003-s4`: step 12: 4 consecutive steps skipped');
    expect(r.markdown).toContain('- `gradprom` − `joint`, λ = 0.003: seed(s) 4 lost (`joint` failed)');
    expect(r.pairs.find((p) => p.metric === 'psnr')!.seeds).toEqual([0, 1, 2, 3]);
  });

  test('the descent table pools negative steps over seeds', async () => {
    const a = run('joint', 0.003, 0, 0.5, 26);
    const b = run('joint', 0.003, 1, 0.5, 26);
    a.descent = { planned: descentStats([0.5, -0.2, 0.9, 0.1]), taken: descentStats([0.4, -0.1, -0.3, 0.2]) };
    b.descent = { planned: descentStats([0.5, 0.2, 0.9, 0.1]), taken: descentStats([0.4, 0.1, 0.3, 0.2]) };
    const r = await writeCompareReport(dir, [a, b]);
    expect(r.groups[0]!.descent.planned!.negative).toBe(1);
    expect(r.markdown).toContain('| `joint` | 0.003 | 2 | 1 of 8 (12.50%) |');
    expect(r.markdown).toContain('| 2 of 8 (25.00%) |');
    expect(await readFile(join(dir, 'descent.svg'), 'utf8')).toContain('<svg');
  });

  test('segment comparisons read Dice; missing runs are listed', async () => {
    const r = await writeCompareReport(
      dir,
      [
        run('gradprom', 0.003, 0, 0.8, 25, 'segment'),
        run('gradprom', 0.003, 1, 0.82, 25.1, 'segment'),
        run('ip-only', 0.003, 0, 0.7, 26, 'segment'),
        run('ip-only', 0.003, 1, 0.71, 26.1, 'segment'),
      ],
      { missing: ['joint-l0.003-s0'] },
    );
    expect(r.groups[1]?.fixedEnhanced.mean).toBeCloseTo(0.81, 12);
    expect(r.markdown).toContain('Fixed VR, enhanced (Dice %)');
    expect(r.markdown).toContain('fixed-VR Dice +10.5 points');
    expect(r.markdown).not.toContain('standard error');
    expect(r.markdown).toContain('**Incomplete: 1 planned run(s) not finished**: `joint-l0.003-s0`');
    expect(r.missing).toEqual(['joint-l0.003-s0']);
  });

  test("a user's baseline that declares usesVr: false is paired like ip-only: second of a pair, its one group serving every λ", async () => {
    const baseline = (seed: number): RunSummary => ({ ...run('plain-denoiser', 0, seed, 0.5, 26.4), usesVr: false });
    const r = await writeCompareReport(dir, [
      run('gradprom', 0.001, 0, 0.5, 26),
      run('gradprom', 0.01, 0, 0.6, 25),
      baseline(0),
      baseline(1),
    ]);
    const pairs = new Set(r.pairs.map((x) => `${x.a}/${x.b}@${x.lambda}`));
    expect([...pairs].sort()).toEqual(['gradprom/plain-denoiser@0.001', 'gradprom/plain-denoiser@0.01']);
    expect(r.markdown).toContain('(plain-denoiser has no λ)');
  });
});

describe('signed', () => {
  test('explicit signs, and a tiny nonzero difference in exponent form rather than a bare 0', () => {
    expect(signed(0.5, 2)).toBe('+0.50');
    expect(signed(-0.5, 2)).toBe('−0.50');
    expect(signed(0, 1)).toBe('0.0');
    expect(signed(9.5e-6, 4)).toBe('+9.5e-6');
    expect(signed(-3e-9, 2)).toBe('−3.0e-9');
  });
});
