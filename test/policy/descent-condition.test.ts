/**
 * The condition on gradprom's descent property: the planned update cos(g_IP, θ.grad) is never negative for τ ≥ 0,
 * and can be for τ < 0, where the gate lets a conflicting g_VR in.
 */
import { gradprom, ipDescent, type Gram } from 'gradprom';
import { gramCases, layoutOf, opts } from './cases.js';

describe("gradprom's planned descent", () => {
  test('is never negative for τ ≥ 0 (every Gram case, both granularities and λ modes, a large λ)', () => {
    let checked = 0;
    for (const threshold of [0, 0.3, 0.9]) {
      for (const c of gramCases()) {
        for (const granularity of ['global', 'layer'] as const) {
          for (const lambdaMode of ['plain', 'normalized'] as const) {
            const d = gradprom.create(opts({ lambda: 10, threshold, granularity, lambdaMode })).decide({ layout: c.layout, gram: c.gram });
            if (d.telemetry.skipped) continue;
            expect([c.label, ipDescent(d, c.gram) >= 0]).toEqual([c.label, true]);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
  });

  test('can be negative for τ < 0: g_IP = (1, 0), g_VR = (−1, 0.5), λ = 10, τ = −0.95', () => {
    // cos = −1/√1.25 ≈ −0.894 > τ, so the gate opens: θ.grad = (1 − 10, 5) = (−9, 5), ⟨g_IP, θ.grad⟩ = −9.
    const gram: Gram = { ipIp: new Float64Array([1]), vrVr: new Float64Array([1.25]), ipVr: new Float64Array([-1]) };
    const layout = layoutOf([2]);
    const open = gradprom.create(opts({ lambda: 10, threshold: -0.95 })).decide({ layout, gram });
    expect(open.telemetry.gate).toBe(true);
    expect(ipDescent(open, gram)).toBeCloseTo(-9 / Math.sqrt(106), 12);
    // The same step at τ = 0 keeps the gate shut: the update is g_IP itself.
    const closed = gradprom.create(opts({ lambda: 10, threshold: 0 })).decide({ layout, gram });
    expect(closed.telemetry.gate).toBe(false);
    expect(ipDescent(closed, gram)).toBeCloseTo(1, 9); // 1 up to the cosine's 1e-12 in the denominator
  });
});
