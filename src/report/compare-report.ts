/** A comparison of many runs (policies × λ × seeds): compare.md, compare.json, tradeoff.svg and descent.svg. */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { descentPlot, tradeoffPlot, type DescentSeries, type TradeoffPoint } from './compare-plots.js';
import {
  controlsSection,
  descentSection,
  designSection,
  frontsSection,
  pairedSection,
  type StatedDifferences,
} from './compare-sections.js';
import { makeComparison, type Comparison } from './comparison.js';
import { fmtRunDescent } from './descent.js';
import { compareFronts, frontsOf, type FrontComparison } from './fronts.js';
import { lambdaLabel, rank, type GroupSummary } from './groups.js';
import { tInterval } from './intervals.js';
import { pairedDifferences, pairsOf, type PairedDifference, type PairMetric } from './paired.js';
import type { PerImage } from './per-image.js';
import { renderSvg } from './plots.js';
import { mdTable } from './run-report.js';
import { metricOf, recognitionUnit, type RunSummary } from './summary.js';
import { DASH, fmt, fmtMeanStd, fmtSig, stat, type Stat } from './stats.js';

/** A planned run that failed on its own. */
export interface FailedRunInfo {
  name: string;
  policy: string;
  lambda: number;
  lambdaMode: string;
  seed: number;
  reason: string;
}

/** What writeCompareReport produced (compare.json holds the same, with the run summaries). */
export interface CompareResult {
  groups: GroupSummary[];
  pairs: PairedDifference[];
  fronts: FrontComparison[];
  /** Runs of the plan not finished (listed by `compare --report`). */
  missing: string[];
  /** Runs of the plan that failed on their own. */
  failed: FailedRunInfo[];
  markdown: string;
}

/** Inputs beside the summaries. */
export interface CompareReportOptions {
  /** Per-image test results by run name (for the bootstrap over test images). */
  perImage?: ReadonlyMap<string, PerImage>;
  /** Names of planned runs that have not finished. */
  missing?: readonly string[];
  /** Planned runs that failed on their own (e.g. diverged), with their reasons. */
  failed?: readonly FailedRunInfo[];
  /** The primary endpoints (config `compare.primary`). */
  primary?: readonly PairMetric[];
  /** Stated differences per endpoint in display units, for "seeds needed" (config `compare.differences`). */
  differences?: StatedDifferences;
  /** Pairs in the Holm family (config `compare.primary_pairs`). */
  primaryPairs?: 'all' | 'gradprom';
}

/** True when every run's VR was frozen: the co-trained VR is then the fixed one and has no column of its own. */
export function frozenVr(summaries: readonly RunSummary[]): boolean {
  return summaries.length > 0 && summaries.every((s) => s.vrMode === 'frozen');
}

/** A fraction as percent, keeping null. */
function pct(x: number | null): number | null {
  return x === null ? null : x * 100;
}

