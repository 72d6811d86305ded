/**
 * The dose-matched controls: random-gate (opens with probability p from a seeded, step-keyed draw) and joint-scaled (p·λ
 * every step); the draw shared bit for bit with the Python oracle; and the config's `policy.open_rate`.
 */
import {
  applyDecision,
  defaultRunName,
  gramFromVectors,
  isGradpromError,
  makePolicy,
  parseConfig,
  policies,
  uniformAt,
  type Decision,
  type Granularity,
} from 'gradprom';
import { example, layoutOf, opts } from './cases.js';

function weights(d: Decision) {
  if (d.kind !== 'weights') throw new Error('expected a weights decision');
  return d;
}

const randomGate = (p: number, granularity: Granularity = 'global') => policies['random-gate'].create(opts({ openRate: p, granularity }));

describe('the seeded draw', () => {
  test('the same values as python/tests/test_policies.py (the two languages draw the same bits)', () => {
    expect([uniformAt({ seed: 0, step: 0 }, 0), uniformAt({ seed: 0, step: 1 }, 0), uniformAt({ seed: 2 ** 32 + 5, step: 4 }, 1)]).toEqual([
      0.4888014190364629, 0.12302647973410785, 0.7146766202058643,
    ]);
  });

  test('depends on the seed, the step and the unit, and refuses what is not a non-negative integer', () => {
    const u = uniformAt({ seed: 1, step: 5 }, 0);
    expect(uniformAt({ seed: 2, step: 5 }, 0)).not.toBe(u);
    expect(uniformAt({ seed: 1, step: 6 }, 0)).not.toBe(u);
    expect(uniformAt({ seed: 1, step: 5 }, 1)).not.toBe(u);
    expect(uniformAt({ seed: 2 ** 32 + 1, step: 5 }, 0)).not.toBe(u); // the seed's high word counts
    expect(() => uniformAt({ seed: 1, step: -1 }, 0)).toThrow(/step: expected an integer/);
    expect(() => uniformAt({ seed: 0.5, step: 1 }, 0)).toThrow(/seed: expected an integer/);
  });
});

describe('random-gate', () => {
  // 20 000 steps: the binomial standard deviation of the rate is ≤ 0.0036; the bound is 5 of them. Deterministic draws:
  // the rates below are fixed numbers, so this passes or fails the same way on every run.
  test.each([0.1, 0.5, 0.71, 0.9])('opens on a fraction ≈ p = %f of 20 000 steps (global)', (p) => {
    const policy = randomGate(p);
    const n = 20000;
    let open = 0;
    for (let step = 0; step < n; step++) {
      if (policy.decide({ layout: example.layout, gram: example.gram, context: { seed: 11, step } }).telemetry.gate) open++;
    }
    expect(Math.abs(open / n - p)).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / n));
  });

  test('per layer: each block draws on its own, at rate ≈ p, and the blocks do not move together', () => {
    const p = 0.3;
    const policy = randomGate(p, 'layer');
    const layout = layoutOf([1, 1, 1, 1]);
    const gram = { ipIp: new Float64Array(4).fill(1), vrVr: new Float64Array(4).fill(1), ipVr: new Float64Array(4).fill(0.5) };
    const n = 5000;
    const opens = [0, 0, 0, 0];
    let allOrNone = 0;
    for (let step = 0; step < n; step++) {
      const d = weights(policy.decide({ layout, gram, context: { seed: 4, step } }));
      const open = Array.from(d.vr, (v) => v > 0);
      open.forEach((o, b) => (opens[b]! += o ? 1 : 0));
      if (open.every(Boolean) || !open.some(Boolean)) allOrNone++;
      expect(d.telemetry.gateRate).toBe(open.filter(Boolean).length / 4);
    }
    for (const k of opens) expect(Math.abs(k / n - p)).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / n));
    // Independent blocks: P(all or none) = 0.3⁴ + 0.7⁴ ≈ 0.248, far from the 1 of a shared draw.
    expect(allOrNone / n).toBeLessThan(0.35);
  });

  test('p = 0 never opens, p = 1 always opens', () => {
    for (let step = 0; step < 500; step++) {
      const context = { seed: 9, step };
      expect(randomGate(0).decide({ layout: example.layout, gram: example.gram, context }).telemetry.gate).toBe(false);
      expect(randomGate(1).decide({ layout: example.layout, gram: example.gram, context }).telemetry.gate).toBe(true);
    }
  });

  test('a resumed run draws the same: the decision depends on (seed, step) only, not on what was decided before', () => {
    const first = randomGate(0.5);
    const straight = Array.from({ length: 200 }, (_, step) => first.decide({ ...example, context: { seed: 5, step } }).telemetry.gate);
    const resumed = randomGate(0.5); // a fresh policy, as after a restart, starting at step 120
    const tail = Array.from({ length: 80 }, (_, i) => resumed.decide({ ...example, context: { seed: 5, step: 120 + i } }).telemetry.gate);
    expect(tail).toEqual(straight.slice(120));
    expect(straight.some(Boolean) && !straight.every(Boolean)).toBe(true);
    const other = Array.from({ length: 200 }, (_, step) => first.decide({ ...example, context: { seed: 6, step } }).telemetry.gate);
    expect(other).not.toEqual(straight);
  });

  test("open: exactly gradprom's open update; closed: exactly g_IP, bit for bit", () => {
    const gradprom = policies.gradprom.create(opts({ lambdaMode: 'normalized' }));
    const gate = policies['random-gate'].create(opts({ lambdaMode: 'normalized', openRate: 0.5 }));
    const g = weights(gradprom.decide(example)); // cos 0.546 > 0: gradprom is open here
    const seen = { open: 0, closed: 0 };
    for (let step = 0; step < 40; step++) {
      const d = weights(gate.decideFromVectors(example.layout, example.gIp, example.gVr, { seed: 1, step }));
      const merged = applyDecision(d, example.layout, example.gIp, example.gVr);
      if (d.telemetry.gate) {
        seen.open++;
        expect([Array.from(d.ip), Array.from(d.vr), d.telemetry.lambdaEff]).toEqual([
          Array.from(g.ip),
          Array.from(g.vr),
          g.telemetry.lambdaEff,
        ]);
        expect(merged).toEqual(applyDecision(g, example.layout, example.gIp, example.gVr));
      } else {
        seen.closed++;
        expect(merged).toEqual(example.gIp);
      }
    }
    expect(seen.open > 0 && seen.closed > 0).toBe(true);
  });

  test('vectors mode decides as gram mode does, global and per layer', () => {
    for (const granularity of ['global', 'layer'] as const) {
      const policy = randomGate(0.4, granularity);
      for (let step = 0; step < 50; step++) {
        const context = { seed: 2, step };
        const fromVectors = weights(policy.decideFromVectors(example.layout, example.gIp, example.gVr, context));
        const gram = gramFromVectors(example.layout, example.gIp, example.gVr);
        const fromGram = weights(policy.decide({ layout: example.layout, gram, context }));
        expect([Array.from(fromVectors.ip), Array.from(fromVectors.vr)]).toEqual([Array.from(fromGram.ip), Array.from(fromGram.vr)]);
      }
    }
  });

  test('without the step context it throws instead of guessing', () => {
    expect(() => randomGate(0.5).decide(example)).toThrow(/needs the step and the run seed/);
  });
});

