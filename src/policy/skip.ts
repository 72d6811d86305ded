/** The decision for a step the trainer must skip (non-finite input, or a policy answer that does not fit). */
import { gramTotals } from './gram.js';
import type { Granularity, Gram, Telemetry, WeightsDecision } from './types.js';

/** The decision for a step the trainer must skip: weights [1, 0], finite telemetry apart from the norms. */
export function skippedDecision(gram: Gram, nBlocks: number, granularity: Granularity, reason: string): WeightsDecision {
  const t = gramTotals(gram);
  const telemetry: Telemetry = {
    cos: 0,
    gate: granularity === 'global' ? false : null,
    gateRate: 0,
    ipNorm: Math.sqrt(t.ipIp),
    vrNorm: Math.sqrt(t.vrVr),
    lambdaEff: 0,
    skipped: true,
    reason,
  };
  return { kind: 'weights', ip: new Float64Array(nBlocks).fill(1), vr: new Float64Array(nBlocks), telemetry };
}
