/**
 * `soft`: the VR gradient is added in proportion to its agreement with the IP gradient.
 *
 * Rule: θ.grad = g_IP + max(0, cos(g_IP, g_VR)) · λ_eff · g_VR  (Du et al., arXiv 1812.02224).
 */
import { weighBlocks } from './gram.js';
import type { PolicyOptions, PolicySpec, StepGrads } from './types.js';

/** Builds the soft-weighting policy; the threshold option is not used (the weight itself fades to 0). */
export function soft(opts: PolicyOptions): PolicySpec {
  return {
    name: 'soft',
    input: 'gram',
    granularity: opts.granularity,
    decide: ({ gram }: StepGrads) =>
      weighBlocks(gram, opts, (u) => {
        // cosine() is 0 for a zero-norm gradient, so that case is closed too.
        const open = u.cos > 0;
        return open ? { ip: 1, vr: u.cos * u.lambdaEff, open } : { ip: 1, vr: 0, open };
      }),
  };
}
