/** A comparison of many runs (policies × λ × seeds): compare.md, compare.json and tradeoff.svg. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderSvg, tradeoffPlot, type TradeoffPoint } from './plots.js';
import { mdTable } from './run-report.js';
import { metricOf, recognitionUnit, type RunSummary } from './summary.js';
import { DASH, fmt, fmtMeanStd, fmtPercent, fmtSig, mean, proportionStderr, stat, type Stat } from './stats.js';

/** The runs of one (policy, λ) setting, with mean and spread over seeds. */
export interface GroupSummary {
  policy: string;
  usesVr: boolean;
  lambda: number;
  lambdaMode: string;
  task: 'classify' | 'segment';
  n: number;
  /** Test images per evaluation (mean over runs), when recorded. */
  testImages: number | null;
  seeds: number[];
  runs: string[];
  psnr: Stat;
  ssim: Stat;
  fixedEnhanced: Stat;
  cotrainedEnhanced: Stat;
  gateOpenRate: Stat;
  cosEarly: Stat;
  cosLate: Stat;
  normRatio: Stat;
}

/** One difference of means between two groups at the same λ, and whether it exceeds the seed spread. */
export interface PairReading {
  a: string;
  b: string;
  lambda: number;
  metric: 'fixed' | 'cotrained' | 'psnr';
  delta: number;
  spread: number;
  verdict: 'single-seed' | 'within-spread' | 'a-higher' | 'b-higher';
  text: string;
}

/** What writeCompareReport produced. */
export interface CompareResult {
  groups: GroupSummary[];
  readings: PairReading[];
  markdown: string;
}

const ORDER = ['ip-only', 'joint', 'soft', 'pcgrad', 'gradprom'];

/** Sort rank of a policy name: built-ins in a fixed order, then others alphabetically. */
function rank(p: string): number {
  const i = ORDER.indexOf(p);
  return i < 0 ? ORDER.length : i;
}

/** Group run summaries by (task, policy, λ mode, λ), computing mean and std over seeds. */
export function groupRuns(summaries: readonly RunSummary[]): GroupSummary[] {
  const by = new Map<string, RunSummary[]>();
  for (const s of summaries) {
    const key = JSON.stringify([s.task, s.policy, s.lambdaMode, s.lambda]);
    by.set(key, [...(by.get(key) ?? []), s]);
  }
  const groups = [...by.values()].map((runs): GroupSummary => {
    const first = runs[0] as RunSummary;
    const u = recognitionUnit(first.task);
    const of = (k: string): Stat => stat(runs.map((r) => metricOf(r.final, k)));
    return {
      policy: first.policy,
      usesVr: first.usesVr,
      lambda: first.lambda,
      lambdaMode: first.lambdaMode,
      task: first.task,
      n: runs.length,
      testImages: of('n').mean,
      seeds: runs.map((r) => r.seed),
      runs: runs.map((r) => r.name),
      psnr: of('psnr'),
      ssim: of('ssim'),
      fixedEnhanced: of(`fixed_enhanced_${u}`),
      cotrainedEnhanced: of(`cotrained_enhanced_${u}`),
      gateOpenRate: stat(runs.map((r) => r.gateOpenRate)),
      cosEarly: stat(runs.map((r) => r.cosEarly)),
      cosLate: stat(runs.map((r) => r.cosLate)),
      normRatio: stat(runs.map((r) => r.normRatio)),
    };
  });
  return groups.sort(
    (x, y) =>
      x.task.localeCompare(y.task) ||
      rank(x.policy) - rank(y.policy) ||
      x.policy.localeCompare(y.policy) ||
      x.lambdaMode.localeCompare(y.lambdaMode) ||
      x.lambda - y.lambda,
  );
}

/**
 * The groups to compare: every policy against gradprom when present (else all pairs), at the same λ. A baseline (a policy
 * that never uses g_VR, such as ip-only) is only ever the second of a pair, and when it has one group it serves every λ.
 */
