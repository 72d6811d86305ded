/** The training loop from TypeScript: equality with the in-process reference, run folders, resume. */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGradpromError, runExperiment, Sidecar, silentLogger, type Config, type Progress } from 'gradprom';
import { configOf, PythonRunner } from '../helpers.js';

/** Integration runs take seconds each on an idle 2-core machine, far more under load. */
const LONG = 300_000;

/** A config small enough for seconds per run; λ large enough that a wrong gate decision shows in the parameters. */
const TINY = [
  'data.size=16',
  'data.counts.train=64',
  'data.counts.val=16',
  'data.counts.test=32',
  'ip.channels=8',
  'ip.blocks=1',
  'vr.pretrain_steps=5',
  'vr.kwargs.widths=[4,8]',
  'train.steps=12',
  'train.batch_size=8',
  'train.eval_every=5',
  'train.checkpoint_every=5',
  'eval.limit=32',
  'policy.lambda=0.5',
  'device=cpu',
  'train.tensorboard=false', // its writer is a Python process per run; test/train/tensorboard.test.ts covers it
  'output.plots=false', // a second and a half of CPU per run; 'writes a complete run folder' draws them
];

const tinyConfig = (...sets: string[]): Promise<Config> => configOf([...TINY, ...sets]);

/** Max |a - b| over the IP parameters of two files (checkpoint `last.pt` or a state-dict file), printed by Python. */
const MAX_IP_DIFF = `
import sys, torch
from gradprom_sidecar.models.checkpoint import load_checkpoint, read_state_dict
def ip(p):
    return load_checkpoint(p)["ip"] if p.endswith("last.pt") else read_state_dict(p)
x, y = ip(sys.argv[1]), ip(sys.argv[2])
assert x.keys() == y.keys(), (sorted(x), sorted(y))
print(max(float((x[k].double() - y[k].double()).abs().max()) for k in x))`;

async function maxIpDiff(a: string, b: string): Promise<number> {
  return Number((await py.run(MAX_IP_DIFF, [a, b])).trim());
}

/**
 * The in-process reference run of `config` (its CLI, `python -m gradprom_sidecar.tools.reference config --out
 * ref --log log`), then the max IP difference from checkpoint `ckpt` to its result, in the file's Python runner.
 */
async function referenceDiff(config: string, ref: string, log: string, ckpt: string): Promise<number> {
  const script = `
import sys
from gradprom_sidecar.tools.reference import main
if main([sys.argv[1], "--out", sys.argv[2], "--log", sys.argv[3]]) != 0:
    sys.exit("the reference run failed")
sys.argv = [sys.argv[0], sys.argv[4], sys.argv[2]]
${MAX_IP_DIFF}`;
  return Number((await py.run(script, [config, ref, log, ckpt])).trim().split('\n').at(-1));
}

interface Line {
  type?: string;
  kind?: string;
  step: number;
  gate?: boolean | null;
  gate_rate?: number;
  lambda_eff?: number;
  skipped?: boolean;
  ip_descent?: number;
  ip_descent_actual?: number;
}

function lines(file: string): Line[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
}