/** The tables: mean over seeds (with reference rows) and per seed. */
function tables(c: Comparison): string[] {
  const { groups, summaries } = c;
  const task = summaries[0]?.task ?? 'classify';
  const u = recognitionUnit(task);
  const name = u === 'dice' ? 'Dice' : 'accuracy';
  const mixed = new Set(groups.map((g) => g.lambdaMode)).size > 1;
  const cos = (e: Stat, l: Stat): string => `${fmtMeanStd(e, 3)} → ${fmtMeanStd(l, 3)}`;
  const frozen = frozenVr(summaries);
  const drop = <T>(cells: T[], at: number): T[] => (frozen ? cells.filter((_, i) => i !== at) : cells);
  const lam = (g: { usesVr: boolean; lambda: number; lambdaMode: string }): string => (g.usesVr ? lambdaLabel(g, mixed) : DASH);
  const rows = groups.map((g) =>
    drop(
      [
        `\`${g.policy}\``,
        lam(g),
        `${g.n}`,
        fmtMeanStd(g.psnr, 2),
        fmtMeanStd(g.ssim, 4),
        fmtMeanStd(g.fixedEnhanced, 1, 100),
        fmtMeanStd(g.cotrainedEnhanced, 1, 100),
        fmtMeanStd(g.gateOpenRate, 1, 100),
        cos(g.cosEarly, g.cosLate),
        g.normRatio.mean === null ? DASH : fmtSig(g.normRatio.mean),
      ],
      6,
    ),
  );
  // The reference rows read the test images once per seed (every run of a seed shares them): one value per seed.
  const bySeed = new Map(summaries.map((s) => [s.seed, s]));
  const ref = (k: string): Stat => stat([...bySeed.values()].map((s) => metricOf(s.final, k)));
  const seedCount = `${bySeed.size}`;
  const refRow = (label: string, cells: string[]): string[] => drop([label, DASH, seedCount, ...cells, DASH, DASH, DASH, DASH], 6);
  rows.push(
    refRow('*degraded input*', [
      fmtMeanStd(ref('psnr_degraded'), 2),
      fmtMeanStd(ref('ssim_degraded'), 4),
      fmtMeanStd(ref(`fixed_degraded_${u}`), 1, 100),
    ]),
  );
  rows.push(refRow('*clean input*', [DASH, DASH, fmtMeanStd(ref(`fixed_clean_${u}`), 1, 100)]));
  const seedRows = [...summaries]
    .sort(
      (x, y) =>
        rank(x.policy) - rank(y.policy) ||
        x.policy.localeCompare(y.policy) ||
        x.lambdaMode.localeCompare(y.lambdaMode) ||
        x.lambda - y.lambda ||
        x.seed - y.seed,
    )
    .map((s) =>
      drop(
        [
          s.name,
          `\`${s.policy}\``,
          lam(s),
          `${s.seed}`,
          fmt(metricOf(s.final, 'psnr'), 2),
          fmt(metricOf(s.final, 'ssim'), 4),
          fmt(pct(metricOf(s.final, `fixed_enhanced_${u}`)), 1),
          fmt(pct(metricOf(s.final, `cotrained_enhanced_${u}`)), 1),
          fmt(pct(s.gateOpenRate), 1),
          `${fmt(s.cosEarly, 3)} → ${fmt(s.cosLate, 3)}`,
          fmtSig(s.normRatio),
          fmtRunDescent(s.descent?.planned ?? null),
          fmtRunDescent(s.descent?.taken ?? null),
          `${s.skipped}`,
          fmt(s.stepMsMedian, 1),
        ],
        7,
      ),
    );
  const head = drop(
    [
      'Policy',
      'λ',
      'n',
      'PSNR (dB)',
      'SSIM',
      `Fixed VR, enhanced (${name} %)`,
      `Co-trained VR, enhanced (${name} %)`,
      'Gate open (%)',
      'cos early → late',
      '‖g_IP‖/‖g_VR‖ (median)',
    ],
    6,
  );
  const seedHead = drop(
    [
      'Run',
      'Policy',
      'λ',
      'Seed',
      'PSNR (dB)',
      'SSIM',
      'Fixed VR, enhanced (%)',
      'Co-trained VR, enhanced (%)',
      'Gate open (%)',
      'cos early → late',
      '‖g_IP‖/‖g_VR‖',
      'Planned: negative · median',
      'Taken: negative · median',
      'Skipped',
      'Step (ms)',
    ],
    7,
  );
  return ['## Mean over seeds', '', mdTable(head, rows), '', '## Per seed', '', mdTable(seedHead, seedRows)];
}

