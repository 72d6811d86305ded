/**
 * The built-in policies, three ways: pinned values on the shared example, properties over the shared input set, and gram-mode vs vectors-mode equivalence.
 */
import {
  applyDecision,
  blockCosines,
  gramFromVectors,
  makePolicy,
  policies,
  POLICY_NAMES,
  type Decision,
  type Granularity,
  type Gram,
  type LambdaMode,
  type Layout,
  type Policy,
  type PolicyName,
  type PolicyOptions,
  type StepContext,
  type WeightsDecision,
  uniformAt,
} from 'gradprom';
import { contextAt, example, gramCases, opts, vectorCases } from './cases.js';

/** Pinned values are compared at this absolute tolerance (they are float64 results of exact float32 inputs). */
const PIN_TOL = 1e-12;

function build(name: PolicyName, o: PolicyOptions): Policy {
  return policies[name].create(o);
}

function weights(d: Decision): WeightsDecision {
  if (d.kind !== 'weights') throw new Error('expected a weights decision');
  return d;
}

function decideExample(name: PolicyName, o: PolicyOptions): WeightsDecision {
  return weights(build(name, o).decide({ layout: example.layout, gram: example.gram }));
}

function expectClose(actual: ArrayLike<number>, expected: number[], tol = PIN_TOL): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(Math.abs(actual[i]! - e)).toBeLessThanOrEqual(tol));
}

const ALL: Array<{ name: PolicyName; granularity: Granularity; lambdaMode: LambdaMode }> = POLICY_NAMES.flatMap((name) =>
  (['global', 'layer'] as const).flatMap((granularity) =>
    (['plain', 'normalized'] as const).map((lambdaMode) => ({ name, granularity, lambdaMode })),
  ),
);
const GATED: readonly PolicyName[] = ['ip-only', 'gradprom', 'soft', 'random-gate'];

/**
 * Which blocks a gated policy's decision left closed. Global: all of them when the one gate is closed. Layer (where
 * telemetry.gate is null): each block by its own gate, closed when the block's cosine is not above τ = 0 (a zero-norm
 * gradient's cosine is 0), for random-gate when its draw is not below p = 0.5, for ip-only always.
 */
function closedBlocks(name: PolicyName, granularity: Granularity, d: Decision, gram: Gram, context: StepContext): boolean[] {
  const n = gram.ipIp.length;
  if (granularity === 'global') return Array<boolean>(n).fill(d.telemetry.gate === false);
  if (name === 'ip-only') return Array<boolean>(n).fill(true);
  if (name === 'random-gate') return Array.from({ length: n }, (_, b) => !(uniformAt(context, b) < 0.5));
  return Array.from(blockCosines(gram), (cos) => !(cos > 0));
}

describe(`pinned values on the shared example (tolerance ${PIN_TOL})`, () => {
  test('telemetry: global cosine and norms', () => {
    const t = decideExample('gradprom', opts()).telemetry;
    expect(Math.abs(t.cos - 0.5462677805468428)).toBeLessThanOrEqual(PIN_TOL);
    expect(Math.abs(t.ipNorm - 2.5495097567963922)).toBeLessThanOrEqual(PIN_TOL);
    expect(Math.abs(t.vrNorm - 2.692582403567252)).toBeLessThanOrEqual(PIN_TOL);
    expect(t).toMatchObject({ gate: true, gateRate: 1, lambdaEff: 0.5, skipped: false });
  });

  test.each([
    ['ip-only', 'global', 'plain', [1, 1], [0, 0], false, 0],
    ['joint', 'global', 'plain', [1, 1], [0.5, 0.5], true, 1],
    ['joint', 'layer', 'normalized', [1, 1], [0.5, 0.31622776601683794], null, 1],
    ['gradprom', 'global', 'plain', [1, 1], [0.5, 0.5], true, 1],
    ['gradprom', 'layer', 'plain', [1, 1], [0.5, 0], null, 0.5],
    ['gradprom', 'global', 'normalized', [1, 1], [0.4734320764739993, 0.4734320764739993], true, 1],
    ['soft', 'global', 'plain', [1, 1], [0.2731338902734214, 0.2731338902734214], true, 1],
    ['soft', 'layer', 'plain', [1, 1], [0.33333333333327775, 0], null, 0.5],
    ['pcgrad', 'global', 'plain', [1, 1], [0.5, 0.5], true, 1],
    ['pcgrad', 'layer', 'plain', [1, 1.25], [0.5, 0.7], null, 0.5],
    ['pcgrad', 'layer', 'normalized', [1, 1.158113883008419], [0.5, 0.516227766016838], null, 0.5],
  ] as const)('%s %s %s', (name, granularity, lambdaMode, ip, vr, gate, gateRate) => {
    const d = decideExample(name, opts({ granularity, lambdaMode }));
    expectClose(d.ip, [...ip]);
    expectClose(d.vr, [...vr]);
    expect(d.telemetry.gate).toBe(gate);
    expect(d.telemetry.gateRate).toBe(gateRate);
  });

  test('gradprom per layer: the merged vector takes g_VR in block 0 only', () => {
    const p = build('gradprom', opts({ granularity: 'layer' }));
    const merged = applyDecision(p.decideFromVectors(example.layout, example.gIp, example.gVr), example.layout, example.gIp, example.gVr);
    expect(Array.from(merged)).toEqual([2, 2.5, 0.5, -1, 0.5, 0.5]);
  });

  test('threshold: gradprom closes when cos ≤ τ, and a negative τ lets conflicts in', () => {
    expect(decideExample('gradprom', opts({ threshold: 0.6 })).telemetry.gate).toBe(false);
    expect(decideExample('gradprom', opts({ threshold: 0.5 })).telemetry.gate).toBe(true);
    expectClose(decideExample('gradprom', opts({ threshold: -0.5, granularity: 'layer' })).vr, [0.5, 0.5]);
  });
});

