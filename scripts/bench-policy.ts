/** Section 4 of `npm run bench`: policy compute in TypeScript on large flat vectors, in GB/s of gradient data read. */
import { applyDecision, makePolicy, type Layout } from '../src/policy/index.js';
import { DEFAULTS } from '../src/config/index.js';
import { median } from '../src/report/stats.js';
import { randomVector } from './bench-util.js';

export interface PolicyRow {
  what: string;
  /** Bytes of gradient data read per call. */
  bytes: number;
  ms: number[];
}

/**
 * Times decideFromVectors (the vectors-mode path: per-block Gram in one fused pass, then the rule) and the TS merge.
 * Calls are interleaved across the cases, after a common warm-up, so that JIT tiering and drift fall on all alike.
 */
export async function policyCompute(layout: Layout, reps: number): Promise<PolicyRow[]> {
  const last = layout[layout.length - 1]!;
  const n = last.offset + last.numel;
  const gIp = randomVector(n, 1);
  const gVr = randomVector(n, 2);
  const cases: { what: string; run: () => unknown }[] = [];
  for (const name of ['gradprom', 'pcgrad'] as const) {
    for (const granularity of ['global', 'layer'] as const) {
      const policy = makePolicy({ ...DEFAULTS.policy, name, granularity });
      cases.push({ what: `${name} (${granularity}): decideFromVectors`, run: () => policy.decideFromVectors(layout, gIp, gVr) });
    }
  }
  // Forming the merged vector in TypeScript (what a vector-returning policy would add): reads both, writes one.
  const decision = makePolicy({ ...DEFAULTS.policy, name: 'pcgrad', lambda: 0.5 }).decideFromVectors(layout, gIp, gVr);
  cases.push({ what: 'applyDecision (merged vector in TS)', run: () => applyDecision(decision, layout, gIp, gVr) });
  const times = cases.map(() => [] as number[]);
  for (let r = -2; r < reps; r++) {
    for (const [i, c] of cases.entries()) {
      const t0 = performance.now();
      c.run();
      if (r >= 0) times[i]!.push(performance.now() - t0);
    }
  }
  return cases.map((c, i) => ({ what: c.what, bytes: 2 * n * 4, ms: times[i]! }));
}

/** GB/s of gradient data read, from the median time. */
export function readGbps(row: PolicyRow): number {
  return row.bytes / 1e9 / (median(row.ms) / 1000);
}
