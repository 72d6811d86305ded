/**
 * docs/STUDY.md from the study's comparisons: per regime the fronts, the paired intervals, the gate-open rate and
 * the descent rates, and sentences that state only what those statistics support.
 */
import { cpus, totalmem } from 'node:os';
import { relative } from 'node:path';
import type { Config } from '../src/config/index.js';
import type { FrontComparison, GroupSummary, PairedDifference, RunSummary } from '../src/report/index.js';
import { fmtInterval, fmtP, signed } from '../src/report/paired.js';
import { packageRoot } from '../src/sidecar/python.js';
import type { MachineRun } from './machine.js';
import type { Invocation, Study } from './study-schema.js';

/** A regime's comparison as compare.json holds it. */
export interface RegimeResult {
  name: string;
  title: string;
  /** The config file, in configs/study/. */
  file: string;
  config: Config;
  dir: string;
  /** The comparison's report and figures as STUDY.md links them, relative to STUDY.md's folder. */
  linked: string;
  /** Why the comparison stopped before every run finished (a run that failed on its own), or null. */
  stopped: string | null;
  compare: { groups: GroupSummary[]; pairs: PairedDifference[]; fronts: FrontComparison[]; missing: string[]; summaries: RunSummary[] };
  wallSeconds: number | null;
}

/** Where and how the study ran. */
export interface StudyMeta extends MachineRun {
  /** Every invocation of the study that wrote these comparisons. */
  invocations: Invocation[];
  parallel: number;
  /** Seeds per regime, by name. */
  seeds: Record<string, number>;
  quick: boolean;
  torch: string;
  python: string;
  device: string;
}

const METRICS = [
  ['psnr', 'PSNR', ' dB', 1, 2],
  ['fixed', 'fixed-VR', ' points', 100, 1],
  ['cotrained', 'co-trained-VR', ' points', 100, 1],
] as const;

const num = (x: number | null | undefined, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '–');
const pct = (x: number | null | undefined, d = 1) => (typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(d)} %` : '–');
const lam = (p: { lambda: number; lambdaMode: string }) => `${p.lambda}${p.lambdaMode === 'normalized' ? ' (normalized)' : ''}`;
const rec = (task: string) => (task === 'segment' ? 'Dice' : 'accuracy');

/** One paired-difference cell: mean [interval over seeds and images] and the Holm-adjusted p-values, bold when an ordering is shown. */
function cell(p: PairedDifference | undefined, scale: number, digits: number): string {
  if (!p || p.mean === null) return '–';
  const adj = p.adjusted ? ` p_adj ${fmtP(p.adjusted.t)} / ${fmtP(p.adjusted.signFlip)}` : ' (secondary)';
  const text = `${signed(p.mean * scale, digits)} ${fmtInterval(p.interval, scale, digits)}${adj}`;
  return p.verdict === 'a-higher' || p.verdict === 'b-higher' ? `**${text}**` : text;
}

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
}

/** The pairs of `a` − `b` in a regime, by λ setting. */
function pairsOf(r: RegimeResult, a: string, b: string): Map<string, PairedDifference[]> {
  const out = new Map<string, PairedDifference[]>();
  for (const p of r.compare.pairs.filter((x) => x.a === a && x.b === b)) out.set(lam(p), [...(out.get(lam(p)) ?? []), p]);
  return out;
}

/** "PSNR: gradprom higher at 0.003, 0.01; no difference shown at 0.001" for one pair over the λ settings. */
function pairSummary(r: RegimeResult, a: string, b: string): string {
  const byLam = pairsOf(r, a, b);
  if (byLam.size === 0) return `no \`${a}\` − \`${b}\` pair`;
  const parts: string[] = [];
  for (const [metric, label] of METRICS) {
    const higher = { a: [] as string[], b: [] as string[], none: [] as string[] };
    for (const [l, ps] of byLam) {
      // Only primary endpoints are tested; a secondary one claims nothing either way.
      const p = ps.find((x) => x.metric === metric && x.endpoint === 'primary');
      if (!p) continue;
      (p.verdict === 'a-higher' ? higher.a : p.verdict === 'b-higher' ? higher.b : higher.none).push(l);
    }
    const bits = [
      higher.a.length ? `\`${a}\` higher at λ ${higher.a.join(', ')}` : '',
      higher.b.length ? `\`${b}\` higher at λ ${higher.b.join(', ')}` : '',
      higher.none.length ? `no ordering shown at ${higher.none.length === byLam.size ? 'any λ' : `λ ${higher.none.join(', ')}`}` : '',
    ].filter(Boolean);
    if (bits.length === 0) continue;
    const name = metric === 'psnr' ? label : `${label} ${rec(r.config.vr.task)}`;
    parts.push(`${name}: ${bits.join('; ')}`);
  }
  return parts.join('. ');
}

