/** The reading sections of compare.md: paired differences, trade-off fronts, the descent property. */
import type { Comparison } from './comparison.js';
import { fmtNegative } from './descent.js';
import type { FrontComparison } from './fronts.js';
import { lambdaLabel } from './groups.js';
import { BOOTSTRAP_REPS, BOOTSTRAP_SEED, fmtP, metricDisplay, signed, type PairedDifference, type PairMetric } from './paired.js';
import { ALPHA, MAX_SEEDS, seedsNeeded } from './power.js';
import { holmFloor } from './significance.js';
import { mdTable } from './run-report.js';
import { metricOf } from './summary.js';
import { DASH, fmt, fmtMeanStd, fmtPercent, mean, proportionStderr } from './stats.js';

/** Stated differences per endpoint, in display units (dB, SSIM, points), for "seeds needed". */
export type StatedDifferences = Partial<Record<PairMetric, number>>;

/** "Paired differences": the rule, then every pair's readings. */
export function pairedSection(c: Comparison, pairs: readonly PairedDifference[]): string[] {
  const mixed = new Set(c.groups.map((g) => g.lambdaMode)).size > 1;
  const primary = [...new Set(pairs.filter((p) => p.endpoint === 'primary').map((p) => metricDisplay(p.metric, p.task).label))];
  // With compare.primary_pairs: gradprom, a primary endpoint of a pair without gradprom is secondary.
  const gradpromOnly = pairs.some(
    (p) =>
      p.endpoint === 'secondary' && p.a !== 'gradprom' && p.b !== 'gradprom' && primary.includes(metricDisplay(p.metric, p.task).label),
  );
  const familyPairs = gradpromOnly
    ? 'the pairs of gradprom with each other policy (other pairs are secondary) at every λ setting'
    : 'all pairs and λ settings';
  const out = [
    '## Paired differences',
    '',
    `Runs of one seed share their start (the same pretrained VR and initial IP), so each difference first policy − second is taken seed by seed. Each has two p-values over seeds, a paired t test and an exact sign-flip permutation test (every pattern of signs of the per-seed differences), and one 95 % interval covering both seeds and test images (a two-level percentile bootstrap: ${BOOTSTRAP_REPS} resamples of the seeds, and of the test images within each drawn seed, PRNG seed ${BOOTSTRAP_SEED}). Primary endpoints: ${primary.join(', ') || 'none here'}; the primary differences of ${familyPairs} are one family, and both p-values are Holm-adjusted across it. An ordering is stated only when both adjusted p-values are below 0.05 (the t test leans on normality over a few seeds, the sign-flip test does not but is coarse). Secondary endpoints show unadjusted p-values and no ordering. "Detectable" is the difference the paired t test over these seeds finds with 80 % power (two-sided α 0.05) at the spread these seeds show.`,
    '',
  ];
  if (pairs.length === 0) out.push('No two policies share seeds here, so no pair is compared.');
  let last = '';
  for (const p of pairs) {
    const key = `${p.a}/${p.b}/${p.lambda}/${p.lambdaMode}`;
    if (key !== last) {
      out.push(`- \`${p.a}\` − \`${p.b}\`, λ = ${lambdaLabel(p, mixed)}${p.bUsesVr ? '' : ` (${p.b} has no λ)`}:`);
    }
    last = key;
    out.push(`  - ${p.endpoint === 'secondary' ? '*secondary* ' : ''}${p.text}.`);
  }
  const family = pairs.filter((p) => p.adjusted);
  const claimed = family.filter((p) => p.verdict === 'a-higher' || p.verdict === 'b-higher').length;
  if (pairs.length) out.push('', `${claimed} of ${family.length} primary differences show an ordering after Holm adjustment.`);
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

/** The dose-matched controls, by the policy name each run under. */
export const CONTROL_POLICIES = ['random-gate', 'joint-scaled'] as const;

/** "Does the gate help?": gradprom against the controls that add the VR term as often (random-gate) or as much (joint-scaled). */
export function controlsSection(c: Comparison, pairs: readonly PairedDifference[]): string[] {
  const mine = pairs.filter((p) => p.a === 'gradprom' && (CONTROL_POLICIES as readonly string[]).includes(p.b) && p.endpoint === 'primary');
  if (mine.length === 0) return [];
  const mixed = new Set(c.groups.map((g) => g.lambdaMode)).size > 1;
  const rate = (policy: string, p: PairedDifference) =>
    c.groups.find((g) => g.policy === policy && g.lambda === p.lambda && g.lambdaMode === p.lambdaMode)?.gateOpenRate.mean ?? null;
  const out = [
    '## Does the gate help? gradprom against the dose-matched controls',
    '',
    "Each control runs per seed and λ with p set to that gradprom run's measured gate-open rate: `random-gate` opens with probability p whatever the cosine, `joint-scaled` adds p·λ·g_VR every step. If gradprom does no better than these, its gate acts as a dose of the VR term, not as a choice of steps. Readings as in the paired differences below (Holm-adjusted across the whole family).",
    '',
  ];
  for (const p of mine) {
    const g = rate('gradprom', p);
    const r = p.b === 'random-gate' ? rate('random-gate', p) : null;
    const dose = g === null ? '' : ` (gate open ${fmtPercent(g)} for gradprom${r === null ? '' : `, ${fmtPercent(r)} for random-gate`})`;
    out.push(`- λ = ${lambdaLabel(p, mixed)}, \`gradprom\` − \`${p.b}\`${dose}: ${p.text}.`);
  }
  return out;
}

/** "What this design can detect": the family's floor, and per primary difference the detectable difference and seeds needed. */
export function designSection(pairs: readonly PairedDifference[], stated: StatedDifferences = {}): string[] {
  const family = pairs.filter((p) => p.adjusted && p.t && p.signFlip);
  const out = ['## What this design can detect', ''];
  if (family.length === 0) return [...out, 'No primary difference has two or more paired seeds: nothing can be tested.'];
  const m = family.length;
  const seeds = Math.min(...family.map((p) => p.t!.n));
  const floor = holmFloor(Math.min(...family.map((p) => p.signFlip!.minP)), m);
  out.push(
    floor >= ALPHA
      ? `**This design cannot state any ordering.** With ${seeds} seeds the exact sign-flip test's smallest p-value is ${fmtP(2 / 2 ** seeds)}, and Holm's adjustment across the family of ${m} primary differences raises the smallest attainable one to ${fmtP(floor)} ≥ 0.05. More seeds are needed before any difference, however large, can be claimed.`
      : `With ${seeds} seeds and a family of ${m} primary differences the sign-flip test can reach an adjusted p of ${fmtP(floor)}; an ordering still needs the effect to clear the paired t test's detectable difference below.`,
    '',
  );
  const rows = family.map((p) => {
    const d = metricDisplay(p.metric, p.task);
    const target = stated[p.metric];
    const needed = target === undefined || !p.t ? null : seedsNeeded(target / d.scale, p.t.sd);
    return [
      `\`${p.a}\` − \`${p.b}\` λ ${p.lambda}${p.lambdaMode === 'normalized' ? ' (normalized)' : ''}`,
      d.label,
      `${p.t!.n}`,
      (p.t!.sd * d.scale).toFixed(d.digits + 1),
      p.mean === null ? DASH : `${signed(p.mean * d.scale, d.digits)}`,
      p.detectable === null ? DASH : `±${(p.detectable * d.scale).toFixed(d.digits)}`,
      p.mean !== null && p.detectable !== null && Math.abs(p.mean) < p.detectable ? 'yes' : 'no',
      target === undefined ? DASH : `${target}${d.unit}: ${needed === null ? `more than ${MAX_SEEDS}` : needed}`,
    ];
  });
  const below = rows.filter((r) => r[6] === 'yes').length;
  out.push(
    mdTable(
      [
        'Difference',
        'Endpoint',
        'Seeds',
        'SD over seeds',
        'Observed',
        'Detectable (80 % power)',
        'Observed below detectable',
        'Seeds needed for',
      ],
      rows,
    ),
    '',
    `${below} of ${m} observed primary differences are smaller than what these seeds can detect: for those, "no ordering shown" says the design is too small, not that the policies are alike. Seeds needed: the paired t test's 80 % power (two-sided α 0.05, before Holm's adjustment) at the spread seen here, for the stated difference (config \`compare.differences\`).`,
  );
  return out;
}

/** "Trade-off fronts": one line per pair of fronts and reader, and the plot. */
export function frontsSection(fronts: readonly FrontComparison[], plotted: boolean): string[] {
  const out = [
    '## Trade-off fronts',
    '',
    'Each policy’s points (mean PSNR against mean recognition) over λ form its front; ip-only is the reference point. A point dominates another when it is higher in PSNR or in recognition (both unadjusted p-values over seeds below 0.05) and lower in neither; a front dominates another when every point of the other is dominated by one of its points. This describes the fronts; it is not corrected for the many comparisons it makes, so it claims nothing beyond the paired differences above.',
    '',
  ];
  if (fronts.length === 0) out.push('No two fronts to compare.');
  for (const f of fronts) out.push(`- ${f.text}.`);
  out.push(
    '',
    plotted
      ? '![PSNR against recognition per policy and λ, with 95 % intervals over seeds](tradeoff.svg)\n\nThe bars are each mean’s own 95 % t interval over seeds; dominance above uses the paired tests.'
      : 'No trade-off plot: no run has both PSNR and recognition.',
  );
  return out;
}

/** "The descent property": per policy and λ, how often the update pointed against g_IP. */
export function descentSection(c: Comparison, plotted: boolean): string[] {
  const mixed = new Set(c.groups.map((g) => g.lambdaMode)).size > 1;
  const rows = c.groups.map((g) => [
    `\`${g.policy}\``,
    g.usesVr ? lambdaLabel(g, mixed) : DASH, // ip-only carries no λ
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
