/** TensorBoard: a run's event files, read back with tensorboard's own EventAccumulator, hold what metrics.jsonl holds. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, runExperiment, silentLogger } from 'gradprom';
import { realPython, root } from '../helpers.js';

const LONG = 300_000;

const READ = `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "tensors": 0})
ea.Reload()
scalars = {t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}
text = {t: ea.Tensors(t)[0].tensor_proto.string_val[0].decode() for t in ea.Tags()["tensors"]}
print(json.dumps({"scalars": scalars, "text": text}))
`;

interface Events {
  scalars: Record<string, [number, number][]>;
  text: Record<string, string>;
}

/** TensorBoard keeps scalars as float32: equal to the JSON number within float32 rounding. */
function expectF32(got: number, want: number): void {
  expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want)));
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-tb-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('train.tensorboard', () => {
  it(
    'writes every step, evaluation and the config as events that match metrics.jsonl',
    async () => {
      const sets = ['data.counts.train=32', 'data.counts.val=8', 'data.counts.test=8', 'ip.channels=4', 'ip.blocks=1'];
      sets.push('vr.pretrain_steps=3', 'train.steps=8', 'train.batch_size=4', 'train.eval_every=4', 'train.checkpoint_every=0');
      const cfg = await loadConfig(null, [...sets, 'device=cpu']);
      if (!cfg.ok) throw new Error(JSON.stringify(cfg.issues));
      const { runDir } = await runExperiment(cfg.config, { runDir: join(dir, 'run'), logger: silentLogger });
      expect(readdirSync(join(runDir, 'tensorboard')).some((f) => f.startsWith('events.out.tfevents'))).toBe(true);

      const r = spawnSync(realPython, ['-c', READ, join(runDir, 'tensorboard')], { cwd: root, encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(r.stderr);
      const ev = JSON.parse(r.stdout) as Events;
      const records = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);

      const steps = records.filter((x) => x.type === 'step' && !x.skipped);
      expect(steps).toHaveLength(8);
      for (const field of ['loss_ip', 'loss_vr', 'cos', 'gate_rate', 'ip_norm', 'vr_norm', 'lambda_eff', 'lr_ip', 'time_ms']) {
        const got = ev.scalars[`train/${field}`]!;
        expect(got.map(([s]) => s)).toEqual(steps.map((x) => x.step));
        got.forEach(([, v], i) => expectF32(v, Number(steps[i]![field])));
      }
      expect(ev.scalars['train/gate']!.map(([, v]) => v)).toEqual(steps.map((x) => (x.gate ? 1 : 0)));

      const evals = records.filter((x) => x.type === 'eval');
      expect(evals.map((x) => `${String(x.split)}@${String(x.step)}`)).toEqual(['val@0', 'val@4', 'test@8']);
      for (const e of evals) {
        for (const key of ['psnr', 'ssim', 'fixed_enhanced_acc']) {
          const series = ev.scalars[`eval/${String(e.split)}/${key}`]!;
          const at = series.find(([s]) => s === e.step)!;
          expectF32(at[1], Number(e[key]));
        }
      }
      expectF32(ev.scalars['pretrain/loss']![0]![1], Number(records.find((x) => x.type === 'pretrain')!.loss));
      const configText = Object.entries(ev.text).find(([t]) => t.startsWith('config'))![1];
      expect(configText).toContain('"steps": 8');
      expect(configText).toContain('"tensorboard": true');
    },
    LONG,
  );
});