/** The widest interval bound among no-difference pairs of a − b: how large a difference the data leaves open. */
function openBound(r: RegimeResult, a: string, b: string, metric: string, scale: number): number | null {
  const ps = r.compare.pairs.filter((p) => p.a === a && p.b === b && p.metric === metric && p.verdict === 'no-difference' && p.interval);
  return ps.length ? Math.max(...ps.map((p) => Math.max(Math.abs(p.interval!.lo), Math.abs(p.interval!.hi)) * scale)) : null;
}

/** Pooled descent counts of a policy over its groups: planned and taken negative steps. */
function descentOf(r: RegimeResult, policy: string): { planned: [number, number]; taken: [number, number] } {
  const acc = { planned: [0, 0] as [number, number], taken: [0, 0] as [number, number] };
  for (const g of r.compare.groups.filter((x) => x.policy === policy)) {
    for (const k of ['planned', 'taken'] as const) {
      const d = g.descent[k];
      if (d) acc[k] = [acc[k][0] + d.negative, acc[k][1] + d.steps];
    }
  }
  return acc;
}

const share = ([k, n]: [number, number]) => (n ? `${k} of ${n} steps (${((100 * k) / n).toFixed(2)} %)` : 'not recorded');

/** What the data shows and does not, in sentences built from the verdicts. */
function findings(r: RegimeResult): string[] {
  const fronts = r.compare.fronts.filter((f) => f.reader === 'fixed');
  const gates = r.compare.groups.filter((g) => g.policy === 'gradprom').map((g) => `${pct(g.gateOpenRate.mean, 0)} at λ ${lam(g)}`);
  const out = [
    '**What the data shows.**',
    '',
    `- \`gradprom\` − \`joint\`: ${pairSummary(r, 'gradprom', 'joint')}.`,
    `- \`gradprom\` − \`ip-only\`: ${pairSummary(r, 'gradprom', 'ip-only')}.`,
    `- \`joint\` − \`ip-only\`: ${pairSummary(r, 'joint', 'ip-only')}.`,
    ...fronts.map((f) => `- Fronts (fixed VR): ${f.text}.`),
    `- Gate open (gradprom, mean over seeds): ${gates.join(', ') || '–'}.`,
    `- Descent, planned (the merged gradient against g_IP): \`gradprom\` ${share(descentOf(r, 'gradprom').planned)}, \`joint\` ${share(descentOf(r, 'joint').planned)}.`,
    `- Descent, taken (the optimizer's step against −g_IP): \`gradprom\` ${share(descentOf(r, 'gradprom').taken)}, \`joint\` ${share(descentOf(r, 'joint').taken)}, \`ip-only\` ${share(descentOf(r, 'ip-only').taken)}.`,
    '',
    '**What it does not show.**',
    '',
  ];
  const open = METRICS.map(([m, label, unit, scale, d]) => {
    const b = openBound(r, 'gradprom', 'joint', m, scale);
    return b === null ? null : `${label === 'PSNR' ? 'PSNR' : `${label} ${rec(r.config.vr.task)}`} up to ${b.toFixed(d)}${unit}`;
  }).filter(Boolean);
  if (open.length) {
    out.push(
      `- Where no difference is shown, the policies are not shown equal: between \`gradprom\` and \`joint\` the intervals leave open differences of ${open.join(', ')}.`,
    );
  }
  out.push(
    r.config.compare.data_seed === 'per-seed'
      ? `- Anything beyond this setting: ${r.config.data.size}×${r.config.data.size} synthetic images, ${r.config.train.steps} IP steps; each seed drew its own data set and test set (data seeds ${r.config.data.seed} onwards), so the seed interval covers training randomness and which data set was drawn, and the image interval test-set sampling; neither covers other kinds of data, sizes, networks or training lengths.`
      : `- Anything beyond this setting: ${r.config.data.size}×${r.config.data.size} synthetic images, ${r.config.train.steps} IP steps, one data set and one test set (data seed ${r.config.data.seed}); the seed interval covers training randomness and the image interval test-set sampling, neither covers other data, sizes, networks or training lengths.`,
  );
  if (r.compare.missing.length) out.push(`- The ${r.compare.missing.length} runs that did not finish: ${r.compare.missing.join(', ')}.`);
  return out;
}

