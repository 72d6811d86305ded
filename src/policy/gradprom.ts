/**
 * `gradprom`: Gradient Promotion, the VR gradient is added only where it agrees with the IP gradient.
 *
 * Rule: θ.grad = g_IP + λ_eff · g_VR if cos(g_IP, g_VR) > τ, else g_IP  (Zhang & Cheng, arXiv 2501.01114).
 *
 * Descent: for τ ≥ 0 the planned update never points against g_IP (⟨g_IP, θ.grad⟩ = ‖g_IP‖² + λ_eff·g_IP·g_VR ≥ ‖g_IP‖² when
 * open), so cos(g_IP, θ.grad) ≥ 0; a negative τ lets conflicting g_VR in, and then the planned descent can be negative.
 * Per layer this holds block by block, hence for the sum.
 */
import { definePolicy } from './define.js';
import { weighBlocks } from './weigh.js';

/** GradProm; a zero-norm gradient never opens the gate, whatever τ is. */
export const gradprom = definePolicy({
  name: 'gradprom',
  input: 'gram',
  granularities: ['global', 'layer'],
  doc: 'θ.grad = g_IP + λ_eff·g_VR if cos(g_IP, g_VR) > τ, else g_IP',
  decide: ({ gram }, opts) =>
    weighBlocks(gram, opts, (u) => {
      const open = u.ipNormSq > 0 && u.vrNormSq > 0 && u.cos > opts.threshold;
      return open ? { ip: 1, vr: u.lambdaEff, open } : { ip: 1, vr: 0, open };
    }),
});