/** The Markdown text of a comparison. */
export function compareMarkdown(
  c: Comparison,
  pairs: readonly PairedDifference[],
  fronts: readonly FrontComparison[],
  plotted: { tradeoff: boolean; descent: boolean },
  missing: readonly string[] = [],
  differences: StatedDifferences = {},
  failed: readonly FailedRunInfo[] = [],
): string {
  const task = c.summaries[0]?.task ?? 'classify';
  const name = recognitionUnit(task) === 'dice' ? 'Dice' : 'accuracy';
  const modes = [...new Set(c.groups.map((g) => g.lambdaMode))].join(', ');
  const readers = frozenVr(c.summaries)
    ? `read by the fixed VR (trained on clean images, then frozen; the VR term is taken through it, so there is no co-trained VR)`
    : `read by two VRs: the fixed VR (trained on clean images, then frozen) and the co-trained VR (trained alongside IP on its output)`;
  const lines = [
    `# Comparison of ${c.summaries.length} runs`,
    '',
    `Task ${task}; λ mode ${modes}. Recognition is the ${name} in percent, ${readers}. Mean ± sample std over seeds; n = number of seeds. Reference rows: the fixed VR on the degraded and on the clean test images, one value per seed (the runs of a seed share them). ip-only has no VR term, so no λ.`,
    '',
  ];
  if (missing.length) {
    lines.push(
      `**Incomplete: ${missing.length} planned run(s) not finished**: ${missing.map((m) => `\`${m}\``).join(', ')}. The numbers below cover the finished runs only.`,
      '',
    );
  }
  const controls = controlsSection(c, pairs);
  if (controls.length) lines.push(...controls, '');
  if (failed.length) lines.push(...failedSection(c, failed), '');
  lines.push(
    ...tables(c),
    '',
    ...pairedSection(c, pairs),
    '',
    ...designSection(pairs, differences),
    '',
    ...frontsSection(fronts, plotted.tradeoff),
    '',
    ...descentSection(c, plotted.descent),
  );
  return `${lines.join('\n')}\n`;
}

/** "Failed runs": each with its reason, the failure rate per policy and λ, and the pairs that lost seeds. */
export function failedSection(c: Comparison, failed: readonly FailedRunInfo[]): string[] {
  const mixed = new Set([...c.groups.map((g) => g.lambdaMode), ...failed.map((f) => f.lambdaMode)]).size > 1;
  const key = (x: { policy: string; lambda: number; lambdaMode: string }) => `${x.policy}|${x.lambdaMode}|${x.lambda}`;
  const finished = new Map(c.groups.map((g) => [key(g), g.n]));
  const byGroup = new Map<string, FailedRunInfo[]>();
  for (const f of failed) byGroup.set(key(f), [...(byGroup.get(key(f)) ?? []), f]);
  const rows = [...byGroup.values()].map((fs) => {
    const f = fs[0]!;
    const total = fs.length + (finished.get(key(f)) ?? 0);
    return [
      `\`${f.policy}\``,
      lambdaLabel(f, mixed),
      `${fs.length} of ${total} (${fmt((100 * fs.length) / total, 0)} %)`,
      fs.map((x) => x.seed).join(', '),
    ];
  });
  const out = [
    `## Failed runs`,
    '',
    `**${failed.length} run(s) failed on their own** (a result of the comparison, not an accident: they are not retried on resume). Rates count the finished and failed runs of each policy and λ:`,
    '',
    mdTable(['Policy', 'λ', 'Failed', 'Seeds'], rows),
    '',
    ...failed.map((f) => `- \`${f.name}\`: ${f.reason}`),
  ];
  // A pair loses a seed when either side failed there: its tests use the seeds both sides finished.
  const lost: string[] = [];
  for (const [a, b] of pairsOf(c.groups)) {
    const gone = failed.filter((f) => (key(f) === key(a) || key(f) === key(b)) && !(a.seeds.includes(f.seed) && b.seeds.includes(f.seed)));
    if (gone.length)
      lost.push(
        `- \`${a.policy}\` − \`${b.policy}\`, λ = ${lambdaLabel(a, mixed)}: seed(s) ${[...new Set(gone.map((f) => f.seed))].join(', ')} lost (${gone.map((f) => `\`${f.policy}\` failed`).join(', ')})`,
      );
  }
  const whole = [...byGroup.values()].filter((fs) => !finished.has(key(fs[0]!)));
  for (const fs of whole) lost.push(`- \`${fs[0]!.policy}\`, λ = ${lambdaLabel(fs[0]!, mixed)}: every run failed, so it is in no pair`);
  if (lost.length) out.push('', 'Pairs that lost seeds (their tests use only the seeds both sides finished):', '', ...lost);
  return out;
}

