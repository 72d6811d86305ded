/** The descent cosine cos(g_IP, g) of a decision: from the Gram and the weights, or from the vectors. */
import { applyDecision, gramFromVectors, gradprom, ipDescent, ipDescentFromGram, ipDescentFromVectors, joint } from 'gradprom';
import { example, gramCases, opts, vectorCases } from '../policy/cases.js';

describe('ipDescent', () => {
  test('from the Gram equals the cosine of the merged vector', () => {
    for (const c of vectorCases()) {
      for (const policy of [joint.create(opts({ lambda: 3 })), gradprom.create(opts({ lambda: 3, granularity: 'layer' }))]) {
        const d = policy.decideFromVectors(c.layout, c.gIp, c.gVr);
        if (d.telemetry.skipped || d.kind !== 'weights') continue;
        const merged = applyDecision(d, c.layout, c.gIp, c.gVr);
        if (!merged.every(Number.isFinite)) continue; // 1e30-norm vectors times λ overflow float32: no vector to compare
        const fromGram = ipDescent(d, gramFromVectors(c.layout, c.gIp, c.gVr));
        expect(fromGram).toBeCloseTo(ipDescentFromVectors(c.gIp, merged), 5);
      }
    }
  });

  test('pinned: the example with joint at λ = 0.5 and λ = 10', () => {
    // g = g_IP + λ g_VR: <g_IP, g> = 6.5 + λ·3.75, ‖g‖² = 6.5 + 2λ·3.75 + λ²·7.25.
    for (const lam of [0.5, 10]) {
      const dot = 6.5 + lam * 3.75;
      const sq = 6.5 + 2 * lam * 3.75 + lam * lam * 7.25;
      expect(ipDescentFromGram(example.gram, [1, 1], [lam, lam])).toBeCloseTo(dot / Math.sqrt(6.5 * sq), 12);
    }
    expect(ipDescentFromGram(example.gram, [1, 1], [0, 0])).toBeCloseTo(1, 12);
  });

  test("gradprom's merged gradient never points against g_IP; joint's does when a large VR term conflicts", () => {
    let jointNegative = 0;
    for (const c of gramCases()) {
      for (const granularity of ['global', 'layer'] as const) {
        for (const lambdaMode of ['plain', 'normalized'] as const) {
          const o = opts({ lambda: 10, granularity, lambdaMode });
          const g = gradprom.create(o).decide({ layout: c.layout, gram: c.gram });
          if (!g.telemetry.skipped) expect(ipDescent(g, c.gram)).toBeGreaterThanOrEqual(0);
          const j = joint.create(o).decide({ layout: c.layout, gram: c.gram });
          if (!j.telemetry.skipped && ipDescent(j, c.gram) < 0) jointNegative++;
        }
      }
    }
    expect(jointNegative).toBeGreaterThan(0);
  });

  test('a merged-vector decision is measured on the vectors', () => {
    const merged = new Float32Array([-1, -2, 0, 1, -0.5, -0.5]);
    const d = {
      kind: 'vector' as const,
      merged,
      telemetry: { cos: 0, gate: null, gateRate: 0, ipNorm: 0, vrNorm: 0, lambdaEff: 0, skipped: false },
    };
    expect(ipDescent(d, example.gram, example.gIp)).toBeCloseTo(-1, 6);
    expect(() => ipDescent(d, example.gram)).toThrow(/needs g_IP/);
  });
});