// The property tests gather what is wrong over all cases and assert once: a failure lists every case it failed on
// (and an expect per value, thousands of them, costs seconds).
describe('properties over the shared input set', () => {
  /** What is wrong with a decision's telemetry: a non-finite value, cos outside [−1, 1], the gate rate outside [0, 1], a skip. */
  const telemetryProblems = (label: string, d: Decision): unknown[] => {
    const t = d.telemetry;
    const out: unknown[] = [];
    for (const [k, v] of Object.entries({ cos: t.cos, gateRate: t.gateRate, ipNorm: t.ipNorm, vrNorm: t.vrNorm, lambdaEff: t.lambdaEff }))
      if (!Number.isFinite(v)) out.push([label, k, v]);
    if (!(t.cos >= -1 && t.cos <= 1)) out.push([label, 'cos', t.cos]);
    if (!(t.gateRate >= 0 && t.gateRate <= 1)) out.push([label, 'gateRate', t.gateRate]);
    if (t.skipped) out.push([label, 'skipped']);
    return out;
  };

  test.each(ALL)('$name $granularity $lambdaMode: Gram cases give finite weights; a closed gate gives exactly [1, 0]', (c) => {
    const p = build(c.name, opts({ ...c, lambda: 0.003 }));
    const problems: unknown[] = [];
    let closed = 0;
    for (const [i, { label, layout, gram }] of gramCases().entries()) {
      const d = weights(p.decide({ layout, gram, context: contextAt(i) }));
      problems.push(...telemetryProblems(label, d));
      for (let b = 0; b < layout.length; b++)
        if (!(Number.isFinite(d.ip[b]!) && Number.isFinite(d.vr[b]!))) problems.push([label, b, 'not finite', d.ip[b], d.vr[b]]);
      if (!GATED.includes(c.name)) continue;
      closedBlocks(c.name, c.granularity, d, gram, contextAt(i)).forEach((isClosed, b) => {
        if (!isClosed) return;
        closed++;
        if (!Object.is(d.ip[b], 1) || !Object.is(d.vr[b], 0)) problems.push([label, b, 'closed, but', d.ip[b], d.vr[b]]);
      });
    }
    expect(problems).toEqual([]);
    if (GATED.includes(c.name)) expect(closed).toBeGreaterThan(0); // the property was exercised
  });

  test.each(ALL)('$name $granularity $lambdaMode: vector cases give a finite merge; a closed gate returns g_IP bit for bit', (c) => {
    const p = build(c.name, opts({ ...c, lambda: 0.003 }));
    const problems: unknown[] = [];
    let closed = 0;
    for (const [i, { label, layout, gIp, gVr }] of vectorCases().entries()) {
      const d = weights(p.decideFromVectors(layout, gIp, gVr, contextAt(i)));
      problems.push(...telemetryProblems(label, d));
      const merged = applyDecision(d, layout, gIp, gVr);
      if (!merged.every(Number.isFinite)) problems.push([label, 'merge not finite']);
      if (!GATED.includes(c.name)) continue;
      closedBlocks(c.name, c.granularity, d, gramFromVectors(layout, gIp, gVr), contextAt(i)).forEach((isClosed, b) => {
        if (!isClosed) return;
        closed++;
        const { offset, numel } = layout[b]!;
        for (let k = offset; k < offset + numel; k++)
          if (!Object.is(merged[k], gIp[k])) return void problems.push([label, b, 'closed, but element', k, merged[k], 'is not', gIp[k]]);
      });
    }
    expect(problems).toEqual([]);
    if (GATED.includes(c.name)) expect(closed).toBeGreaterThan(0);
  });

  test('a zero-norm gradient is never aligned: cos 0, gate closed, whatever τ', () => {
    const zero = new Float32Array(6);
    for (const [gIp, gVr] of [
      [example.gIp, zero],
      [zero, example.gVr],
      [zero, zero],
    ] as const) {
      const d = weights(build('gradprom', opts({ threshold: -0.9 })).decideFromVectors(example.layout, gIp, gVr));
      expect(d.telemetry).toMatchObject({ cos: 0, gate: false, gateRate: 0 });
      expect(Array.from(d.vr)).toEqual([0, 0]);
      expect(applyDecision(d, example.layout, gIp, gVr)).toEqual(gIp);
    }
  });

  test('exactly orthogonal gradients: cos = 0 is not > τ = 0, so the gate is closed', () => {
    const orth = vectorCases().find((c) => c.label === 'exactly orthogonal')!;
    for (const name of ['gradprom', 'soft'] as const) {
      const d = weights(build(name, opts()).decideFromVectors(orth.layout, orth.gIp, orth.gVr));
      expect(d.telemetry).toMatchObject({ cos: 0, gate: false });
      expect(Array.from(d.vr)).toEqual([0, 0, 0]);
    }
  });

  test('normalized λ is 0 when ‖g_VR‖ = 0 and scales with ‖g_IP‖/‖g_VR‖', () => {
    const o = opts({ lambdaMode: 'normalized', lambda: 0.01 });
    const zeroVr = build('joint', o).decideFromVectors(example.layout, example.gIp, new Float32Array(6));
    expect(zeroVr.telemetry.lambdaEff).toBe(0);
    const big = Float32Array.from(example.gVr, (x) => x * 1000);
    const d = weights(build('joint', o).decideFromVectors(example.layout, example.gIp, big));
    expect(d.telemetry.lambdaEff).toBeCloseTo((0.01 * 2.5495097567963922) / (1000 * 2.692582403567252), 15);
  });
});

