/** README's TypeScript API example, run as written (with a tiny config), through the public entry point. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sidecar, definePolicy, loadConfig, policies, runExperiment, tensor, weighBlocks, type Policy, type RunResult } from 'gradprom';

const TINY_YAML = `
device: cpu
data: {counts: {train: 64, val: 16, test: 32}}
ip: {channels: 8, blocks: 1}
vr: {pretrain_steps: 5}
train: {steps: 6, batch_size: 8, eval_every: 0, checkpoint_every: 0}
eval: {limit: 32}
`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-readme-'));
  writeFileSync(join(dir, 'my.yaml'), TINY_YAML);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('README TypeScript API', () => {
  it('trains with a built-in policy and with a user-defined one', async () => {
    const cfg = await loadConfig(join(dir, 'my.yaml'), ['policy.name=gradprom', 'policy.lambda=0.003', `output.dir=${dir}`]);
    if (!cfg.ok) throw new Error(cfg.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    const { runDir, summary }: RunResult = await runExperiment(cfg.config);
    expect(runDir).toBe(join(dir, 'gradprom-l0.003-s0'));
    expect(summary.final.psnr).toBeGreaterThan(0);
    expect(summary.gateOpenRate).not.toBeNull();

    const strict: Policy = definePolicy({
      name: 'strict-gate',
      input: 'gram',
      granularity: 'global',
      decide: ({ gram }) =>
        weighBlocks(gram, { lambda: 0.003, lambdaMode: 'plain', granularity: 'global' }, (u) =>
          u.cos > 0.1 ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false },
        ),
    });
    const custom = await runExperiment(cfg.config, { runDir: join(dir, 'strict'), policy: strict });
    expect(custom.summary.policy).toBe('strict-gate');
  }, 300_000);

  it('calls the sidecar directly', async () => {
    const sc = await Sidecar.start({ device: 'auto' });
    try {
      const { tensors } = await sc.call('echo', {}, [tensor('float32', new Float32Array([1, 2, 3]))]);
      expect(Array.from(tensors[0]!.data as Float32Array)).toEqual([1, 2, 3]);
    } finally {
      await sc.stop();
    }
  });

  it('lists the built-in policies', () => {
    expect(Object.keys(policies).sort()).toEqual(['gradprom', 'ip-only', 'joint', 'joint-scaled', 'pcgrad', 'random-gate', 'soft']);
  });
});