function pairsOf(groups: readonly GroupSummary[]): Array<[GroupSummary, GroupSummary]> {
  const hasGradprom = groups.some((g) => g.policy === 'gradprom');
  const pairs: Array<[GroupSummary, GroupSummary]> = [];
  for (const a of groups) {
    for (const b of groups) {
      if (a.policy === b.policy || a.task !== b.task || !a.usesVr) continue;
      const later = rank(a.policy) - rank(b.policy) || a.policy.localeCompare(b.policy);
      if (hasGradprom ? a.policy !== 'gradprom' : later < 0) continue;
      const sameLambda = a.lambda === b.lambda && a.lambdaMode === b.lambdaMode;
      const loneBaseline = !b.usesVr && groups.filter((g) => g.policy === b.policy).length === 1;
      if (sameLambda || loneBaseline) pairs.push([a, b]);
    }
  }
  return pairs;
}

/** Read one metric of a pair: the difference of means and the ordering it supports, if any. */
function readPair(
  a: GroupSummary,
  b: GroupSummary,
  metric: PairReading['metric'],
  label: string,
  scale: number,
  unit: string,
  digits: number,
): PairReading | null {
  const sa = metric === 'psnr' ? a.psnr : metric === 'fixed' ? a.fixedEnhanced : a.cotrainedEnhanced;
  const sb = metric === 'psnr' ? b.psnr : metric === 'fixed' ? b.fixedEnhanced : b.cotrainedEnhanced;
  if (sa.mean === null || sb.mean === null) return null;
  const delta = (sa.mean - sb.mean) * scale;
  const spread = Math.sqrt((sa.std ?? 0) ** 2 + (sb.std ?? 0) ** 2) * scale;
  const single = sa.n < 2 || sb.n < 2;
  const verdict: PairReading['verdict'] = single
    ? 'single-seed'
    : Math.abs(delta) > spread
      ? delta > 0
        ? 'a-higher'
        : 'b-higher'
      : 'within-spread';
  const sign = delta > 0 ? '+' : delta < 0 ? '−' : '±';
  const se = testSe(a, b, metric);
  const head = `${label} ${sign}${Math.abs(delta).toFixed(digits)}${unit} (${(sa.mean * scale).toFixed(digits)} vs ${(sb.mean * scale).toFixed(digits)}`;
  const text =
    verdict === 'single-seed'
      ? `${head}): single seed: no ordering claimed`
      : verdict === 'within-spread'
        ? `${head}; combined seed spread ${spread.toFixed(digits)}): within the spread, no ordering claimed`
        : `${head}; combined seed spread ${spread.toFixed(digits)}): \`${verdict === 'a-higher' ? a.policy : b.policy}\` higher${
            se !== null && Math.abs(delta) < se
              ? ` (but smaller than the test-set standard error of a difference, ±${se.toFixed(1)} points)`
              : ''
          }`;
  return { a: a.policy, b: b.policy, lambda: a.lambda, metric, delta, spread, verdict, text };
}

/** Test-set standard error of a difference of two accuracies in points (null for PSNR, Dice, or unknown n). */
function testSe(a: GroupSummary, b: GroupSummary, metric: PairReading['metric']): number | null {
  if (metric === 'psnr' || a.task !== 'classify' || a.testImages === null || b.testImages === null) return null;
  const pa = (metric === 'fixed' ? a.fixedEnhanced : a.cotrainedEnhanced).mean ?? 0;
  const pb = (metric === 'fixed' ? b.fixedEnhanced : b.cotrainedEnhanced).mean ?? 0;
  return Math.hypot(proportionStderr(pa, a.testImages), proportionStderr(pb, b.testImages)) * 100;
}

/** All pair readings over the groups: recognition by both VRs and PSNR. */
export function readPairs(groups: readonly GroupSummary[]): PairReading[] {
  const out: PairReading[] = [];
  for (const [a, b] of pairsOf(groups)) {
    const name = recognitionUnit(a.task) === 'dice' ? 'Dice' : 'accuracy';
    for (const r of [
      readPair(a, b, 'fixed', `fixed-VR ${name}`, 100, ' points', 1),
      readPair(a, b, 'cotrained', `co-trained-VR ${name}`, 100, ' points', 1),
      readPair(a, b, 'psnr', 'PSNR', 1, ' dB', 2),
    ])
      if (r) out.push(r);
  }
  return out;
}

/** The λ label of a group (with the mode when modes differ among groups). */
function lambdaLabel(g: { lambda: number; lambdaMode: string }, mixedModes: boolean): string {
  return mixedModes ? `${g.lambda} (${g.lambdaMode})` : `${g.lambda}`;
}

