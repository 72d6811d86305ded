/** What a comparison report is computed from: the runs' summaries, grouped, and their per-image results. */
import { groupRuns, type GroupSummary } from './groups.js';
import type { PerImage } from './per-image.js';
import type { RunSummary } from './summary.js';

/** The runs of a comparison, with look-ups by group and seed. */
export interface Comparison {
  groups: GroupSummary[];
  summaries: readonly RunSummary[];
  /** The run of group `g` with training seed `seed`. */
  runOf(g: GroupSummary, seed: number): RunSummary | undefined;
  /** That run's per-image test results, when recorded. */
  perImageOf(g: GroupSummary, seed: number): PerImage | undefined;
}

/** A group's identity. */
export function groupKey(g: GroupSummary): string {
  return JSON.stringify([g.task, g.policy, g.lambdaMode, g.lambda]);
}

/** Group the summaries and index them and the per-image results (keyed by run name). */
export function makeComparison(summaries: readonly RunSummary[], perImage: ReadonlyMap<string, PerImage> = new Map()): Comparison {
  const byName = new Map(summaries.map((s) => [s.name, s]));
  const nameOf = (g: GroupSummary, seed: number): string | undefined => g.runs[g.seeds.indexOf(seed)];
  return {
    groups: groupRuns(summaries),
    summaries,
    runOf: (g, seed) => byName.get(nameOf(g, seed) ?? ''),
    perImageOf: (g, seed) => perImage.get(nameOf(g, seed) ?? ''),
  };
}
