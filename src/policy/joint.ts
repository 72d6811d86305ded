/**
 * `joint`: ESTR-style task-driven training, the VR gradient is always added.
 *
 * Rule: θ.grad = g_IP + λ_eff · g_VR  (the joint baseline of Zhang & Cheng, arXiv 2501.01114).
 */
import { definePolicy } from './define.js';
import { weighBlocks } from './weigh.js';

/** joint (the gate is always open). */
export const joint = definePolicy({
  name: 'joint',
  input: 'gram',
  granularities: ['global', 'layer'],
  doc: 'θ.grad = g_IP + λ_eff·g_VR',
  decide: ({ gram }, opts) => weighBlocks(gram, opts, (u) => ({ ip: 1, vr: u.lambdaEff, open: true })),
});
