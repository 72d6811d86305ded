/**
 * The random gate in a real run: the trainer hands the policy the step and the run seed, so the gates it logs are the
 * draws u(seed, step) < p, the same the in-process reference (and hence a resumed run) makes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runExperiment, silentLogger, Sidecar, uniformAt } from 'gradprom';
import { configOf, realPython, root } from '../helpers.js';

const LONG = 300_000;
const STEPS = 12;
const TINY = [
  'data.counts.train=32',
  'data.counts.val=8',
  'data.counts.test=8',
  'ip.channels=8',
  'ip.blocks=1',
  'vr.pretrain_steps=2',
  `train.steps=${STEPS}`,
  'train.batch_size=8',
  'train.eval_every=0',
  'train.checkpoint_every=0',
  'eval.limit=8',
  'policy.name=random-gate',
  'policy.open_rate=0.5',
  'policy.lambda=0.5',
  'seed=3',
  'device=cpu',
  'train.tensorboard=false', // its writer is a Python process per run; test/train/tensorboard.test.ts covers it
  'output.plots=false', // a second and a half of CPU per run; test/train/runner.test.ts draws them
];

function jsonl(file: string): Array<Record<string, unknown>> {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let dir: string;
let sidecar: Sidecar;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-controls-'));
  sidecar = await Sidecar.start({ device: 'cpu', logger: silentLogger });
}, LONG);
afterAll(async () => {
  await sidecar.stop();
  rmSync(dir, { recursive: true, force: true });
});

test(
  'random-gate: the logged gates are u(seed, step) < p, step by step, in TypeScript and in the Python reference',
  async () => {
    const config = await configOf(TINY);
    const { runDir } = await runExperiment(config, { runDir: join(dir, 'ts'), sidecar });
    const ref = join(dir, 'ref.jsonl');
    const r = spawnSync(realPython, ['-m', 'gradprom_sidecar.tools.reference', join(runDir, 'config.json'), '--log', ref], {
      cwd: join(root, 'python'),
      encoding: 'utf8',
      timeout: 240_000,
    });
    if (r.status !== 0) throw new Error(`reference failed:\n${r.stderr}`);
    const expected = Array.from({ length: STEPS }, (_, step) => uniformAt({ seed: 3, step }, 0) < 0.5);
    const ts = jsonl(join(runDir, 'metrics.jsonl')).filter((l) => l.type === 'step' && !l.skipped);
    expect(ts.map((l) => l.gate)).toEqual(expected);
    expect(
      jsonl(ref)
        .filter((l) => l.kind === 'step' && !l.skipped)
        .map((l) => l.gate),
    ).toEqual(expected);
    expect(new Set(expected).size).toBe(2); // both branches were taken
  },
  LONG,
);
