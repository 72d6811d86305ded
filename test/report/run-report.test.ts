import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRunReport, type MetricRecord, type RunMeta, type StepRecord } from '../../src/report/index.js';

/** A step record with defaults. */
function step(n: number, over: Partial<StepRecord> = {}): StepRecord {
  return {
    type: 'step',
    step: n,
    loss_ip: 0.05 / (1 + n / 50),
    loss_vr: 1.2 / (1 + n / 100),
    cos: 0.05 + n / 2000,
    gate: n % 3 !== 0,
    gate_rate: n % 3 !== 0 ? 1 : 0,
    ip_norm: 0.01,
    vr_norm: 5,
    lambda_eff: 0.003,
    lr_ip: 1e-3,
    lr_vr: 1e-3,
    skipped: false,
    time_ms: 100 + (n % 7),
    ...over,
  };
}

const evalMetrics = {
  n: 1000,
  psnr: 26.3125,
  ssim: 0.81234,
  psnr_degraded: 11.9,
  ssim_degraded: 0.12341,
  ssim_convention: 'gaussian 11x11, sigma 1.5, data range 1',
  fixed_clean_acc: 1,
  fixed_degraded_acc: 0.39,
  fixed_enhanced_acc: 0.5234,
  fixed_enhanced_bacc: 0.52,
  fixed_enhanced_f1: 0.51,
  fixed_enhanced_auc: 0.7712,
  cotrained_clean_acc: 0.98,
  cotrained_enhanced_acc: 0.601,
};

function records(steps = 200): MetricRecord[] {
  const rs: MetricRecord[] = [{ type: 'pretrain', loss: 0.05, accuracy: 0.99 }];
  for (let n = 0; n < steps; n++) {
    if (n % 50 === 0) rs.push({ type: 'eval', step: n, split: 'val', ...evalMetrics, psnr: 20 + n / 50 });
    rs.push(step(n));
  }
  rs.push({ type: 'eval', step: steps, split: 'test', ...evalMetrics });
  return rs;
}

const meta = (dir: string, over: Partial<RunMeta> = {}): RunMeta => ({
  runDir: dir,
  name: 'gradprom-l0.003-s0',
  policy: 'gradprom',
  usesVr: true,
  lambda: 0.003,
  lambdaMode: 'plain',
  seed: 0,
  steps: 200,
  task: 'classify',
  wallSeconds: 21.4,
  config: {},
  ...over,
});

describe('writeRunReport', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gradprom-run-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('writes report.md, summary.json and every plot', async () => {
    const summary = await writeRunReport(dir, meta(dir), records());
    expect((await readdir(join(dir, 'plots'))).sort()).toEqual([
      'cosine-hist.svg',
      'gate-rate.svg',
      'loss.svg',
      'quality.svg',
      'recognition.svg',
    ]);
    for (const f of await readdir(join(dir, 'plots'))) {
      const svg = await readFile(join(dir, 'plots', f), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
    }
    const json = JSON.parse(await readFile(join(dir, 'summary.json'), 'utf8'));
    expect(json).toEqual(JSON.parse(JSON.stringify(summary)));
    const md = await readFile(join(dir, 'report.md'), 'utf8');
    expect(md).toContain('# Run gradprom-l0.003-s0');
    expect(md).toContain('λ = 0.003');
    expect(md).toContain('| PSNR (dB) | 11.90 | 26.31 |');
    expect(md).toContain('| SSIM | 0.1234 | 0.8123 |');
    expect(md).toContain('| Fixed clean-trained VR, accuracy | 100.0% | 39.0% | 52.3% |');
    expect(md).toContain('| Co-trained VR, accuracy | 98.0% | – | 60.1% |');
    expect(md).toContain('AUC 0.771');
    expect(md).toContain('| Gate-open rate (mean over non-skipped steps) | 66.5% |');
    expect(md).toContain('| Skipped steps | 0 of 200 |');
    expect(md).toContain('SSIM convention: gaussian 11x11');
    expect(md).toContain('(plots/loss.svg)');
    expect(md).toContain('test split, step 200, 1000 images');
  });

  test('plots are readable: titles and axis labels with units', async () => {
    await writeRunReport(dir, meta(dir), records());
    const quality = await readFile(join(dir, 'plots', 'quality.svg'), 'utf8');
    expect(quality).toContain('PSNR (dB)');
    const loss = await readFile(join(dir, 'plots', 'loss.svg'), 'utf8');
    expect(loss).toContain('Training losses');
    expect(loss).toContain('moving average over 4 steps');
  });

  test('ip-only without evaluations: no quality plot, gate-rate still drawn', async () => {
    const rs = Array.from({ length: 30 }, (_, n) => step(n, { gate: false, gate_rate: 0, cos: NaN, vr_norm: 0 }));
    const s = await writeRunReport(dir, meta(dir, { policy: 'ip-only', usesVr: false }), rs);
    const plots = (await readdir(join(dir, 'plots'))).sort();
    expect(plots).toEqual(['gate-rate.svg', 'loss.svg']);
    expect(s.gateOpenRate).toBe(0);
    const md = await readFile(join(dir, 'report.md'), 'utf8');
    expect(md).toContain('No evaluation was recorded.');
    expect(md).not.toContain('quality.svg');
  });

  test('segment runs report Dice and IoU', async () => {
    const rs: MetricRecord[] = [
      step(0),
      step(1),
      {
        type: 'eval',
        step: 2,
        split: 'test',
        psnr: 25,
        ssim: 0.8,
        cotrained_clean_dice: 0.9,
        cotrained_enhanced_dice: 0.85,
        cotrained_enhanced_iou: 0.74,
      },
    ];
    const s = await writeRunReport(dir, meta(dir, { task: 'segment' }), rs);
    expect(s.recognitionKey).toBe('cotrained_enhanced_dice');
    const md = await readFile(join(dir, 'report.md'), 'utf8');
    expect(md).toContain('| Co-trained VR, Dice | 90.0% | – | 85.0% |');
    expect(md).toContain('| Co-trained VR, IoU | – | – | 74.0% |');
    expect(md).toContain('No fixed VR was evaluated');
  });
});
