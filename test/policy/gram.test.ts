/**
 * Gram helpers: Gram from vectors, cosines, λ_eff and applyDecision, including the numeric edge cases.
 */
import {
  applyDecision,
  blockCosines,
  cosine,
  effectiveLambda,
  globalCosine,
  gramFromVectors,
  gramTotals,
  type WeightsDecision,
} from 'gradprom';
import { example, layoutOf } from './cases.js';

describe('gramFromVectors', () => {
  test('per-block Gram of the shared example', () => {
    const g = gramFromVectors(example.layout, example.gIp, example.gVr);
    expect(Array.from(g.ipIp)).toEqual([6, 0.5]);
    expect(Array.from(g.vrVr)).toEqual([6, 1.25]);
    expect(Array.from(g.ipVr)).toEqual([4, -0.25]);
    expect(gramTotals(g)).toEqual({ ipIp: 6.5, vrVr: 7.25, ipVr: 3.75 });
  });

  test('accumulates in float64: tiny and huge float32 elements neither underflow nor overflow', () => {
    const layout = layoutOf([4]);
    const tiny = new Float32Array(4).fill(1e-30);
    const huge = new Float32Array(4).fill(1e30);
    const g = gramFromVectors(layout, tiny, huge);
    expect(g.ipIp[0]! / (4 * Math.fround(1e-30) ** 2)).toBeCloseTo(1, 12);
    expect(g.vrVr[0]! / (4 * Math.fround(1e30) ** 2)).toBeCloseTo(1, 12);
    expect(cosine(g.ipVr[0]!, g.ipIp[0]!, g.vrVr[0]!)).toBeCloseTo(1, 12);
  });

  test("a non-finite element makes its block's Gram non-finite", () => {
    const g = gramFromVectors(example.layout, Float32Array.from([1, 2, 0, -1, NaN, 0]), example.gVr);
    expect(Number.isFinite(g.ipIp[0]!)).toBe(true);
    expect(Number.isNaN(g.ipIp[1]!)).toBe(true);
  });
});

describe('cosine and λ_eff', () => {
  test('cos = dot / (‖a‖‖b‖ + 1e-12), clamped, 0 for a zero norm', () => {
    expect(cosine(4, 6, 6)).toBeCloseTo(2 / 3, 12);
    expect(cosine(1, 0, 5)).toBe(0);
    expect(cosine(0, 0, 0)).toBe(0);
    expect(cosine(1.0000001, 1, 1)).toBe(1);
    expect(cosine(-1e38, 1e38, 1e38)).toBeCloseTo(-1, 12);
    expect(Number.isFinite(cosine(1e300, 1e300, 1e300))).toBe(true);
    expect(blockCosines(example.gram)[1]).toBeCloseTo(-0.31622776601643793, 12);
    expect(globalCosine(example.gram)).toBeCloseTo(0.5462677805468428, 12);
  });

  test('λ_eff: plain is λ; normalized is λ‖g_IP‖/‖g_VR‖, 0 when either norm is 0, finite at the extremes', () => {
    expect(effectiveLambda(0.003, 'plain', 0, 0)).toBe(0.003);
    expect(effectiveLambda(0.5, 'normalized', 4, 16)).toBe(0.25);
    expect(effectiveLambda(0.5, 'normalized', 4, 0)).toBe(0);
    expect(effectiveLambda(0.5, 'normalized', 0, 4)).toBe(0);
    expect(Number.isFinite(effectiveLambda(1, 'normalized', 1e38, 5e-324))).toBe(true);
  });
});

describe('applyDecision', () => {
  const weightsOf = (ip: number[], vr: number[]): WeightsDecision => ({
    kind: 'weights',
    ip: Float64Array.from(ip),
    vr: Float64Array.from(vr),
    telemetry: { cos: 0, gate: null, gateRate: 0, ipNorm: 0, vrNorm: 0, lambdaEff: 0, skipped: false },
  });

  test('per-block weights form ip[b]·g_IP_b + vr[b]·g_VR_b', () => {
    const merged = applyDecision(weightsOf([1, 2], [0.5, -1]), example.layout, example.gIp, example.gVr);
    expect(Array.from(merged)).toEqual([2, 2.5, 0.5, -1, 2, 0.5]);
  });

  test('weights [1, 0] copy g_IP bit for bit, even next to a huge g_VR (and keep -0)', () => {
    const gIp = Float32Array.from([-0, 1e-45, 3.4e38, -1]);
    const gVr = Float32Array.from([3.4e38, -3.4e38, 3.4e38, 1]);
    const merged = applyDecision(weightsOf([1], [0]), layoutOf([4]), gIp, gVr);
    expect(merged).toEqual(gIp);
    expect(Object.is(merged[0], -0)).toBe(true);
  });

  test('a vector decision is returned as is', () => {
    const merged = new Float32Array(6).fill(7);
    const d = { kind: 'vector' as const, merged, telemetry: weightsOf([], []).telemetry };
    expect(applyDecision(d, example.layout, example.gIp, example.gVr)).toBe(merged);
  });
});
