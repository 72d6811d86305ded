/**
 * `ip-only`: plain image enhancement, the VR gradient is never used.
 *
 * Rule: θ.grad = g_IP  (weights [1, 0]; the baseline of Zhang & Cheng, arXiv 2501.01114).
 */
import { cosine, gramTotals } from './gram.js';
import type { PolicySpec, StepGrads, WeightsDecision } from './types.js';

/** Builds the ip-only policy; it still reports the cosine, for comparison with the others. */
export function ipOnly(): PolicySpec {
  return {
    name: 'ip-only',
    input: 'gram',
    granularity: 'global',
    usesVr: false,
    decide({ gram }: StepGrads): WeightsDecision {
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
  };
}
