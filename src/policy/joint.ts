/**
 * `joint`: ESTR-style task-driven training, the VR gradient is always added.
 *
 * Rule: θ.grad = g_IP + λ_eff · g_VR  (the joint baseline of Zhang & Cheng, arXiv 2501.01114).
 */
import { weighBlocks } from './gram.js';
import type { PolicyOptions, PolicySpec, StepGrads } from './types.js';

/** Builds the joint policy (the gate is always open). */
export function joint(opts: PolicyOptions): PolicySpec {
  return {
    name: 'joint',
    input: 'gram',
    granularity: opts.granularity,
    decide: ({ gram }: StepGrads) => weighBlocks(gram, opts, (u) => ({ ip: 1, vr: u.lambdaEff, open: true })),
  };
}
