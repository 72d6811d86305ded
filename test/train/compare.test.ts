/** The comparison plan and run names: a policy that never uses g_VR (ip-only) runs once per seed and has no λ in its name. */
import { comparePlan, defaultRunName, parseConfig, type Config } from 'gradprom';

function config(over: Record<string, unknown> = {}): Config {
  const r = parseConfig(over);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

describe('comparePlan', () => {
  it('runs every λ of a policy that uses g_VR, and ip-only once per seed', () => {
    const plan = comparePlan(config({ seed: 3 }), { policies: ['ip-only', 'gradprom'], lambdas: [0.001, 0.01], seeds: 2 });
    expect(plan.map((r) => `${r.policy}@${r.lambda}/s${r.seed}`)).toEqual([
      'ip-only@0.001/s3',
      'gradprom@0.001/s3',
      'gradprom@0.01/s3',
      'ip-only@0.001/s4',
      'gradprom@0.001/s4',
      'gradprom@0.01/s4',
    ]);
  });
});

describe('defaultRunName', () => {
  it('names policy, λ (n: normalized) and seed; no λ for ip-only', () => {
    expect(defaultRunName(config({ policy: { name: 'gradprom', lambda: 0.003 }, seed: 1 }))).toBe('gradprom-l0.003-s1');
    expect(defaultRunName(config({ policy: { name: 'joint', lambda: 0.5, lambda_mode: 'normalized' } }))).toBe('joint-l0.5n-s0');
    expect(defaultRunName(config({ policy: { name: 'ip-only', lambda: 0.5 } }))).toBe('ip-only-s0');
  });
});
