/**
 * `ip-only`: plain image enhancement, the VR gradient is never used.
 *
 * Rule: θ.grad = g_IP  (weights [1, 0]; the baseline of Zhang & Cheng, arXiv 2501.01114).
 */
import { definePolicy } from './define.js';
import { cosine, gramTotals } from './gram.js';

/** ip-only; it still reports the cosine, for comparison with the others. */
export const ipOnly = definePolicy({
  name: 'ip-only',
  input: 'gram',
  granularities: ['global'],
  doc: 'θ.grad = g_IP',
  usesVr: false,
  decide: ({ gram }) => {
    const n = gram.ipIp.length;
    const t = gramTotals(gram);
    return {
      kind: 'weights',
      ip: new Float64Array(n).fill(1),
      vr: new Float64Array(n),
      telemetry: {
        cos: cosine(t.ipVr, t.ipIp, t.vrVr),
        gate: false,
        gateRate: 0,
        ipNorm: Math.sqrt(t.ipIp),
        vrNorm: Math.sqrt(t.vrVr),
        lambdaEff: 0,
        skipped: false,
      },
    };
  },
});
