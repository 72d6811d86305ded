/** Applying a decision: the merged update θ.grad_b = w_ip[b]·g_IP_b + w_vr[b]·g_VR_b, as the sidecar forms it. */
import type { Decision, Layout } from './types.js';

/** Forms the merged update from a decision (float64 arithmetic, float32 result); weights [1, 0] copy g_IP exactly. */
export function applyDecision(decision: Decision, layout: Layout, gIp: Float32Array, gVr: Float32Array): Float32Array {
  if (decision.kind === 'vector') return decision.merged;
  const out = new Float32Array(gIp.length);
  for (let b = 0; b < layout.length; b++) {
    const { offset, numel } = layout[b]!;
    const wi = decision.ip[b]!;
    const wv = decision.vr[b]!;
    const end = offset + numel;
    if (wv === 0 && wi === 1) {
      out.set(gIp.subarray(offset, end), offset);
      continue;
    }
    for (let i = offset; i < end; i++) out[i] = wi * gIp[i]! + wv * gVr[i]!;
  }
  return out;
}