/** One regime's section. */
function regimeSection(i: number, r: RegimeResult): string[] {
  const c = r.config;
  const g0 = r.compare.groups;
  const o = c.train.ip_optim;
  const task = c.vr.task;
  // A frozen VR is the fixed one: no co-trained column (it would copy the fixed VR's).
  const frozen = c.vr.mode === 'frozen';
  const noCotrained = (row: string[], at: number): string[] => (frozen ? row.filter((_, k) => k !== at) : row);
  const rows = g0.map((g) => [
    `\`${g.policy}\``,
    g.policy === 'ip-only' ? '–' : lam(g),
    `${g.n}`,
    `${num(g.psnr.mean, 2)} ± ${num(g.psnr.std, 2)}`,
    `${num((g.fixedEnhanced.mean ?? NaN) * 100, 1)} ± ${num((g.fixedEnhanced.std ?? NaN) * 100, 1)}`,
    `${num((g.cotrainedEnhanced.mean ?? NaN) * 100, 1)} ± ${num((g.cotrainedEnhanced.std ?? NaN) * 100, 1)}`,
    pct(g.gateOpenRate.mean),
    g.descent.planned ? pct(g.descent.planned.negativeRate, 2) : '–',
    g.descent.taken ? pct(g.descent.taken.negativeRate, 2) : '–',
  ]);
  const pairRows: string[][] = [];
  for (const [a, b] of [
    ['gradprom', 'random-gate'],
    ['gradprom', 'joint-scaled'],
    ['gradprom', 'joint'],
    ['gradprom', 'ip-only'],
    ['joint', 'ip-only'],
  ] as const) {
    for (const [l, ps] of pairsOf(r, a, b)) {
      pairRows.push([
        `\`${a}\` − \`${b}\``,
        l,
        ...METRICS.map(([m, , , s, d]) =>
          cell(
            ps.find((p) => p.metric === m),
            s,
            d,
          ),
        ),
      ]);
    }
  }
  // The degraded input itself, one value per seed: a policy that ends below it made the images worse.
  const bySeed = new Map(r.compare.summaries.map((x) => [x.seed, x]));
  const degraded = (k: string): number | null => {
    const v = [...bySeed.values()].map((x) => x.final[k]).filter((x): x is number => typeof x === 'number');
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const dPsnr = degraded('psnr_degraded');
  const dRec = degraded(`fixed_degraded_${task === 'segment' ? 'dice' : 'acc'}`);
  rows.push(['*degraded input*', '–', `${bySeed.size}`, num(dPsnr, 2), num(dRec === null ? null : dRec * 100, 1), '–', '–', '–', '–']);
  const below = dPsnr === null ? [] : g0.filter((g) => g.psnr.mean !== null && g.psnr.mean < dPsnr);
  const belowText = below.length
    ? [
        `**Below the degraded input:** ${below.map((g) => `\`${g.policy}\`${g.usesVr ? ` at λ ${lam(g)}` : ''} (${num(g.psnr.mean, 2)} dB)`).join(', ')} end${below.length === 1 ? 's' : ''} below the degraded input's PSNR (${num(dPsnr, 2)} dB): ${below.length === 1 ? 'it makes' : 'they make'} the images worse by this measure.`,
        '',
      ]
    : [];
  const where = relative(packageRoot, r.dir);
  return [
    `## ${i + 1}. ${r.title}`,
    '',
    `Config \`configs/study/${r.file}\`; comparison in \`${where}/\` ([compare.md](${r.linked}/compare.md)). ` +
      `${c.degradation.map((d) => d.kind).join(' + ')}; IP ${c.ip.arch} (×${c.ip.scale}), VR ${c.vr.arch} (${task}, ${c.vr.mode}); ${c.train.steps} steps, batch ${c.train.batch_size}; ` +
      `IP optimiser ${o.name} (lr ${o.lr}, momentum ${o.momentum}); ${r.compare.summaries[0]?.final.n ?? '?'} test images; wall time ${r.wallSeconds === null ? '–' : `${(r.wallSeconds / 60).toFixed(1)} min`}.`,
    '',
    ...(r.stopped
      ? [
          `**Stopped before every run finished**: ${r.stopped}. The runs not finished are listed in compare.md; the statistics below use the seeds that finished.`,
          '',
        ]
      : []),
    `Means ± std over seeds (recognition: ${rec(task)} in %; descent: share of steps with a negative cosine, all seeds pooled):`,
    '',
    ...table(
      noCotrained(['Policy', 'λ', 'seeds', 'PSNR (dB)', `fixed VR (%)`, `co-trained VR (%)`, 'gate open', 'planned < 0', 'taken < 0'], 5),
      rows.map((row) => noCotrained(row, 5)),
    ),
    '',
    ...belowText,
    'Paired differences, first − second: mean [95 % interval over seeds and test images], Holm-adjusted p (paired t / sign-flip) for primary endpoints; **bold**: both adjusted p-values below 0.05 (an ordering is shown).',
    '',
    ...table(
      noCotrained(['Pair', 'λ', 'Δ PSNR (dB)', `Δ fixed VR (points)`, `Δ co-trained VR (points)`], 4),
      pairRows.map((row) => noCotrained(row, 4)),
    ),
    '',
    `![Trade-off fronts](${r.linked}/tradeoff.svg)`,
    '',
    ...findings(r),
    '',
  ];
}