/** Trade-off plot points: group means with their 95 % t intervals, and single seeds, for each VR reader. */
function tradeoffPoints(c: Comparison, frozen: boolean): TradeoffPoint[] {
  const pts: TradeoffPoint[] = [];
  const frontOf = new Map(frontsOf(c.groups).flatMap((f) => f.points.map((g) => [g, f.label] as const)));
  const readers: Array<['fixed' | 'cotrained', string]> = [
    ['fixed', 'fixed VR (clean-trained)'],
    ['cotrained', 'co-trained VR'],
  ];
  for (const [who, reader] of frozen ? readers.slice(0, 1) : readers) {
    for (const g of c.groups) {
      const key = `${who}_enhanced_${recognitionUnit(g.task)}`;
      const rec = (who === 'fixed' ? g.fixedEnhanced : g.cotrainedEnhanced).mean;
      if (g.psnr.mean === null || rec === null) continue;
      const runs = g.seeds.map((s) => c.runOf(g, s)).filter((r): r is RunSummary => r !== undefined);
      const ivP = tInterval(runs.map((r) => metricOf(r.final, 'psnr')).filter((x): x is number => x !== null));
      const ivR = tInterval(runs.map((r) => metricOf(r.final, key)).filter((x): x is number => x !== null));
      const bars = ivP && ivR ? { psnrLo: ivP.lo, psnrHi: ivP.hi, recognitionLo: ivR.lo, recognitionHi: ivR.hi } : {};
      const where = {
        policy: g.policy,
        usesVr: g.usesVr,
        front: frontOf.get(g) ?? g.policy,
        lambdaMode: g.lambdaMode,
        lambda: g.lambda,
        reader,
      };
      pts.push({ ...where, psnr: g.psnr.mean, recognition: rec, kind: 'mean', ...bars });
      for (const r of runs) {
        const psnr = metricOf(r.final, 'psnr');
        const value = metricOf(r.final, key);
        if (psnr !== null && value !== null) pts.push({ ...where, psnr, recognition: value, kind: 'seed' });
      }
    }
  }
  return pts;
}

/** The pooled descent histograms of every group. */
function descentSeries(c: Comparison): DescentSeries[] {
  const mixed = new Set(c.groups.map((g) => g.lambdaMode)).size > 1;
  const out: DescentSeries[] = [];
  for (const g of c.groups) {
    const label = !g.usesVr ? g.policy : `${g.policy} λ=${lambdaLabel(g, mixed)}`;
    if (g.descent.planned) out.push({ label, kind: 'planned: cos(g_IP, g)', hist: g.descent.planned.hist });
    if (g.descent.taken) out.push({ label, kind: 'taken: cos(−g_IP, Δθ)', hist: g.descent.taken.hist });
  }
  return out;
}

/** Write `text` to `file` through a temporary file and a rename (a reader never sees half a report). */
async function writeWhole(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** Write compare.md, compare.json, tradeoff.svg and descent.svg into `dir`; resolves with what was written. */
export async function writeCompareReport(
  dir: string,
  summaries: readonly RunSummary[],
  opts: CompareReportOptions = {},
): Promise<CompareResult> {
  await mkdir(dir, { recursive: true });
  const c = makeComparison(summaries, opts.perImage);
  const pairs = pairedDifferences(c, {
    ...(opts.primary ? { primary: opts.primary } : {}),
    ...(opts.primaryPairs ? { primaryPairs: opts.primaryPairs } : {}),
    cotrained: !frozenVr(summaries),
  });
  const readers = frozenVr(summaries) ? (['fixed'] as const) : (['fixed', 'cotrained'] as const);
  const fronts = compareFronts(c, readers);
  const missing = [...(opts.missing ?? [])];
  const task = summaries[0]?.task ?? 'classify';
  const tradeoff = tradeoffPlot(tradeoffPoints(c, frozenVr(summaries)), recognitionUnit(task) === 'dice' ? 'Dice' : 'accuracy');
  const descent = descentPlot(descentSeries(c));
  if (tradeoff) await writeWhole(join(dir, 'tradeoff.svg'), await renderSvg(tradeoff));
  if (descent) await writeWhole(join(dir, 'descent.svg'), await renderSvg(descent));
  const failed = [...(opts.failed ?? [])];
  const plotted = { tradeoff: tradeoff !== null, descent: descent !== null };
  const markdown = compareMarkdown(c, pairs, fronts, plotted, missing, opts.differences, failed);
  // Results only: where each run happened to run (device, peak memory) stays in its own summary.json and report.md.
  const results = summaries.map(({ machine: _machine, ...rest }) => rest);
  await writeWhole(
    join(dir, 'compare.json'),
    `${JSON.stringify({ groups: c.groups, pairs, fronts, missing, failed, summaries: results }, null, 2)}\n`,
  );
  await writeWhole(join(dir, 'compare.md'), markdown);
  return { groups: c.groups, pairs, fronts, missing, failed, markdown };
}