let dir: string;
let py: PythonRunner; // the reference runs and weight comparisons, one torch import for all of them
beforeAll(() => {
  py = new PythonRunner();
});
afterAll(() => py.close());
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-runner-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('runExperiment', () => {
  /** Every transport × granularity × λ mode: the decisions and λ_eff the TypeScript policies take must be the reference's. */
  let shared: Sidecar; // one sidecar for these runs, as `compare` does: each run creates its own session
  let framesOnly: Sidecar; // vectors as plain frames: the fallback of the shared region
  beforeAll(async () => {
    shared = await Sidecar.start({ device: 'cpu', logger: silentLogger });
    framesOnly = await Sidecar.start({ device: 'cpu', logger: silentLogger, sharedMemory: false });
  }, LONG);
  afterAll(() => Promise.all([shared.stop(), framesOnly.stop()]));

  // vectors: through the shared region (the default on one machine); vectors-frames: the plain-frames fallback.
  const EQUIVALENCE = (['gram', 'vectors', 'vectors-frames'] as const).flatMap((transport) =>
    (
      [
        ['global', 'plain'],
        ['layer', 'plain'],
        ['global', 'normalized'],
        ['layer', 'normalized'],
      ] as const
    ).map(([granularity, mode]) => [transport, granularity, mode] as const),
  );

  it.each(EQUIVALENCE)(
    'leaves IP where the in-process reference does (%s transport, %s, %s λ), with the same gate decisions',
    async (transport, granularity, mode) => {
      const wire = transport === 'vectors-frames' ? 'vectors' : transport;
      const config = await tinyConfig(`train.grad_exchange=${wire}`, `policy.granularity=${granularity}`, `policy.lambda_mode=${mode}`);
      const sidecar = transport === 'vectors-frames' ? framesOnly : shared;
      const { runDir } = await runExperiment(config, { runDir: join(dir, 'ts'), sidecar });
      const diff = await referenceDiff(
        join(runDir, 'config.json'),
        join(dir, 'ref.safetensors'),
        join(dir, 'ref.jsonl'),
        join(runDir, 'checkpoints', 'last.pt'),
      );

      expect(diff).toBeLessThanOrEqual(1e-5);
      const ts = lines(join(runDir, 'metrics.jsonl')).filter((l) => l.type === 'step');
      const ref = lines(join(dir, 'ref.jsonl')).filter((l) => l.kind === 'step');
      expect(ts).toHaveLength(12);
      expect(ts.map((l) => l.gate)).toEqual(ref.map((l) => l.gate));
      expect(ts.map((l) => l.gate_rate)).toEqual(ref.map((l) => l.gate_rate));
      ts.forEach((l, i) => expect(Math.abs(l.lambda_eff! - ref[i]!.lambda_eff!)).toBeLessThanOrEqual(1e-6 * ref[i]!.lambda_eff!));
      // Teeth: both branches of the gate were taken (per layer: open and closed blocks within one step) ...
      if (granularity === 'global') expect(new Set(ts.map((l) => l.gate)).size).toBe(2);
      else expect(ts.some((l) => l.gate_rate! > 0 && l.gate_rate! < 1)).toBe(true);
      // ... and normalized λ really follows the gradient norms.
      if (mode === 'normalized') expect(new Set(ts.map((l) => l.lambda_eff)).size).toBeGreaterThan(1);
      // The descent telemetry: the planned cosine from the same Gram and weights, the taken one from the same steps.
      ts.forEach((l, i) => {
        expect(l.ip_descent).toBeCloseTo(ref[i]!.ip_descent!, 9);
        expect(l.ip_descent_actual).toBeCloseTo(ref[i]!.ip_descent_actual!, 4);
      });
      expect(ts.some((l) => l.ip_descent! < 0.999)).toBe(true); // the VR term moved the update off g_IP on some steps
      expect(JSON.parse(readFileSync(join(runDir, 'per-image.json'), 'utf8')).n).toBe(32);
    },
    LONG,
  );

  it(
    'writes a complete run folder',
    async () => {
      const { runDir, summary } = await runExperiment(await tinyConfig('output.plots=true'), { runDir: join(dir, 'run') });
      for (const f of [
        'config.json',
        'metrics.jsonl',
        'checkpoints/last.pt',
        'report.md',
        'summary.json',
        'plots/loss.svg',
        'plots/gate-rate.svg',
      ]) {
        expect(() => readFileSync(join(runDir, f))).not.toThrow();
      }
      const records = lines(join(runDir, 'metrics.jsonl'));
      expect(records.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([...Array(12).keys()].map((i) => i + 1));
      expect(records.filter((l) => l.type === 'eval').map((l) => l.step)).toEqual([0, 5, 10, 12]);
      expect(summary.gateOpenRate).toBeGreaterThanOrEqual(0);
      expect(summary.gateOpenRate).toBeLessThanOrEqual(1);
      expect(readFileSync(join(runDir, 'report.md'), 'utf8')).toMatch(/Gate-open rate/);
    },
    LONG,
  );

  it(
    'resumes an interrupted run where it stopped, appending to metrics.jsonl, and ends where an uninterrupted run does',
    async () => {
      const config = await tinyConfig();
      // On the shared sidecar, as `compare --resume` runs them: each run builds its session from the config alone.
      const whole = await runExperiment(config, { runDir: join(dir, 'whole'), sidecar: shared });

      const ac = new AbortController();
      const stopAt7: Progress = { start() {}, stop() {}, update: ({ step }) => void (step === 7 && ac.abort()) };
      const runDir = join(dir, 'cut');
      const err = await runExperiment(config, { runDir, progress: stopAt7, signal: ac.signal, sidecar: shared }).catch((e: unknown) => e);
      expect(isGradpromError(err, 'INTERRUPTED')).toBe(true);
      const before = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8');

      await runExperiment(config, { runDir, resume: true, sidecar: shared });
      const after = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8');
      expect(after.startsWith(before)).toBe(true);
      const records = lines(join(runDir, 'metrics.jsonl'));
      // Aborted as step 7 was reported: step 8's gradients were already computed (train.advance returns them with
      // step 7's reply, and VR took its update from them), so the loop finishes step 8 before the checkpoint.
      expect(records.find((l) => l.type === 'resume')?.step).toBe(8);
      expect(records.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([...Array(12).keys()].map((i) => i + 1));
      expect(await maxIpDiff(join(runDir, 'checkpoints', 'last.pt'), join(whole.runDir, 'checkpoints', 'last.pt'))).toBe(0);
    },
    LONG,
  );

  it(
    'refuses to write over an existing run',
    async () => {
      const config = await tinyConfig('train.steps=2');
      await runExperiment(config, { runDir: join(dir, 'run'), sidecar: shared });
      const err = await runExperiment(config, { runDir: join(dir, 'run'), sidecar: shared }).catch((e: unknown) => e);
      expect(isGradpromError(err, 'RUN')).toBe(true);
      const report = readFileSync(join(dir, 'run', 'report.md'), 'utf8');
      expect(report).toMatch(/Run run/);
      expect(report).toContain('No plot: `output.plots` is off.');
      expect(existsSync(join(dir, 'run', 'plots'))).toBe(false);
    },
    LONG,
  );

  it('refuses to resume a run whose config.json no longer passes the schema, naming the file and field', async () => {
    const runDir = join(dir, 'damaged');
    mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
    writeFileSync(join(runDir, 'checkpoints', 'last.pt'), 'a checkpoint');
    writeFileSync(join(runDir, 'config.json'), JSON.stringify({ ...(await tinyConfig()), train: { steps: -3 } }));
    const err = await runExperiment(await tinyConfig(), { runDir, resume: true }).catch((e: unknown) => e);
    expect(isGradpromError(err, 'CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(/cannot resume: .*config\.json: train\.steps: /);
    writeFileSync(join(runDir, 'config.json'), '{"seed": ');
    const bad = await runExperiment(await tinyConfig(), { runDir, resume: true }).catch((e: unknown) => e);
    expect(isGradpromError(bad, 'CONFIG')).toBe(true);
    expect((bad as Error).message).toMatch(/config\.json: .*invalid JSON/);
    expect(readFileSync(join(runDir, 'checkpoints', 'last.pt'), 'utf8')).toBe('a checkpoint');
  });
});

describe('examples/custom-policy.ts', () => {
  it(
    'trains with a user-defined policy',
    async () => {
      const { main } = await import('../../examples/custom-policy.js');
      const summary = await main(join(dir, 'custom'), TINY);
      expect(summary.policy).toBe('strict-gate');
      expect(summary.gateOpenRate).not.toBeNull();
    },
    LONG,
  );
});