/** The "Reading the numbers" paragraph: per pair differences and the test-set standard error for scale. */
function readingSection(readings: readonly PairReading[], summaries: readonly RunSummary[], task: 'classify' | 'segment'): string[] {
  const out = ['## Reading the numbers', ''];
  out.push(
    'Differences of group means (first policy minus second, same λ). An ordering is stated only when both groups have at least two seeds and |Δmean| exceeds the combined seed spread √(s₁² + s₂²).',
    '',
  );
  if (readings.length === 0) out.push('No two policies share a λ setting here, so no pair is compared.');
  let lastKey = '';
  for (const r of readings) {
    const key = `${r.a}/${r.b}/${r.lambda}`;
    if (key !== lastKey) out.push(`- \`${r.a}\` vs \`${r.b}\` at λ = ${r.lambda}:`);
    lastKey = key;
    out.push(`  - ${r.text}.`);
  }
  const claimed = readings.filter((r) => r.verdict === 'a-higher' || r.verdict === 'b-higher').length;
  if (readings.length) out.push('', `${claimed} of ${readings.length} differences exceed the seed spread.`);
  const n = mean(summaries.map((s) => metricOf(s.final, 'n')).filter((x): x is number => x !== null));
  const accs = summaries.map((s) => metricOf(s.final, s.recognitionKey)).filter((x): x is number => x !== null);
  if (task === 'classify' && Number.isFinite(n) && accs.length) {
    const p = mean(accs);
    out.push(
      '',
      `For scale: on ${Math.round(n)} test images, an accuracy near ${fmtPercent(p)} has a standard error of ±${(proportionStderr(p, n) * 100).toFixed(1)} points from the finite test set alone (√(p(1−p)/n)), and a difference of two such accuracies about ±${(proportionStderr(p, n) * 100 * Math.SQRT2).toFixed(1)} points.`,
    );
  }
  return out;
}

/** The Markdown text of a comparison. */
export function compareMarkdown(
  groups: readonly GroupSummary[],
  summaries: readonly RunSummary[],
  readings: readonly PairReading[],
): string {
  const task = summaries[0]?.task ?? 'classify';
  const u = recognitionUnit(task);
  const name = u === 'dice' ? 'Dice' : 'accuracy';
  const mixed = new Set(groups.map((g) => g.lambdaMode)).size > 1;
  const modes = [...new Set(groups.map((g) => g.lambdaMode))].join(', ');
  const cos = (e: Stat, l: Stat): string => `${fmtMeanStd(e, 3)} → ${fmtMeanStd(l, 3)}`;
  const rows = groups.map((g) => [
    `\`${g.policy}\``,
    lambdaLabel(g, mixed),
    `${g.n}`,
    fmtMeanStd(g.psnr, 2),
    fmtMeanStd(g.ssim, 4),
    fmtMeanStd(g.fixedEnhanced, 1, 100),
    fmtMeanStd(g.cotrainedEnhanced, 1, 100),
    fmtMeanStd(g.gateOpenRate, 1, 100),
    cos(g.cosEarly, g.cosLate),
    g.normRatio.mean === null ? DASH : fmtSig(g.normRatio.mean),
  ]);
  const ref = (k: string): Stat => stat(summaries.map((s) => metricOf(s.final, k)));
  const all = `${summaries.length}`;
  rows.push([
    '*degraded input*',
    DASH,
    all,
    fmtMeanStd(ref('psnr_degraded'), 2),
    fmtMeanStd(ref('ssim_degraded'), 4),
    fmtMeanStd(ref(`fixed_degraded_${u}`), 1, 100),
    DASH,
    DASH,
    DASH,
    DASH,
  ]);
  rows.push(['*clean input*', DASH, all, DASH, DASH, fmtMeanStd(ref(`fixed_clean_${u}`), 1, 100), DASH, DASH, DASH, DASH]);
  const seedRows = [...summaries]
    .sort((x, y) => rank(x.policy) - rank(y.policy) || x.policy.localeCompare(y.policy) || x.lambda - y.lambda || x.seed - y.seed)
    .map((s) => [
      s.name,
      `\`${s.policy}\``,
      lambdaLabel(s, mixed),
      `${s.seed}`,
      fmt(metricOf(s.final, 'psnr'), 2),
      fmt(metricOf(s.final, 'ssim'), 4),
      fmt(pct(metricOf(s.final, `fixed_enhanced_${u}`)), 1),
      fmt(pct(metricOf(s.final, `cotrained_enhanced_${u}`)), 1),
      fmt(pct(s.gateOpenRate), 1),
      `${fmt(s.cosEarly, 3)} → ${fmt(s.cosLate, 3)}`,
      fmtSig(s.normRatio),
      `${s.skipped}`,
      fmt(s.stepMsMedian, 1),
    ]);
  const lines = [
    `# Comparison of ${summaries.length} runs`,
    '',
    `Task ${task}; λ mode ${modes}. Recognition is the ${name} in percent, read by two VRs: the fixed VR (trained on clean images, then frozen) and the co-trained VR (trained alongside IP on its output). Mean ± sample std over seeds; n = number of seeds. Reference rows: the fixed VR on the degraded and on the clean test images, mean over all runs.`,
    '',
    '## Mean over seeds',
    '',
    mdTable(
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
      rows,
    ),
    '',
    '## Per seed',
    '',
    mdTable(
      [
        'Run',
        'Policy',
        'λ',
        'Seed',
        'PSNR (dB)',
        'SSIM',
        `Fixed VR, enhanced (%)`,
        `Co-trained VR, enhanced (%)`,
        'Gate open (%)',
        'cos early → late',
        '‖g_IP‖/‖g_VR‖',
        'Skipped',
        'Step (ms)',
      ],
      seedRows,
    ),
    '',
    ...readingSection(readings, summaries, task),
    '',
    '## Trade-off',
    '',
    '![PSNR against recognition per policy and λ](tradeoff.svg)',
  ];
  return `${lines.join('\n')}\n`;
}