/** The optimiser factor: the same regime under two IP optimisers, side by side. */
function factorSection(study: Study, results: readonly RegimeResult[]): string[] {
  const rs = study.factor.regimes.map((n) => results.find((r) => r.name === n)).filter((r): r is RegimeResult => r !== undefined);
  if (rs.length !== 2) return [];
  const rows = rs.flatMap((r) =>
    [...pairsOf(r, 'gradprom', 'joint')].map(([l, ps]) => [
      `${r.config.train.ip_optim.name}`,
      l,
      cell(
        ps.find((p) => p.metric === 'psnr'),
        1,
        2,
      ),
      share(descentOf(r, 'gradprom').taken),
      share(descentOf(r, 'joint').taken),
      share(descentOf(r, 'ip-only').taken),
    ]),
  );
  return [
    `## ${study.factor.title}`,
    '',
    'The Lemma argues about plain gradient steps; Adam preconditions them and carries momentum. If Adam turned gradprom’s updates uphill for IP often enough to cost it PSNR, the *taken* descent cosine would be negative on many of its steps under Adam and on few under SGD. The numbers, per optimiser (gradprom − joint PSNR with its intervals, bold when shown; taken-negative shares pooled over λ and seeds):',
    '',
    ...table(['IP optimiser', 'λ', 'Δ PSNR gradprom − joint (dB)', 'gradprom taken < 0', 'joint taken < 0', 'ip-only taken < 0'], rows),
    '',
  ];
}

/** The fixed-VR front comparison of gradprom against joint. */
function gradpromJointFronts(r: RegimeResult): FrontComparison[] {
  return r.compare.fronts.filter((f) => f.reader === 'fixed' && f.a === 'gradprom' && f.b === 'joint');
}

