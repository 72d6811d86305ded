/**
 * Trade-off fronts: each policy's points (PSNR against recognition) over λ, and dominance between fronts.
 *
 * Point a dominates point b when a is higher in PSNR or in recognition (both unadjusted p-values over seeds
 * below 0.05: a description of the fronts, not a corrected claim) and b is higher in neither. Front A dominates front B when every
 * point of B is dominated by some point of A. ip-only is a front of one point: the reference.
 */
import type { Comparison } from './comparison.js';
import { isReference, lambdaLabel, type GroupSummary } from './groups.js';
import { pairStats, type PairMetric } from './paired.js';

/** One policy's points over its λ settings, plain and normalized (ip-only has a single point). */
export interface Front {
  label: string;
  policy: string;
  points: GroupSummary[];
}

/** How two fronts compare for one recognition reader. */
export interface FrontComparison {
  a: string;
  b: string;
  reader: 'fixed' | 'cotrained';
  verdict: 'a-dominates' | 'b-dominates' | 'neither';
  /** Points of b dominated by some point of a, and the other way round. */
  bDominated: number;
  aDominated: number;
  aPoints: number;
  bPoints: number;
  text: string;
}

/** The fronts of a comparison: one per policy (and task), its points in group order (λ mode, then λ). */
export function frontsOf(groups: readonly GroupSummary[]): Front[] {
  const by = new Map<string, Front>();
  for (const g of groups) {
    const key = `${g.task}/${g.policy}`;
    const f = by.get(key) ?? { label: g.policy, policy: g.policy, points: [] };
    f.points.push(g);
    by.set(key, f);
  }
  return [...by.values()];
}

/** True when point a dominates point b (unadjusted paired tests) for the given recognition reader. */
export function dominates(c: Comparison, a: GroupSummary, b: GroupSummary, reader: PairMetric): boolean {
  const psnr = pairStats(c, a, b, 'psnr').higherUnadjusted;
  const rec = pairStats(c, a, b, reader).higherUnadjusted;
  return (psnr === 'a' || rec === 'a') && psnr !== 'b' && rec !== 'b';
}

/** Points of `b` dominated by some point of `a`. */
function dominatedCount(c: Comparison, a: Front, b: Front, reader: PairMetric): number {
  return b.points.filter((q) => a.points.some((p) => dominates(c, p, q, reader))).length;
}

/** Every pair of fronts (ip-only included), for each recognition reader asked for that is present. */
export function compareFronts(c: Comparison, readers: ReadonlyArray<'fixed' | 'cotrained'> = ['fixed', 'cotrained']): FrontComparison[] {
  const fronts = frontsOf(c.groups);
  const mixed = new Set(c.groups.map((g) => g.lambdaMode)).size > 1;
  const out: FrontComparison[] = [];
  for (const reader of readers) {
    for (let i = 0; i < fronts.length; i++) {
      for (let j = 0; j < i; j++) {
        // The later front first, as in the pair tables (gradprom against joint, joint against ip-only).
        const a = fronts[i]!;
        const b = fronts[j]!;
        if (a.points[0]!.task !== b.points[0]!.task) continue;
        if (![...a.points, ...b.points].every((g) => (reader === 'fixed' ? g.fixedEnhanced : g.cotrainedEnhanced).n > 0)) continue;
        const bDominated = dominatedCount(c, a, b, reader);
        const aDominated = dominatedCount(c, b, a, reader);
        const verdict = bDominated === b.points.length ? 'a-dominates' : aDominated === a.points.length ? 'b-dominates' : 'neither';
        const who = reader === 'fixed' ? 'fixed VR' : 'co-trained VR';
        const lams = (f: Front) => (isReference(f.points[0]!) ? '' : ` (λ ${f.points.map((g) => lambdaLabel(g, mixed)).join(', ')})`);
        const counts = `\`${a.label}\` dominates ${bDominated} of ${b.points.length} \`${b.label}\` point(s), \`${b.label}\` dominates ${aDominated} of ${a.points.length} \`${a.label}\` point(s)`;
        const head = `\`${a.label}\`${lams(a)} against \`${b.label}\`${lams(b)}, ${who}`;
        const text =
          verdict === 'neither'
            ? `${head}: neither front dominates the other (unadjusted; ${counts})`
            : `${head}: the \`${verdict === 'a-dominates' ? a.label : b.label}\` front dominates (unadjusted; ${counts})`;
        out.push({
          a: a.label,
          b: b.label,
          reader,
          verdict,
          bDominated,
          aDominated,
          aPoints: a.points.length,
          bPoints: b.points.length,
          text,
        });
      }
    }
  }
  return out;
}
