/**
 * `joint-scaled`: a dose-matched control for gradprom; joint with λ scaled by gradprom's gate-open rate p.
 *
 * Rule: θ.grad = g_IP + (p·λ)_eff · g_VR  (every step; p = policy.open_rate, (·)_eff as for λ in plain or normalized mode).
 */
import { definePolicy } from './define.js';
import { openRateOf } from './open-rate.js';
import { weighBlocks } from './weigh.js';

/** The scaled joint policy: the gate is always open, the VR term p times joint's. */
export const jointScaled = definePolicy({
  name: 'joint-scaled',
  input: 'gram',
  granularities: ['global', 'layer'],
  doc: 'θ.grad = g_IP + (p·λ)_eff·g_VR',
  usesOpenRate: true,
  decide: ({ gram }, opts) =>
    weighBlocks(gram, { ...opts, lambda: openRateOf(opts, 'joint-scaled') * opts.lambda }, (u) => ({ ip: 1, vr: u.lambdaEff, open: true })),
});
