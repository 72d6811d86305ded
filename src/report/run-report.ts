/** A run folder's report: report.md, summary.json and plots/*.svg. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { cosineHistogram, descentHistogram, gateRatePlot, lossPlot, qualityPlot, recognitionPlot, renderSvg } from './plots.js';
import { latestRecords, type EvalRecord, type MetricRecord } from './records.js';
import { evalsOf, metricOf, recognitionUnit, stepsOf, summarizeRun, type RunMeta, type RunSummary } from './summary.js';
import type { DescentStats } from './descent.js';
import { DASH, fmt, fmtPercent, fmtSig } from './stats.js';

/** The plots of a run, by file name (without .svg) and caption, in report order. */
export const RUN_PLOTS = [
  ['loss', 'Training losses'],
  ['quality', 'PSNR and SSIM per evaluation'],
  ['recognition', 'Recognition per evaluation'],
  ['cosine-hist', 'Histogram of the per-step cosine'],
  ['gate-rate', 'Gate-open rate over training'],
  ['descent-hist', 'Histogram of the descent cosines (planned and taken)'],
] as const;

/** Build the plot specifications a run's records support (absent data: no entry). */
export function runPlotSpecs(records: readonly MetricRecord[], task: 'classify' | 'segment'): Map<string, TopLevelSpec> {
  const steps = stepsOf(records);
  const val = evalsOf(records, 'val');
  const evals: EvalRecord[] = val.length ? val : evalsOf(records, 'test');
  const specs: Array<[string, TopLevelSpec | null]> = [
    ['loss', lossPlot(steps)],
    ['quality', qualityPlot(evals)],
    ['recognition', recognitionPlot(evals, task)],
    ['cosine-hist', cosineHistogram(steps)],
    ['gate-rate', gateRatePlot(steps)],
    ['descent-hist', descentHistogram(steps)],
  ];
  return new Map(specs.filter((e): e is [string, TopLevelSpec] => e[1] !== null));
}

