/**
 * The shared pins: test/fixtures/policy-pins.json holds the expected weights and telemetry of every built-in policy for
 * every Gram case (with its step context), granularity and λ mode. python/tests reads the same file for the Python mirror
 * (policies.py), which generates it (`npm run gen:pins`), so the two implementations cannot drift apart while both suites pass.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { policies, type Decision, type Gram, type Layout, type PolicyConfig, type PolicyName, type PolicyOptions } from 'gradprom';
import { root } from '../helpers.js';

interface PinnedResult {
  policy: PolicyConfig;
  w_ip: number[];
  w_vr: number[];
  telemetry: { cos: number; gate: boolean | null; gate_rate: number; ip_norm: number; vr_norm: number; lambda_eff: number };
}

interface PinnedCase {
  label: string;
  blocks: string[];
  gram: { ip_ip: number[]; vr_vr: number[]; ip_vr: number[] };
  context: { seed: number; step: number };
  results: PinnedResult[];
}

interface Pins {
  tolerance: { rel: number; abs: number };
  cases: PinnedCase[];
}

const pins = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'policy-pins.json'), 'utf8')) as Pins;
const { rel, abs } = pins.tolerance;

/** The config's snake_case `policy` section as the options a built-in policy is created with. */
function optionsOf(p: PolicyConfig): PolicyOptions {
  return { lambda: p.lambda, lambdaMode: p.lambda_mode, threshold: p.threshold, granularity: p.granularity, openRate: p.open_rate ?? null };
}

/** One block per Gram entry; a policy deciding from the Gram reads only names and count. */
function layoutOf(blocks: readonly string[]): Layout {
  return blocks.map((name, offset) => ({ name, shape: [1], numel: 1, offset }));
}

function gramOf(g: PinnedCase['gram']): Gram {
  return { ipIp: Float64Array.from(g.ip_ip), vrVr: Float64Array.from(g.vr_vr), ipVr: Float64Array.from(g.ip_vr) };
}

/** Whether `actual` is within the fixture's tolerance of `expected`: relative, with an absolute floor near zero. */
function close(actual: number, expected: number): boolean {
  return Math.abs(actual - expected) <= Math.max(rel * Math.abs(expected), abs);
}

/** Every field of a decision that differs from its pin, as `field: actual (pinned expected)`. */
function differences(d: Decision, pin: PinnedResult): string[] {
  if (d.kind !== 'weights') return ['kind: a built-in policy must answer with weights'];
  const t = d.telemetry;
  const numbers: Array<[string, number, number]> = [
    ...pin.w_ip.map((e, b): [string, number, number] => [`w_ip[${b}]`, d.ip[b]!, e]),
    ...pin.w_vr.map((e, b): [string, number, number] => [`w_vr[${b}]`, d.vr[b]!, e]),
    ['cos', t.cos, pin.telemetry.cos],
    ['gate_rate', t.gateRate, pin.telemetry.gate_rate],
    ['ip_norm', t.ipNorm, pin.telemetry.ip_norm],
    ['vr_norm', t.vrNorm, pin.telemetry.vr_norm],
    ['lambda_eff', t.lambdaEff, pin.telemetry.lambda_eff],
  ];
  const out = numbers.filter(([, a, e]) => !close(a, e)).map(([f, a, e]) => `${f}: ${a} (pinned ${e})`);
  if (d.ip.length !== pin.w_ip.length || d.vr.length !== pin.w_vr.length) out.push(`blocks: ${d.ip.length}/${d.vr.length}`);
  if (t.gate !== pin.telemetry.gate) out.push(`gate: ${t.gate} (pinned ${pin.telemetry.gate})`);
  if (t.skipped) out.push(`skipped: ${t.reason}`);
  return out;
}

describe(`policy pins shared with the Python mirror (relative tolerance ${rel})`, () => {
  test('the fixture covers every built-in policy × {global, layer} × {plain, normalized} in every case', () => {
    const want = Object.keys(policies).flatMap((n) =>
      ['global', 'layer'].flatMap((g) => ['plain', 'normalized'].map((m) => `${n}/${g}/${m}`)),
    );
    for (const c of pins.cases) {
      const have = c.results.map((r) => `${r.policy.name}/${r.policy.granularity}/${r.policy.lambda_mode}`);
      expect([c.label, [...have].sort()]).toEqual([c.label, [...want].sort()]);
    }
    expect(pins.cases.length).toBeGreaterThanOrEqual(8);
  });

  describe.each(pins.cases.map((c) => [c.label, c] as const))('%s', (_label, c) => {
    test.each(c.results.map((r) => [`${r.policy.name} ${r.policy.granularity} ${r.policy.lambda_mode}`, r] as const))(
      '%s',
      (_name, pin) => {
        const policy = policies[pin.policy.name as PolicyName].create(optionsOf(pin.policy));
        const d = policy.decide({ layout: layoutOf(c.blocks), gram: gramOf(c.gram), context: c.context });
        expect(differences(d, pin)).toEqual([]);
      },
    );
  });
});
