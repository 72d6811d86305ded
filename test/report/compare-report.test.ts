import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCompareReport, type RunSummary } from '../../src/report/index.js';

/** A run summary with a final test evaluation; `acc` and `psnr` vary per test case. */
function run(
  policy: string,
  lambda: number,
  seed: number,
  acc: number,
  psnr: number,
  task: 'classify' | 'segment' = 'classify',
): RunSummary {
  const u = task === 'segment' ? 'dice' : 'acc';
  return {
    name: `${policy}-l${lambda}-s${seed}`,
    policy,
    usesVr: policy !== 'ip-only',
    lambda,
    lambdaMode: 'plain',
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
  };
}

describe('writeCompareReport', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gradprom-compare-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a clear difference over three seeds is stated, with mean ± std and per-seed rows', async () => {
    const runs = [
      run('gradprom', 0.003, 0, 0.6, 25.7),
      run('gradprom', 0.003, 1, 0.61, 25.8),
      run('gradprom', 0.003, 2, 0.62, 25.9),
      run('ip-only', 0.003, 0, 0.5, 26.3),
      run('ip-only', 0.003, 1, 0.51, 26.4),
      run('ip-only', 0.003, 2, 0.52, 26.2),
    ];
    const r = await writeCompareReport(dir, runs);
    expect(r.groups.map((g) => [g.policy, g.n])).toEqual([
      ['ip-only', 3],
      ['gradprom', 3],
    ]);
    const md = await readFile(join(dir, 'compare.md'), 'utf8');
    expect(md).toBe(r.markdown);
    expect(md).toContain('| `gradprom` | 0.003 | 3 | 25.80 ± 0.10 | 0.8000 ± 0.0000 | 61.0 ± 1.0 | 71.0 ± 1.0 | 64.0 ± 0.0 |');
    expect(md).toContain('| *degraded input* | – | 6 | 11.90 ± 0.00 | 0.1200 ± 0.0000 | 39.0 ± 0.0 |');
    expect(md).toContain('| *clean input* | – | 6 | – | – | 100.0 ± 0.0 |');
    for (const s of runs) expect(md).toContain(`| ${s.name} | \`${s.policy}\` | 0.003 | ${s.seed} |`);
    expect(md).toContain('fixed-VR accuracy +10.0 points (61.0 vs 51.0; combined seed spread 1.4): `gradprom` higher');
    expect(md).toContain('PSNR −0.50 dB (25.80 vs 26.30; combined seed spread 0.14): `ip-only` higher');
    expect(md).toContain('standard error of ±1.6 points');
    expect(md).toContain('about ±2.2 points');
    expect(r.readings.find((x) => x.metric === 'fixed')?.verdict).toBe('a-higher');
    const svg = await readFile(join(dir, 'tradeoff.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('PSNR (dB)');
    const json = JSON.parse(await readFile(join(dir, 'compare.json'), 'utf8'));
    expect(json.groups).toHaveLength(2);
    expect(json.summaries).toHaveLength(6);
  });

  test('a single seed claims no ordering', async () => {
    const r = await writeCompareReport(dir, [run('gradprom', 0.003, 0, 0.9, 20), run('joint', 0.003, 0, 0.1, 30)]);
    expect(r.markdown).toContain('single seed: no ordering claimed');
    expect(r.markdown).not.toMatch(/` higher/);
    expect(r.readings.every((x) => x.verdict === 'single-seed')).toBe(true);
    expect(r.markdown).toContain('| `gradprom` | 0.003 | 1 | 20.00 | 0.8000 | 90.0 |');
  });

  test('a difference within the seed spread claims no ordering', async () => {
    const r = await writeCompareReport(dir, [
      run('gradprom', 0.003, 0, 0.5, 26),
      run('gradprom', 0.003, 1, 0.6, 26.5),
      run('joint', 0.003, 0, 0.52, 26.1),
      run('joint', 0.003, 1, 0.56, 26.3),
    ]);
    expect(r.markdown).toContain('within the spread, no ordering claimed');
    expect(r.readings.find((x) => x.metric === 'fixed')?.verdict).toBe('within-spread');
  });

  test('an ordering smaller than the test-set standard error says so', async () => {
    const r = await writeCompareReport(dir, [
      run('gradprom', 0.003, 0, 0.6, 26),
      run('gradprom', 0.003, 1, 0.605, 26),
      run('joint', 0.003, 0, 0.59, 26),
      run('joint', 0.003, 1, 0.595, 26),
    ]);
    const fixed = r.readings.find((x) => x.metric === 'fixed');
    expect(fixed?.verdict).toBe('a-higher');
    expect(fixed?.text).toContain('but smaller than the test-set standard error of a difference, ±2.2 points');
  });

  test('pairs only at the same λ, and a λ sweep gives one group per λ', async () => {
    const r = await writeCompareReport(dir, [
      run('gradprom', 0.001, 0, 0.5, 26),
      run('gradprom', 0.01, 0, 0.6, 25),
      run('joint', 0.001, 0, 0.5, 26),
      run('joint', 0.01, 0, 0.55, 25.2),
      run('ip-only', 0, 0, 0.5, 26.4),
    ]);
    expect(r.groups.map((g) => `${g.policy}@${g.lambda}`)).toEqual([
      'ip-only@0',
      'joint@0.001',
      'joint@0.01',
      'gradprom@0.001',
      'gradprom@0.01',
    ]);
    const pairs = new Set(r.readings.map((x) => `${x.a}/${x.b}@${x.lambda}`));
    expect([...pairs].sort()).toEqual(['gradprom/ip-only@0.001', 'gradprom/ip-only@0.01', 'gradprom/joint@0.001', 'gradprom/joint@0.01']);
  });

  test("a user's baseline that declares usesVr: false is paired like ip-only: second of a pair, its one group serving every λ", async () => {
    const baseline = (seed: number): RunSummary => ({ ...run('plain-denoiser', 0, seed, 0.5, 26.4), usesVr: false });
    const r = await writeCompareReport(dir, [
      run('gradprom', 0.001, 0, 0.5, 26),
      run('gradprom', 0.01, 0, 0.6, 25),
      baseline(0),
      baseline(1),
    ]);
    const pairs = new Set(r.readings.map((x) => `${x.a}/${x.b}@${x.lambda}`));
    expect([...pairs].sort()).toEqual(['gradprom/plain-denoiser@0.001', 'gradprom/plain-denoiser@0.01']);
  });

  test('segment comparisons read Dice', async () => {
    const r = await writeCompareReport(dir, [
      run('gradprom', 0.003, 0, 0.8, 25, 'segment'),
      run('gradprom', 0.003, 1, 0.82, 25.1, 'segment'),
      run('ip-only', 0.003, 0, 0.7, 26, 'segment'),
      run('ip-only', 0.003, 1, 0.71, 26.1, 'segment'),
    ]);
    expect(r.groups[1]?.fixedEnhanced.mean).toBeCloseTo(0.81, 12);
    expect(r.markdown).toContain('Fixed VR, enhanced (Dice %)');
    expect(r.markdown).toContain('fixed-VR Dice +10.5 points');
    expect(r.markdown).not.toContain('standard error');
  });
});
