/** The runs of a comparison grouped by (task, policy, λ mode, λ): means and spreads over seeds. */
import { poolDescent, type GroupDescentStats } from './descent.js';
import { metricOf, recognitionUnit, type RunSummary } from './summary.js';
import { stat, type Stat } from './stats.js';

/** The runs of one (policy, λ) setting, with mean and spread over seeds. */
export interface GroupSummary {
  policy: string;
  /** The policy's declared `usesVr`: false for a baseline such as ip-only (its λ plays no part). */
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
  /** The descent cosines pooled over the group's runs. */
  descent: { planned: GroupDescentStats | null; taken: GroupDescentStats | null };
}

// The controls sit just before gradprom, so pairs read gradprom − control.
const ORDER = ['ip-only', 'joint', 'soft', 'pcgrad', 'joint-scaled', 'random-gate', 'gradprom'];

/** Sort rank of a policy name: built-ins in a fixed order, then others alphabetically. */
export function rank(p: string): number {
  const i = ORDER.indexOf(p);
  return i < 0 ? ORDER.length : i;
}

/** True for a policy without a VR term (it declares `usesVr: false`): the reference every other policy is read against. */
export function isReference(g: { usesVr: boolean }): boolean {
  return !g.usesVr;
}

/** The λ label of a group (with the mode when modes differ among groups). */
export function lambdaLabel(g: { lambda: number; lambdaMode: string }, mixedModes: boolean): string {
  return mixedModes ? `${g.lambda} (${g.lambdaMode})` : `${g.lambda}`;
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
      descent: {
        planned: poolDescent(runs.map((r) => r.descent?.planned ?? null)),
        taken: poolDescent(runs.map((r) => r.descent?.taken ?? null)),
      },
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