/** A fraction as percent, keeping null. */
function pct(x: number | null): number | null {
  return x === null ? null : x * 100;
}

/** Trade-off plot points: group means and single seeds, for each VR reader. */
function tradeoffPoints(groups: readonly GroupSummary[], summaries: readonly RunSummary[]): TradeoffPoint[] {
  const pts: TradeoffPoint[] = [];
  const readers: Array<['fixed' | 'cotrained', string]> = [
    ['fixed', 'fixed VR (clean-trained)'],
    ['cotrained', 'co-trained VR'],
  ];
  for (const [who, reader] of readers) {
    for (const g of groups) {
      const rec = who === 'fixed' ? g.fixedEnhanced.mean : g.cotrainedEnhanced.mean;
      if (g.psnr.mean !== null && rec !== null)
        pts.push({ policy: g.policy, usesVr: g.usesVr, lambda: g.lambda, reader, psnr: g.psnr.mean, recognition: rec, kind: 'mean' });
    }
    for (const s of summaries) {
      const psnr = metricOf(s.final, 'psnr');
      const rec = metricOf(s.final, `${who}_enhanced_${recognitionUnit(s.task)}`);
      if (psnr !== null && rec !== null)
        pts.push({ policy: s.policy, usesVr: s.usesVr, lambda: s.lambda, reader, psnr, recognition: rec, kind: 'seed' });
    }
  }
  return pts;
}

/** Write compare.md, compare.json and tradeoff.svg into `dir`; resolves with the groups and the Markdown. */
export async function writeCompareReport(dir: string, summaries: RunSummary[]): Promise<CompareResult> {
  await mkdir(dir, { recursive: true });
  const groups = groupRuns(summaries);
  const readings = readPairs(groups);
  const markdown = compareMarkdown(groups, summaries, readings);
  const task = summaries[0]?.task ?? 'classify';
  const spec = tradeoffPlot(tradeoffPoints(groups, summaries), recognitionUnit(task) === 'dice' ? 'Dice' : 'accuracy');
  const md = spec
    ? markdown
    : markdown.replace(
        '![PSNR against recognition per policy and λ](tradeoff.svg)',
        'No trade-off plot: no run has both PSNR and recognition.',
      );
  if (spec) await writeFile(join(dir, 'tradeoff.svg'), await renderSvg(spec));
  await writeFile(join(dir, 'compare.json'), `${JSON.stringify({ groups, readings, summaries }, null, 2)}\n`);
  await writeFile(join(dir, 'compare.md'), md);
  return { groups, readings, markdown: md };
}