describe('joint-scaled', () => {
  test('adds p·λ_eff·g_VR every step: joint with λ scaled by p', () => {
    for (const lambdaMode of ['plain', 'normalized'] as const) {
      for (const granularity of ['global', 'layer'] as const) {
        const scaled = weights(policies['joint-scaled'].create(opts({ lambdaMode, granularity, openRate: 0.25 })).decide(example));
        const joint = weights(policies.joint.create(opts({ lambdaMode, granularity, lambda: 0.25 * 0.5 })).decide(example));
        expect([Array.from(scaled.ip), Array.from(scaled.vr), scaled.telemetry]).toEqual([
          Array.from(joint.ip),
          Array.from(joint.vr),
          joint.telemetry,
        ]);
      }
    }
    const plain = weights(policies['joint-scaled'].create(opts({ openRate: 0.25 })).decide(example));
    expect(Array.from(plain.vr)).toEqual([0.125, 0.125]);
    expect(plain.telemetry).toMatchObject({ gate: true, gateRate: 1, lambdaEff: 0.125 });
  });

  test('p = 1 is joint, p = 0 is g_IP', () => {
    const joint = weights(policies.joint.create(opts()).decide(example));
    expect(Array.from(weights(policies['joint-scaled'].create(opts({ openRate: 1 })).decide(example)).vr)).toEqual(Array.from(joint.vr));
    const none = policies['joint-scaled'].create(opts({ openRate: 0 })).decideFromVectors(example.layout, example.gIp, example.gVr);
    expect(applyDecision(none, example.layout, example.gIp, example.gVr)).toEqual(example.gIp);
  });
});

describe('policy.open_rate in the config', () => {
  const issues = (policy: object) => {
    const r = parseConfig({ policy });
    return r.ok ? [] : r.issues.map((i) => `${i.code} ${i.path}: ${i.message}`);
  };

  test('required by random-gate and joint-scaled, a number in [0, 1]', () => {
    expect(issues({ name: 'random-gate' })).toEqual([
      expect.stringMatching(/^required policy\.open_rate: required by policy "random-gate"/),
    ]);
    expect(issues({ name: 'joint-scaled' })).toEqual([
      expect.stringMatching(/^required policy\.open_rate: required by policy "joint-scaled"/),
    ]);
    expect(issues({ name: 'random-gate', open_rate: 1.5 })).toEqual([
      expect.stringMatching(/^too_big policy\.open_rate: expected number <= 1/),
    ]);
    expect(issues({ name: 'random-gate', open_rate: 0.7 })).toEqual([]);
    const r = parseConfig({ policy: { name: 'joint-scaled', open_rate: 0.7 } });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(makePolicy(r.config.policy).decide(example).telemetry.lambdaEff).toBeCloseTo(0.7 * 0.003, 15);
  });

  test('refused for the policies that do not read it, so a control setting cannot silently do nothing', () => {
    expect(issues({ name: 'gradprom', open_rate: 0.7 })).toEqual([
      expect.stringMatching(/^unused policy\.open_rate: policy "gradprom" does not read it \(only random-gate and joint-scaled do\)/),
    ]);
    expect(issues({ name: 'gradprom' })).toEqual([]);
  });

  test('a policy built without p is a CONFIG error naming policy.open_rate', () => {
    try {
      policies['random-gate'].create(opts({ openRate: null }));
      throw new Error('no error');
    } catch (e) {
      expect(isGradpromError(e, 'CONFIG')).toBe(true);
      expect(String(e)).toMatch(/policy\.open_rate: policy "random-gate" needs a number in \[0, 1\], got nothing/);
    }
  });
});

test('a control run folder is named with its p, so controls at two open rates do not share one', () => {
  const r = parseConfig({ seed: 2, policy: { name: 'random-gate', open_rate: 0.71 } });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  expect(defaultRunName(r.config)).toBe('random-gate-l0.003-p0.71-s2');
});