/** A Markdown table from a header row and body rows (first column left-aligned, the rest right). */
export function mdTable(header: string[], rows: string[][]): string {
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'));
  return [header, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** Results section: image quality and recognition read by both VRs. */
function resultsSection(s: RunSummary): string[] {
  const f = s.final;
  if (Object.keys(f).length === 0) return ['## Results', '', 'No evaluation was recorded.'];
  const n = metricOf(f, 'n');
  const out = [
    `## Results (${String(f.split)} split, step ${String(f.step)}${n !== null ? `, ${n} images` : ''})`,
    '',
    mdTable(
      ['Image quality', 'Degraded', 'Enhanced'],
      [
        ['PSNR (dB)', fmt(metricOf(f, 'psnr_degraded'), 2), fmt(metricOf(f, 'psnr'), 2)],
        ['SSIM', fmt(metricOf(f, 'ssim_degraded'), 4), fmt(metricOf(f, 'ssim'), 4)],
      ],
    ),
    '',
  ];
  const pct = (k: string): string => fmtPercent(metricOf(f, k));
  const units: Array<[string, string]> =
    recognitionUnit(s.task) === 'dice'
      ? [
          ['dice', 'Dice'],
          ['iou', 'IoU'],
        ]
      : [['acc', 'accuracy']];
  const rows: string[][] = [];
  for (const [u, label] of units) {
    rows.push([`Fixed clean-trained VR, ${label}`, pct(`fixed_clean_${u}`), pct(`fixed_degraded_${u}`), pct(`fixed_enhanced_${u}`)]);
    rows.push([`Co-trained VR, ${label}`, pct(`cotrained_clean_${u}`), DASH, pct(`cotrained_enhanced_${u}`)]);
  }
  out.push(mdTable(['Recognition', 'Clean', 'Degraded', 'Enhanced'], rows));
  const extra: string[] = [];
  if (metricOf(f, 'fixed_enhanced_bacc') !== null) extra.push(`balanced accuracy ${pct('fixed_enhanced_bacc')}`);
  if (metricOf(f, 'fixed_enhanced_f1') !== null) extra.push(`macro F1 ${pct('fixed_enhanced_f1')}`);
  if (metricOf(f, 'fixed_enhanced_auc') !== null) extra.push(`AUC ${fmt(metricOf(f, 'fixed_enhanced_auc'), 3)}`);
  if (extra.length) out.push('', `Fixed VR on enhanced images: ${extra.join(', ')}.`);
  if (metricOf(f, `fixed_enhanced_${recognitionUnit(s.task)}`) === null) {
    out.push('', 'No fixed VR was evaluated in this run; recognition is read by the co-trained VR only.');
  }
  return out;
}

/** Training diagnostics section: gate, cosine, gradient norms, skips and timing. */
function diagnosticsSection(s: RunSummary): string[] {
  const rows = [
    ['Gate-open rate (mean over non-skipped steps)', fmtPercent(s.gateOpenRate)],
    ['Cosine(g_IP, g_VR), first 10% of steps', fmt(s.cosEarly, 3)],
    ['Cosine(g_IP, g_VR), last 10% of steps', fmt(s.cosLate, 3)],
    ['Median ‖g_IP‖ / ‖g_VR‖', fmtSig(s.normRatio)],
    ...descentRows('cos(g_IP, g), merged gradient handed to the optimizer', s.descent.planned),
    ...descentRows('cos(−g_IP, Δθ), step the optimizer took', s.descent.taken),
    ['Skipped steps', `${s.skipped} of ${s.loggedSteps}`],
    ['Median step time (ms)', fmt(s.stepMsMedian, 1)],
    ['Wall time (s)', fmt(s.wallSeconds, 0)],
  ];
  const out = ['## Training', '', mdTable(['Quantity', 'Value'], rows)];
  if (s.pretrain) {
    out.push('', `VR pre-training on clean images: loss ${fmtSig(s.pretrain.loss, 4)}, accuracy ${fmtPercent(s.pretrain.accuracy)}.`);
  }
  if (s.resumedAt.length) out.push('', `Resumed from a checkpoint at step ${s.resumedAt.join(', ')}.`);
  return out;
}

/** Table rows for one descent cosine: the share of negative steps (uphill for IP's loss) and its spread. */
function descentRows(label: string, d: DescentStats | null): string[][] {
  if (!d) return [];
  return [
    [`${label}: negative on`, `${d.negative} of ${d.steps} steps (${fmtPercent(d.negativeRate, 2)})`],
    [`${label}: min / 5% / median / 95%`, [d.min, d.p05, d.median, d.p95].map((x) => fmt(x, 3)).join(' / ')],
  ];
}

/** The Markdown text of a run report; `plots` lists the plot files written, null when plots were switched off. */
export function runMarkdown(s: RunSummary, plots: readonly string[] | null): string {
  const lines = [
    `# Run ${s.name}`,
    '',
    `Policy \`${s.policy}\` · λ = ${s.lambda} · λ mode \`${s.lambdaMode}\` · seed ${s.seed} · ${s.steps} steps · task ${s.task}`,
    '',
    ...resultsSection(s),
    '',
    ...diagnosticsSection(s),
    '',
  ];
  const conv = s.final.ssim_convention;
  if (conv !== undefined) lines.push(`SSIM convention: ${String(conv)}.`, '');
  const { device, peakMemoryMb } = s.machine;
  if (device !== null) lines.push(`Device: ${device} · peak memory ${fmt(peakMemoryMb ?? NaN, 0)} MiB (at the final evaluation).`, '');
  lines.push('## Plots', '');
  if (plots === null) lines.push('No plot: `output.plots` is off.');
  else if (plots.length === 0) lines.push('No plot: the run recorded no steps or evaluations.');
  for (const [file, caption] of RUN_PLOTS) if (plots?.includes(file)) lines.push(`- [${caption}](plots/${file}.svg)`);
  return `${lines.join('\n')}\n`;
}

/** Write report.md, summary.json and (unless `plots` is false) plots/*.svg into `runDir`; resolves with the run's summary. */
export async function writeRunReport(
  runDir: string,
  meta: RunMeta,
  records: readonly MetricRecord[],
  { plots = true }: { plots?: boolean } = {},
): Promise<RunSummary> {
  const live = latestRecords(records);
  const summary = summarizeRun(live, meta);
  const specs = plots ? runPlotSpecs(live, meta.task) : new Map<string, never>();
  const written: string[] = [];
  await mkdir(specs.size ? join(runDir, 'plots') : runDir, { recursive: true });
  for (const [file, spec] of specs) {
    await writeFile(join(runDir, 'plots', `${file}.svg`), await renderSvg(spec));
    written.push(file);
  }
  await writeFile(join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  await writeFile(join(runDir, 'report.md'), runMarkdown(summary, plots ? written : null));
  return summary;
}