/** The whole document. */
export function studyMarkdown(study: Study, results: readonly RegimeResult[], meta: StudyMeta): string {
  const busy = Math.max(meta.busyStart ?? 0, meta.busyEnd ?? 0);
  const lines = [
    '# What GradProm does at this scale',
    '',
    `Generated by \`${meta.command}\` from the comparisons it ran (configs in \`configs/study/\`); every sentence below is built from the statistics of those runs. ${meta.quick ? '**Quick mode: tiny sizes to check the script; these numbers mean nothing.**' : ''}`,
    '',
    '## How it ran',
    '',
    `- Date ${meta.started.toISOString()}; ${meta.wallSeconds > 0 ? `${(meta.wallSeconds / 60).toFixed(1)} min of comparisons` : 'wall time not recorded'}; ${meta.parallel} runs at once; seeds per setting: ${Object.entries(
      meta.seeds,
    )
      .map(([name, n]) => `${n} (${name})`)
      .join(', ')}.`,
    `- Machine: ${cpus().length} cores, ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; device ${meta.device}; torch ${meta.torch}, Python ${meta.python}, Node ${process.version}.`,
    `- Load average at start ${meta.loadStart.map((x) => x.toFixed(2)).join(' / ')}, at end ${meta.loadEnd.map((x) => x.toFixed(2)).join(' / ')}; CPU busy with other work before ${pct(meta.busyStart, 0)}, after ${pct(meta.busyEnd, 0)}${busy > 0.25 ? ' (**the machine was shared**: wall times are longer than on an idle one; the results themselves do not depend on it)' : ''}.`,
    ...meta.invocations.map(
      (v, k) =>
        `- Invocation ${k + 1}: ${v.start} → ${v.end ?? 'no record after its start'}; regimes finished: ${v.regimes.join(', ') || 'none'}; load ${v.loadStart.map((x) => x.toFixed(2)).join(' / ')} → ${v.loadEnd ? v.loadEnd.map((x) => x.toFixed(2)).join(' / ') : '–'}; other work ${pct(v.busyStart, 0)} → ${pct(v.busyEnd, 0)}.`,
    ),
    `- What was cut to fit: ${study.cut}`,
    '',
    '## The rule',
    '',
    "Runs of one seed share their start, so differences are paired by seed. Each comparison declares primary endpoints (`compare.primary`); its primary differences over the pairs that `compare.primary_pairs` names (in this study gradprom against each other policy; the other pairs are secondary) and every λ form one family, and each has a paired t p-value and an exact sign-flip permutation p-value, both Holm-adjusted across the family. An ordering is stated only when both adjusted p-values are below 0.05; secondary endpoints are shown unadjusted and claim nothing. The interval is a two-level bootstrap over seeds and test images. Each comparison's compare.md says what its design can detect (the difference at 80 % power, the seeds a stated difference needs) and when it cannot state any ordering at all. Fronts: a description with unadjusted tests, not a claim.",
    '',
    '## Verdict per regime',
    '',
    ...results.map(
      (r, i) =>
        `${i + 1}. **${r.title}.** ${r.compare.pairs.some((p) => p.b === 'random-gate') ? `\`gradprom\` − \`random-gate\`: ${pairSummary(r, 'gradprom', 'random-gate')}. ` : ''}\`gradprom\` − \`joint\`: ${pairSummary(r, 'gradprom', 'joint')}. \`gradprom\` − \`ip-only\`: ${pairSummary(r, 'gradprom', 'ip-only')}. ${gradpromJointFronts(
          r,
        )
          .map(
            (f) =>
              `Fronts (fixed VR): ${f.verdict === 'neither' ? 'neither dominates' : `the ${f.verdict === 'a-dominates' ? f.a : f.b} front dominates`}.`,
          )
          .join(' ')}`,
    ),
    '',
    ...results.flatMap((r, i) => regimeSection(i, r)),
    ...factorSection(study, results),
  ];
  return `${lines.join('\n')}\n`;
}
