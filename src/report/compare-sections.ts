/** The reading sections of compare.md: paired differences, trade-off fronts, the descent property. */
import type { Comparison } from './comparison.js';
import { fmtNegative } from './descent.js';
import type { FrontComparison } from './fronts.js';
import { lambdaLabel } from './groups.js';
import { BOOTSTRAP_REPS, BOOTSTRAP_SEED, type PairedDifference } from './paired.js';
import { mdTable } from './run-report.js';
import { metricOf } from './summary.js';
import { DASH, fmt, fmtMeanStd, fmtPercent, mean, proportionStderr } from './stats.js';

/** "Paired differences": the rule, then every pair's readings. */
export function pairedSection(c: Comparison, pairs: readonly PairedDifference[]): string[] {
  const mixed = new Set(c.groups.map((g) => g.lambdaMode)).size > 1;
  const out = [
    '## Paired differences',
    '',
    `Runs of one seed share their start (the same pretrained VR and initial IP), so each difference first policy − second is taken seed by seed. Two 95 % intervals: over seeds (Student t on the per-seed differences: how much the result depends on training randomness, on this test set) and over test images (percentile bootstrap, ${BOOTSTRAP_REPS} resamples of the test images with PRNG seed ${BOOTSTRAP_SEED}, the same images drawn for every seed: how much it depends on which test images were drawn). An ordering is stated only when both intervals exclude zero on the same side; otherwise: no difference shown.`,
    '',
  ];
  if (pairs.length === 0) out.push('No two policies share seeds here, so no pair is compared.');
  let last = '';
  for (const p of pairs) {
    const key = `${p.a}/${p.b}/${p.lambda}/${p.lambdaMode}`;
    if (key !== last) {
      const lam = lambdaLabel(p, mixed);
      out.push(`- \`${p.a}\` − \`${p.b}\`, λ = ${lam}${p.bUsesVr ? '' : ` (${p.b} has no λ)`}:`);
    }
    last = key;
    out.push(`  - ${p.text}.`);
  }
  const claimed = pairs.filter((p) => p.verdict === 'a-higher' || p.verdict === 'b-higher').length;
  if (pairs.length) out.push('', `${claimed} of ${pairs.length} differences are shown by both intervals.`);
  const task = c.summaries[0]?.task ?? 'classify';
  const n = mean(c.summaries.map((s) => metricOf(s.final, 'n')).filter((x): x is number => x !== null));
  const accs = c.summaries.map((s) => metricOf(s.final, s.recognitionKey)).filter((x): x is number => x !== null);
  if (task === 'classify' && Number.isFinite(n) && accs.length) {
    const p = mean(accs);
    out.push(
      '',
      `For scale: on ${Math.round(n)} test images, an accuracy near ${fmtPercent(p)} has a standard error of ±${(proportionStderr(p, n) * 100).toFixed(1)} points from the finite test set alone (√(p(1−p)/n)).`,
    );
  }
  return out;
}

/** "Trade-off fronts": one line per pair of fronts and reader, and the plot. */
export function frontsSection(fronts: readonly FrontComparison[], plotted: boolean): string[] {
  const out = [
    '## Trade-off fronts',
    '',
    'Each policy’s points (mean PSNR against mean recognition) over λ form its front; ip-only is the reference point. A point dominates another beyond the intervals when it is higher in PSNR or in recognition by the paired rule above and lower in neither; a front dominates another when every point of the other is dominated by one of its points.',
    '',
  ];
  if (fronts.length === 0) out.push('No two fronts to compare.');
  for (const f of fronts) out.push(`- ${f.text}.`);
  out.push(
    '',
    plotted
      ? '![PSNR against recognition per policy and λ, with 95 % intervals over seeds](tradeoff.svg)\n\nThe bars are each mean’s own 95 % t interval over seeds; dominance above uses the narrower paired intervals.'
      : 'No trade-off plot: no run has both PSNR and recognition.',
  );
  return out;
}

/** "The descent property": per policy and λ, how often the update pointed against g_IP. */
export function descentSection(c: Comparison, plotted: boolean): string[] {
  const mixed = new Set(c.groups.map((g) => g.lambdaMode)).size > 1;
  const rows = c.groups.map((g) => [
    `\`${g.policy}\``,
    lambdaLabel(g, mixed),
    `${g.n}`,
    fmtNegative(g.descent.planned),
    g.descent.planned ? `${fmtMeanStd(g.descent.planned.median, 3)} (min ${fmt(g.descent.planned.min, 3)})` : DASH,
    fmtNegative(g.descent.taken),
    g.descent.taken ? `${fmtMeanStd(g.descent.taken.median, 3)} (min ${fmt(g.descent.taken.min, 3)})` : DASH,
  ]);
  return [
    '## The descent property',
    '',
    'GradProm’s Lemma: the VR term never turns IP’s update against IP’s own loss. Per step, *planned* is cos(g_IP, g) of the merged gradient g handed to the optimizer, *taken* is cos(−g_IP, Δθ) of the change the optimizer made (Adam preconditions and carries momentum, so the two can differ); a negative value is a step uphill for IP. Steps of all seeds pooled; median: mean ± std over seeds of each run’s median.',
    '',
    mdTable(['Policy', 'λ', 'n', 'Planned: negative steps', 'Planned: median (min)', 'Taken: negative steps', 'Taken: median (min)'], rows),
    '',
    plotted
      ? '![Distribution of the descent cosines per policy and λ](descent.svg)'
      : 'No descent plot: the runs recorded no descent cosines.',
  ];
}
