/**
 * The Lemma's descent property per step: cos(g_IP, g) of the merged update g a decision hands the optimizer.
 *
 * From the per-block Gram and the weights (g_b = w_ip[b]·g_IP_b + w_vr[b]·g_VR_b), in float64, block order:
 *   ⟨g_IP, g⟩ = Σ_b w_ip[b]‖g_IP_b‖² + w_vr[b]⟨g_IP_b, g_VR_b⟩,
 *   ‖g‖² = Σ_b w_ip[b]²‖g_IP_b‖² + 2 w_ip[b] w_vr[b]⟨g_IP_b, g_VR_b⟩ + w_vr[b]²‖g_VR_b‖²
 * — the arithmetic of python/gradprom_sidecar/training/descent.py, so the reference run agrees to the last bit.
 * A merged-vector decision is measured on the vectors themselves.
 *
 * gradprom's planned descent is non-negative only for τ ≥ 0: its gate opens only where g_IP·g_VR > 0 then; a negative τ
 * admits a conflicting g_VR, and a large enough λ then plans a step uphill for IP.
 */
import { cosine, type Decision, type Gram } from '../policy/index.js';

/** cos(g_IP, g) from the Gram and per-block weights (0 when either vector is zero). */
export function ipDescentFromGram(gram: Gram, wIp: ArrayLike<number>, wVr: ArrayLike<number>): number {
  let aa = 0;
  let dot = 0;
  let sq = 0;
  for (let b = 0; b < gram.ipIp.length; b++) {
    const wi = wIp[b]!;
    const wv = wVr[b]!;
    aa += gram.ipIp[b]!;
    dot += wi * gram.ipIp[b]! + wv * gram.ipVr[b]!;
    sq += wi * wi * gram.ipIp[b]! + 2 * wi * wv * gram.ipVr[b]! + wv * wv * gram.vrVr[b]!;
  }
  return cosine(dot, aa, Math.max(0, sq)); // rounding can take a zero ‖g‖² a hair below 0
}

/** cos(g_IP, g) of two flat vectors, accumulated in float64. */
export function ipDescentFromVectors(gIp: Float32Array, merged: Float32Array): number {
  let aa = 0;
  let dot = 0;
  let sq = 0;
  for (let i = 0; i < gIp.length; i++) {
    const a = gIp[i]!;
    const m = merged[i]!;
    aa += a * a;
    dot += a * m;
    sq += m * m;
  }
  return cosine(dot, aa, sq);
}

/** cos(g_IP, g) for a decision: weights through the Gram, a merged vector against g_IP (needs `gIp`). */
export function ipDescent(decision: Decision, gram: Gram, gIp?: Float32Array): number {
  if (decision.kind === 'weights') return ipDescentFromGram(gram, decision.ip, decision.vr);
  if (!gIp) throw new Error('ipDescent: a merged-vector decision needs g_IP');
  return ipDescentFromVectors(gIp, decision.merged);
}
