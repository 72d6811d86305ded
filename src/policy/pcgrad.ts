/**
 * `pcgrad`: on conflict, each gradient is projected onto the normal plane of the other before summing.
 *
 * Rule (d = g_IP·g_VR < 0): θ.grad = (g_IP − d/‖g_VR‖² g_VR) + λ_eff (g_VR − d/‖g_IP‖² g_IP)
 *   = (1 − λ_eff d/‖g_IP‖²) g_IP + (λ_eff − d/‖g_VR‖²) g_VR; else g_IP + λ_eff g_VR  (Yu et al., arXiv 2001.06782).
 */
import { definePolicy } from './define.js';
import { weighBlocks } from './weigh.js';

/** Two-task PCGrad from the Gram; `gate` means "no conflict, nothing projected". */
export const pcgrad = definePolicy({
  name: 'pcgrad',
  input: 'gram',
  granularities: ['global', 'layer'],
  doc: 'θ.grad = (1 − λ_eff·d/‖g_IP‖²)·g_IP + (λ_eff − d/‖g_VR‖²)·g_VR if d = g_IP·g_VR < 0, else g_IP + λ_eff·g_VR',
  decide: ({ gram }, opts) =>
    weighBlocks(gram, opts, (u) => {
      // With a zero-norm gradient the true dot product is 0: no conflict, nothing to project.
      const conflict = u.ipNormSq > 0 && u.vrNormSq > 0 && u.dot < 0;
      if (!conflict) return { ip: 1, vr: u.lambdaEff, open: true };
      // d/‖g_IP‖² and d/‖g_VR‖² are bounded by ‖g_VR‖/‖g_IP‖ and its inverse: finite for finite input.
      return { ip: 1 - u.lambdaEff * (u.dot / u.ipNormSq), vr: u.lambdaEff - u.dot / u.vrNormSq, open: false };
    }),
});
