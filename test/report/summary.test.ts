import { fmtMeanStd, mean, median, stat, std, summarizeRun, type MetricRecord, type RunMeta } from '../../src/report/index.js';

import { stepRecord } from '../helpers.js';
const step = stepRecord;

const meta: RunMeta = {
  runDir: '/tmp/x',
  name: 'gp-s0',
  policy: 'gradprom',
  usesVr: true,
  lambda: 0.003,
  lambdaMode: 'plain',
  seed: 0,
  steps: 20,
  task: 'classify',
  wallSeconds: 12.5,
  config: {},
};

/** 20 steps: cos = step/100, gate open on even steps, ratio (step+1)/1000, step 5 skipped with outlandish values. */
function records(): MetricRecord[] {
  const rs: MetricRecord[] = [];
  for (let n = 0; n < 20; n++) {
    rs.push(
      step(n, { cos: n / 100, gate_rate: n % 2 === 0 ? 1 : 0, gate: n % 2 === 0, ip_norm: (n + 1) / 1000, vr_norm: 1, time_ms: 100 + n }),
    );
  }
  rs[5] = step(5, { skipped: true, cos: 99, gate_rate: 1, ip_norm: 1e9, vr_norm: 1, time_ms: 105 });
  rs.push({ type: 'eval', step: 10, split: 'val', psnr: 20, fixed_enhanced_acc: 0.4 });
  rs.push({ type: 'eval', step: 20, split: 'test', psnr: 26, fixed_enhanced_acc: 0.5, cotrained_enhanced_acc: 0.6, n: 1000 });
  rs.push({ type: 'eval', step: 20, split: 'val', psnr: 25 });
  return rs;
}

describe('summarizeRun', () => {
  const s = summarizeRun(records(), meta);

  test('gate-open rate is the mean over non-skipped steps', () => {
    expect(s.gateOpenRate).toBeCloseTo(10 / 19, 12);
  });

  test('cosine early and late average the first and last 10% of non-skipped steps', () => {
    expect(s.cosEarly).toBeCloseTo(0.005, 12);
    expect(s.cosLate).toBeCloseTo(0.185, 12);
  });

  test('norm ratio is the median of ip_norm / vr_norm over non-skipped steps', () => {
    expect(s.normRatio).toBeCloseTo(0.011, 12);
  });

  test('skips, step time, final metrics and recognition key', () => {
    expect(s.skipped).toBe(1);
    expect(s.stepMsMedian).toBe(109.5);
    expect(s.final.split).toBe('test');
    expect(s.final.psnr).toBe(26);
    expect(s.final.type).toBeUndefined();
    expect(s.recognitionKey).toBe('fixed_enhanced_acc');
    expect(s.wallSeconds).toBe(12.5);
  });

  test('falls back to the last val eval and to the co-trained metric (segment)', () => {
    const rs: MetricRecord[] = [
      step(0),
      { type: 'eval', step: 0, split: 'val', cotrained_enhanced_dice: 0.7 },
      { type: 'eval', step: 5, split: 'val', cotrained_enhanced_dice: 0.8 },
    ];
    const seg = summarizeRun(rs, { ...meta, task: 'segment' });
    expect(seg.final.step).toBe(5);
    expect(seg.recognitionKey).toBe('cotrained_enhanced_dice');
  });

  test('no steps and no evals give nulls, not NaN', () => {
    const e = summarizeRun([], meta);
    expect([e.gateOpenRate, e.cosEarly, e.cosLate, e.normRatio, e.stepMsMedian]).toEqual([null, null, null, null, null]);
    expect(e.final).toEqual({});
  });
});

describe('stats', () => {
  test('mean, sample std, median', () => {
    expect(mean([1, 2, 3])).toBe(2);
    expect(std([1, 2, 3])).toBe(1);
    expect(std([5])).toBe(0);
    expect(median([3, 1, 2, 4])).toBe(2.5);
  });

  test('mean ± std formatting', () => {
    expect(fmtMeanStd(stat([0.6, 0.61, 0.62]), 1, 100)).toBe('61.0 ± 1.0');
    expect(fmtMeanStd(stat([26.31]), 2)).toBe('26.31');
    expect(fmtMeanStd(stat([null, NaN]), 2)).toBe('–');
  });
});
