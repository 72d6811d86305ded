/**
 * `joint-scaled`: a dose-matched control for gradprom; joint with λ scaled by gradprom's gate-open rate p.
 *
 * Rule: θ.grad = g_IP + (p·λ)_eff · g_VR  (every step; p = policy.open_rate, (·)_eff as for λ in plain or normalized mode).
 */
import { weighBlocks } from './gram.js';
import { openRateOf } from './random-gate.js';
import type { PolicyOptions, PolicySpec, StepGrads } from './types.js';

/** Builds the scaled joint policy: the gate is always open, the VR term p times joint's. */
export function jointScaled(opts: PolicyOptions): PolicySpec {
  const scaled = { ...opts, lambda: openRateOf(opts, 'joint-scaled') * opts.lambda };
  return {
    name: 'joint-scaled',
    input: 'gram',
    granularity: opts.granularity,
    decide: ({ gram }: StepGrads) => weighBlocks(gram, scaled, (u) => ({ ip: 1, vr: u.lambdaEff, open: true })),
  };
}
