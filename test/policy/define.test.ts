/**
 * definePolicy, the registry and makePolicy: the documented user policy, input checks that skip a step, and the config bridge.
 */
import { applyDecision, definePolicy, makePolicy, policies, POLICY_NAMES, weighBlocks, type Decision, type PolicyConfig } from 'gradprom';
import { parseConfig } from 'gradprom';
import { example } from './cases.js';

// The example from src/policy/index.ts, verbatim apart from the import.
const strictGate = definePolicy({
  name: 'strict-gate',
  input: 'gram',
  granularity: 'global',
  decide: ({ gram }) =>
    weighBlocks(gram, { lambda: 0.003, lambdaMode: 'plain', granularity: 'global' }, (u) =>
      u.cos > 0.5 ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false },
    ),
});

function expectSkipped(d: Decision, reason: RegExp): void {
  expect(d.telemetry.skipped).toBe(true);
  expect(d.telemetry.reason).toMatch(reason);
  expect(Number.isNaN(d.telemetry.cos)).toBe(false);
  if (d.kind !== 'weights') throw new Error('skipped decisions are weights');
  expect(Array.from(d.ip)).toEqual(Array.from(d.ip, () => 1));
  expect(Array.from(d.vr)).toEqual(Array.from(d.vr, () => 0));
}

describe('definePolicy', () => {
  test('the documented strict-gate policy opens at cos 0.546 > 0.5 and closes for a conflict', () => {
    const open = strictGate.decide({ layout: example.layout, gram: example.gram });
    expect(open.telemetry).toMatchObject({ gate: true, lambdaEff: 0.003 });
    const flipped = Float32Array.from(example.gVr, (x) => -x);
    expect(strictGate.decideFromVectors(example.layout, example.gIp, flipped).telemetry.gate).toBe(false);
  });

  test('a vectors-input policy gets the vectors and may answer with a merged vector', () => {
    const signAgree = definePolicy({
      name: 'sign-agree',
      input: 'vectors',
      granularity: 'global',
      decide: ({ gIp, gVr, gram }) => {
        const merged = Float32Array.from(gIp!, (a, i) => (Math.sign(a) === Math.sign(gVr![i]!) ? a + gVr![i]! : a));
        return { kind: 'vector', merged, telemetry: strictGate.decide({ layout: example.layout, gram }).telemetry };
      },
    });
    const d = signAgree.decideFromVectors(example.layout, example.gIp, example.gVr);
    expect(Array.from(applyDecision(d, example.layout, example.gIp, example.gVr))).toEqual([3, 3, 0, -1, 0.5, 1]);
    expectSkipped(signAgree.decide({ layout: example.layout, gram: example.gram }), /needs the gradient vectors/);
  });

  test('usesVr: true unless the policy declares otherwise; of the built-ins only ip-only declares false', () => {
    expect(strictGate.usesVr).toBe(true);
    expect(definePolicy({ ...strictGate, usesVr: false }).usesVr).toBe(false);
    const opts = { lambda: 0.003, lambdaMode: 'plain', threshold: 0, granularity: 'global', openRate: 0.5 } as const;
    expect(Object.fromEntries(POLICY_NAMES.map((n) => [n, policies[n].create(opts).usesVr]))).toEqual({
      'ip-only': false,
      joint: true,
      gradprom: true,
      soft: true,
      pcgrad: true,
      'random-gate': true,
      'joint-scaled': true,
    });
  });

  test('a policy that returns non-finite weights is turned into a skipped step', () => {
    const broken = definePolicy({ ...strictGate, decide: (s) => ({ ...strictGate.decide(s), vr: new Float64Array([NaN, 0]) }) });
    expectSkipped(broken.decide({ layout: example.layout, gram: example.gram }), /non-finite weights for block 0/);
  });
});

describe('non-finite or malformed input gives a skipped step with a reason', () => {
  test.each(POLICY_NAMES)('%s: NaN and Inf in the Gram or in the vectors', (name) => {
    const p = policies[name].create({ lambda: 0.003, lambdaMode: 'plain', threshold: 0, granularity: 'layer', openRate: 0.5 });
    const gram = { ...example.gram, ipVr: new Float64Array([4, NaN]) };
    expectSkipped(p.decide({ layout: example.layout, gram }), /non-finite gram\.ipVr\[1\] \(block "conv.bias"\)/);
    const infGram = { ...example.gram, vrVr: new Float64Array([Infinity, 1]) };
    expectSkipped(p.decide({ layout: example.layout, gram: infGram }), /non-finite gram\.vrVr\[0\]/);
    const nanIp = Float32Array.from(example.gIp, (x, i) => (i === 2 ? NaN : x));
    expectSkipped(p.decideFromVectors(example.layout, nanIp, example.gVr), /non-finite/);
    const infVr = Float32Array.from(example.gVr, (x, i) => (i === 5 ? -Infinity : x));
    expectSkipped(p.decideFromVectors(example.layout, example.gIp, infVr), /non-finite/);
  });

  test('negative squared norms, wrong Gram length, and vectors that do not fit the layout', () => {
    const p = makePolicy({ name: 'gradprom', lambda: 0.003, lambda_mode: 'plain', threshold: 0, granularity: 'global' });
    expectSkipped(
      p.decide({ layout: example.layout, gram: { ...example.gram, ipIp: new Float64Array([-1, 1]) } }),
      /negative squared norm/,
    );
    expectSkipped(p.decide({ layout: example.layout, gram: { ...example.gram, ipIp: new Float64Array([1]) } }), /1 entries, layout has 2/);
    expectSkipped(p.decideFromVectors(example.layout, new Float32Array(5), new Float32Array(5)), /vector length 5, layout covers 6/);
    const d = p.decide({ layout: example.layout, gram: { ...example.gram, ipIp: new Float64Array([NaN, 1]) } });
    expect(d.telemetry.gate).toBe(false);
  });
});

describe('registry and makePolicy', () => {
  test('every built-in declares gram input and builds with the granularity asked for', () => {
    for (const name of POLICY_NAMES) {
      expect(policies[name].input).toBe('gram');
      const open_rate = policies[name].usesOpenRate ? 0.5 : null;
      const p = makePolicy({ name, lambda: 0.003, lambda_mode: 'plain', threshold: 0, granularity: 'layer', open_rate });
      expect(p.input).toBe('gram');
      expect(p.name).toBe(name);
      if (name !== 'ip-only') expect(p.granularity).toBe('layer');
    }
  });

  test("makePolicy takes the config's policy section as it is", () => {
    const parsed = parseConfig({ policy: { name: 'soft', lambda_mode: 'normalized' } });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    const section: PolicyConfig = parsed.config.policy;
    const p = makePolicy(section);
    expect(p).toMatchObject({ name: 'soft', input: 'gram', granularity: 'global' });
    expect(p.decide({ layout: example.layout, gram: example.gram }).telemetry.lambdaEff).toBeCloseTo(0.003 * Math.sqrt(6.5 / 7.25), 15);
  });
});
