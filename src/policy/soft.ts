/**
 * `soft`: the VR gradient is added in proportion to its agreement with the IP gradient.
 *
 * Rule: θ.grad = g_IP + max(0, cos(g_IP, g_VR)) · λ_eff · g_VR  (Du et al., arXiv 1812.02224).
 */
import { definePolicy } from './define.js';
import { weighBlocks } from './weigh.js';

/** soft weighting; τ is not used (the weight itself fades to 0). */
export const soft = definePolicy({
  name: 'soft',
  input: 'gram',
  granularities: ['global', 'layer'],
  doc: 'θ.grad = g_IP + max(0, cos(g_IP, g_VR))·λ_eff·g_VR',
  decide: ({ gram }, opts) =>
    weighBlocks(gram, opts, (u) => {
      // cosine() is 0 for a zero-norm gradient, so that case is closed too.
      const open = u.cos > 0;
      return open ? { ip: 1, vr: u.cos * u.lambdaEff, open } : { ip: 1, vr: 0, open };
    }),
});
