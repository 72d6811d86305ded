/** The plan of a comparison: λ settings, runs, shards, and how two plans differ. */
import { comparePlan, defaultRunName, loadConfig, makePlan, parseLambdas, shardRuns, type Config } from 'gradprom';
import { configHash, planDifference, runConfig } from '../../src/train/plan.js';

async function config(...sets: string[]): Promise<Config> {
  const r = await loadConfig(null, sets);
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
  return r.config;
}

describe('the plan of a comparison', () => {
  test('--lambdas: plain values take the config mode, n and p force normalized and plain; a bad entry is named', () => {
    expect(parseLambdas('0.001, 0.003,1n,2e-3p', 'plain')).toEqual([
      { lambda: 0.001, mode: 'plain' },
      { lambda: 0.003, mode: 'plain' },
      { lambda: 1, mode: 'normalized' },
      { lambda: 0.002, mode: 'plain' },
    ]);
    expect(parseLambdas('0.5', 'normalized')).toEqual([{ lambda: 0.5, mode: 'normalized' }]);
    expect(parseLambdas('0.1,-1', 'plain')).toBe('"-1" is not a non-negative number (optionally suffixed n: normalized, p: plain)');
    expect(parseLambdas('0.1,', 'plain')).toMatch(/"" is not/);
  });

  test('runs: seed by seed, each policy at each λ setting, ip-only once per seed, named like run folders', async () => {
    const plan = makePlan(await config('seed=3'), ['ip-only', 'joint', 'gradprom'], parseLambdas('0.003,1n', 'plain') as never, 2);
    expect(plan.seeds).toEqual([3, 4]);
    expect(plan.runs.map((r) => r.name)).toEqual([
      'ip-only-s3',
      'joint-l0.003-s3',
      'joint-l1n-s3',
      'gradprom-l0.003-s3',
      'gradprom-l1n-s3',
      'ip-only-s4',
      'joint-l0.003-s4',
      'joint-l1n-s4',
      'gradprom-l0.003-s4',
      'gradprom-l1n-s4',
    ]);
  });

  test('shards are disjoint, cover the plan, and do not depend on who asks', async () => {
    const plan = makePlan(await config(), ['ip-only', 'joint', 'gradprom'], [{ lambda: 0.003, mode: 'plain' }], 5);
    const parts = [0, 1, 2].map((index) => shardRuns(plan, { index, count: 3 }).map((r) => r.name));
    expect(parts.flat().sort()).toEqual(plan.runs.map((r) => r.name).sort());
    expect(new Set(parts.flat()).size).toBe(plan.runs.length);
    expect(shardRuns(plan, { index: 1, count: 3 }).map((r) => r.name)).toEqual(parts[1]);
  });

  test('the config hash ignores where and how a comparison runs, not what it trains', async () => {
    const base = await config();
    expect(configHash(await config('output.dir=elsewhere', 'distributed.nproc=2', 'policy.name=joint', 'policy.lambda=0.5'))).toBe(
      configHash(base),
    );
    expect(configHash(await config('train.steps=999'))).not.toBe(configHash(base));
    expect(configHash(await config('policy.threshold=0.1'))).not.toBe(configHash(base));
    expect(configHash(await config('compare.data_seed=per-seed'))).not.toBe(configHash(base));
  });

  test('compare.data_seed: fixed keeps data.seed for every training seed, per-seed moves it with the seed', async () => {
    const run = { policy: 'joint', lambda: 1, lambdaMode: 'normalized', seed: 7 } as const;
    expect(runConfig(await config('seed=5', 'data.seed=10'), run).data.seed).toBe(10);
    const moved = runConfig(await config('seed=5', 'data.seed=10', 'compare.data_seed=per-seed'), run);
    expect([moved.seed, moved.data.seed]).toEqual([7, 12]);
  });

  test('a difference names the field: policies, λ, seeds, or the config path', async () => {
    const a = await config();
    const b = await config('train.steps=600', 'data.size=48');
    const lam = [{ lambda: 0.003, mode: 'plain' as const }];
    const saved = makePlan(a, ['ip-only', 'gradprom'], lam, 2);
    expect(planDifference(saved, makePlan(a, ['ip-only', 'gradprom'], lam, 2), a, a)).toBeNull();
    expect(planDifference(saved, makePlan(a, ['ip-only', 'joint'], lam, 3), a, a)).toBe(
      'policies: ip-only,gradprom there, ip-only,joint now; seeds: 0,1 there, 0,1,2 now',
    );
    expect(planDifference(saved, makePlan(a, ['ip-only', 'gradprom'], [{ lambda: 1, mode: 'normalized' }], 2), a, a)).toBe(
      'lambdas: 0.003 there, 1n now',
    );
    expect(planDifference(saved, makePlan(b, ['ip-only', 'gradprom'], lam, 2), a, b)).toBe(
      'config data.size: 32 there, 48 now; train.steps: 1000 there, 600 now',
    );
  });
});

describe('comparePlan and run names', () => {
  it('runs every λ of a policy that uses g_VR, and ip-only once per seed', async () => {
    const plan = comparePlan(await config('seed=3'), { policies: ['ip-only', 'gradprom'], lambdas: [0.001, 0.01], seeds: 2 });
    expect(plan.map((r) => `${r.policy}@${r.lambda}/s${r.seed}`)).toEqual([
      'ip-only@0.001/s3',
      'gradprom@0.001/s3',
      'gradprom@0.01/s3',
      'ip-only@0.001/s4',
      'gradprom@0.001/s4',
      'gradprom@0.01/s4',
    ]);
  });

  it('names policy, λ (n: normalized) and seed; no λ for ip-only', async () => {
    expect(defaultRunName(await config('policy.name=gradprom', 'policy.lambda=0.003', 'seed=1'))).toBe('gradprom-l0.003-s1');
    expect(defaultRunName(await config('policy.name=joint', 'policy.lambda=0.5', 'policy.lambda_mode=normalized'))).toBe('joint-l0.5n-s0');
    expect(defaultRunName(await config('policy.name=ip-only', 'policy.lambda=0.5'))).toBe('ip-only-s0');
  });
});