describe('equivalence: gram mode vs vectors mode', () => {
  /** Reference merge computed directly on the vectors, from the paper's formulas (no weights). */
  function reference(
    name: PolicyName,
    o: PolicyOptions,
    layout: Layout,
    gIp: Float32Array,
    gVr: Float32Array,
    context: StepContext,
  ): Float64Array {
    const out = Float64Array.from(gIp);
    const units = o.granularity === 'global' ? [[0, gIp.length]] : layout.map((b) => [b.offset, b.offset + b.numel]);
    const p = o.openRate ?? NaN;
    for (const [unit, [s, e]] of (units as Array<[number, number]>).entries()) {
      let aa = 0,
        bb = 0,
        dot = 0;
      for (let i = s; i < e; i++) {
        aa += gIp[i]! * gIp[i]!;
        bb += gVr[i]! * gVr[i]!;
        dot += gIp[i]! * gVr[i]!;
      }
      const zero = aa === 0 || bb === 0;
      const cos = zero ? 0 : dot / (Math.sqrt(aa) * Math.sqrt(bb) + 1e-12);
      const lambda = name === 'joint-scaled' ? p * o.lambda : o.lambda;
      const lam = o.lambdaMode === 'plain' ? lambda : zero ? 0 : (lambda * Math.sqrt(aa)) / Math.sqrt(bb);
      for (let i = s; i < e; i++) {
        const a = gIp[i]!,
          v = gVr[i]!;
        if (name === 'joint' || name === 'joint-scaled') out[i] = a + lam * v;
        if (name === 'random-gate') out[i] = uniformAt(context, unit) < p ? a + lam * v : a;
        if (name === 'gradprom') out[i] = !zero && cos > o.threshold ? a + lam * v : a;
        if (name === 'soft') out[i] = a + Math.max(0, cos) * lam * v;
        if (name === 'pcgrad') {
          out[i] = !zero && dot < 0 ? a - (dot / bb) * v + lam * (v - (dot / aa) * a) : a + lam * v;
        }
      }
    }
    return out;
  }

  test.each(ALL)('$name $granularity $lambdaMode: applyDecision(decide(Gram)) equals the direct vector formula', (c) => {
    const o = opts({ ...c, lambda: 0.3 });
    const open_rate = policies[c.name].usesOpenRate ? o.openRate : null;
    const p = makePolicy({
      name: c.name,
      lambda: o.lambda,
      lambda_mode: c.lambdaMode,
      threshold: 0,
      granularity: c.granularity,
      open_rate,
    });
    for (const [k, { label, layout, gIp, gVr }] of [...vectorCases(), { label: 'example', ...example }].entries()) {
      const gram = gramFromVectors(layout, gIp, gVr);
      const context = contextAt(k);
      const fromGram = applyDecision(p.decide({ layout, gram, context }), layout, gIp, gVr);
      const fromVectors = applyDecision(p.decideFromVectors(layout, gIp, gVr, context), layout, gIp, gVr);
      expect([label, fromVectors]).toEqual([label, fromGram]);
      const ref = reference(c.name, o, layout, gIp, gVr, context);
      const scale = Math.max(...Array.from(ref, Math.abs), 0);
      // float32 rounding of the merge: relative 1e-6 of the largest element.
      const off = Array.from(ref.keys()).filter((i) => !(Math.abs(fromGram[i]! - ref[i]!) <= 1e-6 * scale));
      expect([label, off.map((i) => [i, fromGram[i], ref[i]])]).toEqual([label, []]);
    }
  });
});
