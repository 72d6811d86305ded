/**
 * `gradprom`: Gradient Promotion, the VR gradient is added only where it agrees with the IP gradient.
 *
 * Rule: θ.grad = g_IP + λ_eff · g_VR if cos(g_IP, g_VR) > τ, else g_IP  (Zhang & Cheng, arXiv 2501.01114).
 */
import { weighBlocks } from './gram.js';
import type { PolicyOptions, PolicySpec, StepGrads } from './types.js';

/** Builds the GradProm policy; a zero-norm gradient never opens the gate, whatever τ is. */
export function gradprom(opts: PolicyOptions): PolicySpec {
  const tau = opts.threshold;
  return {
    name: 'gradprom',
    input: 'gram',
    granularity: opts.granularity,
    decide: ({ gram }: StepGrads) =>
      weighBlocks(gram, opts, (u) => {
        const open = u.aa > 0 && u.bb > 0 && u.cos > tau;
        return open ? { ip: 1, vr: u.lambdaEff, open } : { ip: 1, vr: 0, open };
      }),
  };
}
