/**
 * `pcgrad`: on conflict, each gradient is projected onto the normal plane of the other before summing.
 *
 * Rule (d = g_IP·g_VR < 0): θ.grad = (g_IP − d/‖g_VR‖² g_VR) + λ_eff (g_VR − d/‖g_IP‖² g_IP)
 *   = (1 − λ_eff d/‖g_IP‖²) g_IP + (λ_eff − d/‖g_VR‖²) g_VR; else g_IP + λ_eff g_VR  (Yu et al., arXiv 2001.06782).
 */
import { weighBlocks } from './gram.js';
import type { PolicyOptions, PolicySpec, StepGrads } from './types.js';

/** Builds the two-task PCGrad policy from the Gram; `gate` means "no conflict, nothing projected". */
export function pcgrad(opts: PolicyOptions): PolicySpec {
  return {
    name: 'pcgrad',
    input: 'gram',
    granularity: opts.granularity,
    decide: ({ gram }: StepGrads) =>
      weighBlocks(gram, opts, (u) => {
        // With a zero-norm gradient the true dot product is 0: no conflict, nothing to project.
        const conflict = u.aa > 0 && u.bb > 0 && u.dot < 0;
        if (!conflict) return { ip: 1, vr: u.lambdaEff, open: true };
        // d/‖g_IP‖² and d/‖g_VR‖² are bounded by ‖g_VR‖/‖g_IP‖ and its inverse: finite for finite input.
        return { ip: 1 - u.lambdaEff * (u.dot / u.aa), vr: u.lambdaEff - u.dot / u.bb, open: false };
      }),
  };
}
