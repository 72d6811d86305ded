/**
 * `npm run bench`: measures the bridge against in-process PyTorch and regenerates docs/BENCHMARKS.md.
 *
 *   npm run bench                      # the full run (≤ 15 min on 2 idle cores), writes docs/BENCHMARKS.md
 *   npm run bench -- --quick           # reduced sizes, to check the script; writes runs/bench-quick.md
 *   npm run bench -- --only 2,8        # some sections only; --out PATH to write elsewhere
 *
 * GRADPROM_BENCH_QUICK=1 is the same as --quick.
 */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { packageRoot } from '../src/sidecar/python.js';
import { memorySection, peerSection, policySection, pythoniaSection, stepSection, transportSection } from './bench-sections.js';
import { layoutOf, stepRounds, type StepResult } from './bench-step.js';
import { benchConfig, PyWorker, type Section } from './bench-util.js';
import { renderReport } from './bench-report.js';
import { cpuBusy, loadNow } from './machine.js';
import { policyCompute } from './bench-policy.js';
import { pythonia, transport, type TransportResult } from './bench-transport.js';
import { LONG_MODEL, runMemoryChild, type MemoryResult } from './bench-memory.js';
import { dataPath, dataSection } from './bench-data.js';
import { shortConfig, shortRounds, shortSection } from './bench-short.js';
import type { Plan, StepSize } from './bench-plan.js';

const FULL: Plan = {
  quick: false,
  small: { label: 'SRResNet (~1.5 M)', channels: 64, blocks: 20, size: 32, batch: 16, rounds: 15, warmup: 3, pretrain: 20 },
  large: { label: 'large IP (~25 M)', channels: 256, blocks: 21, size: 16, batch: 1, rounds: 16, warmup: 2, pretrain: 5 },
  transportBytes: [1e6, 1e7, 1e8],
  pythoniaBytes: 1e7,
  pythoniaReps: 3,
  pythoniaListReps: 1,
  policyReps: 5,
  memorySteps: 1000,
  memoryWarmup: 100,
  memoryTransports: ['gram', 'vectors'],
  longSteps: 6000,
  longWarmup: 1000,
  data: { images: 1000, size: 224, rounds: 6, perRound: 20, syntheticReps: 5 },
  short: { label: 'short steps', channels: 16, blocks: 2, vrWidths: [8, 16, 32], size: 32, batch: 8, burst: 10, rounds: 15, warmup: 2 },
};

const QUICK: Plan = {
  quick: true,
  small: { label: 'SRResNet (~1.5 M)', channels: 64, blocks: 20, size: 8, batch: 2, rounds: 3, warmup: 1, pretrain: 2 },
  large: { label: 'large IP (reduced: quick)', channels: 128, blocks: 4, size: 8, batch: 1, rounds: 2, warmup: 1, pretrain: 2 },
  transportBytes: [1e6, 1e7, 1e8],
  pythoniaBytes: 1e6,
  pythoniaReps: 2,
  pythoniaListReps: 1,
  policyReps: 2,
  memorySteps: 60,
  memoryWarmup: 20,
  memoryTransports: ['gram', 'vectors'],
  longSteps: 300,
  longWarmup: 100,
  data: { images: 100, size: 224, rounds: 2, perRound: 4, syntheticReps: 2 },
  short: {
    label: 'short steps (quick)',
    channels: 16,
    blocks: 2,
    vrWidths: [8, 16, 32],
    size: 32,
    batch: 8,
    burst: 5,
    rounds: 3,
    warmup: 1,
  },
};

/** The config of a step-benchmark size: defaults, a small synthetic data set, the given IP, batch and image size. */
function stepConfig(s: StepSize) {
  return benchConfig({
    data: { size: s.size, counts: { train: 256, val: 32, test: 32 } },
    ip: { arch: 'srresnet', channels: s.channels, blocks: s.blocks, batch_norm: false },
    vr: { pretrain_steps: s.pretrain },
    train: { batch_size: s.batch, steps: 100_000 },
  });
}

/** The default (demo-sized) configuration, for the 1000-step memory run. */
function memoryConfig(plan: Plan, transport: 'gram' | 'vectors') {
  return benchConfig({
    data: { counts: plan.quick ? { train: 256, val: 32, test: 32 } : { train: 2000, val: 200, test: 200 } },
    vr: { pretrain_steps: plan.quick ? 5 : 50 },
    train: { steps: plan.memorySteps, grad_exchange: transport, eval_every: 250, checkpoint_every: 250 },
  });
}

/** The long memory run's config: LONG_MODEL, no evaluation or checkpoints. */
function longConfig(plan: Plan, transport: 'gram' | 'vectors') {
  return benchConfig({
    data: { size: LONG_MODEL.size, counts: { train: 64, val: 8, test: 8 } },
    ip: { arch: 'srresnet', channels: LONG_MODEL.channels, blocks: LONG_MODEL.blocks, batch_norm: false },
    vr: { pretrain_steps: 2 },
    train: { steps: plan.longSteps, batch_size: LONG_MODEL.batch, grad_exchange: transport, eval_every: 0, checkpoint_every: 0 },
  });
}

interface BenchArgs {
  quick: boolean;
  only: Set<number> | null;
  out: string | null;
}

/** The command line, parsed with commander as the CLI's is. */
function parseArgs(argv: string[]): BenchArgs {
  const sections = (value: string): Set<number> => {
    const ids = value.split(',').map(Number);
    if (!ids.every((n) => Number.isInteger(n) && n >= 1 && n <= 8))
      throw new InvalidArgumentError('expected section numbers 1-8, e.g. 2,4');
    return new Set(ids);
  };
  const opts = new Command('npm run bench --')
    .description('measure the bridge against in-process PyTorch (method: docs/BENCHMARKS-METHOD.md)')
    .option('--quick', 'reduced sizes, to check the script; writes runs/bench-quick.md (also GRADPROM_BENCH_QUICK=1)', false)
    .option('--only <sections>', 'comma-separated section numbers (1-8); writes runs/bench-partial.md', sections)
    .option('--out <file>', 'write the report here instead')
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2)) // bad flags exit 2, as the CLI's do
    .parse(argv, { from: 'user' })
    .opts<{ quick: boolean; only?: Set<number>; out?: string }>();
  return { quick: opts.quick || process.env.GRADPROM_BENCH_QUICK === '1', only: opts.only ?? null, out: opts.out ?? null };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const plan = args.quick ? QUICK : FULL;
  const want = (n: number) => !args.only || args.only.has(n);
  const started = new Date();
  const t0 = performance.now();
  const loadStart = loadNow();
  const busyStart = await cpuBusy(); // before any process of ours starts
  const worker = new PyWorker();
  const sections: Section[] = [];
  const marks: [string, number][] = [];
  const log = (m: string) => {
    marks.push([m, performance.now()]);
    process.stderr.write(`bench: ${m} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  };
  try {
    const python = await worker.request('info');
    const steps: StepResult[] = [];
    if (want(1) || want(6)) {
      log(`section 1/6: ${plan.small.label}`);
      steps.push(await stepRounds(plan.small.label, stepConfig(plan.small), { ...plan.small, gradcosine: want(6), worker }));
    }
    if (want(1)) {
      log(`section 1: ${plan.large.label}`);
      steps.push(await stepRounds(plan.large.label, stepConfig(plan.large), { ...plan.large, gradcosine: false, worker }));
    }
    let tr: TransportResult | null = null;
    if (want(1) || want(2) || want(3)) {
      log('section 2: transport');
      tr = await transport(worker, plan.transportBytes, plan.quick);
      if (want(2)) sections.push(transportSection(tr));
      if (want(3)) {
        log('section 3: pythonia');
        const py = await pythonia(plan.pythoniaBytes, plan.pythoniaReps, plan.pythoniaListReps);
        sections.push(pythoniaSection(py, tr, plan.pythoniaBytes));
      }
    }
    if (want(1)) sections.push(stepSection(steps, plan, tr));
    if (want(4)) {
      log('section 4: policy compute');
      const layout = steps.find((s) => s.label === plan.large.label)?.layout ?? (await layoutOf(stepConfig(plan.large)));
      sections.push(policySection(await policyCompute(layout, plan.policyReps), plan));
    }
    if (want(5)) {
      // One memory run per transport, each in a Node process of its own.
      const memoryRuns = async (what: string, configOf: typeof memoryConfig, warmup: number): Promise<MemoryResult[]> => {
        const out: MemoryResult[] = [];
        for (const t of plan.memoryTransports) {
          log(`section 5: memory, ${what}, ${t} transport`);
          out.push(await runMemoryChild(configOf(plan, t), warmup));
        }
        return out;
      };
      const runs = await memoryRuns(`${plan.memorySteps} steps`, memoryConfig, plan.memoryWarmup);
      const long = await memoryRuns(`${plan.longSteps} steps of a tiny model`, longConfig, plan.longWarmup);
      sections.push(memorySection(runs, long, plan));
    }
    if (want(6) && steps[0]?.times.gradcosine) sections.push(peerSection(steps[0]));
    if (want(7)) {
      log('section 7: GPU-like short steps');
      sections.push(shortSection(await shortRounds(plan.short, shortConfig(plan.short, benchConfig))));
    }
    if (want(8)) {
      log(`section 8: data path (${plan.data.images} generated ISIC images at ${plan.data.size} px)`);
      sections.push(dataSection(await dataPath(plan.data), plan.data));
    }
    sections.sort((a, b) => Number(a.id) - Number(b.id));
    const wallSeconds = (performance.now() - t0) / 1000;
    // Only a full run of every section replaces docs/BENCHMARKS.md.
    const partial = args.quick ? 'bench-quick.md' : args.only ? 'bench-partial.md' : null;
    const out = args.out ?? (partial ? join(packageRoot, 'runs', partial) : join(packageRoot, 'docs', 'BENCHMARKS.md'));
    const cmd = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
    const setup = setupLines(plan, steps);
    const methodDoc = relative(dirname(out), join(packageRoot, 'docs', 'BENCHMARKS-METHOD.md'));
    // Where the wall time went: each logged phase until the next one (or the end).
    const ends = [...marks.slice(1).map(([, t]) => t), performance.now()];
    setup.push(`- Wall time by phase: ${marks.map(([m, t], i) => `${m} — ${((ends[i]! - t) / 1000).toFixed(0)} s`).join('; ')}.`);
    const busyEnd = await cpuBusy(); // the workers are idle now
    mkdirSync(dirname(out), { recursive: true });
    // Figures measured by hand sit after this marker in the page; a rewrite keeps them.
    const marker = '<!-- Measured by hand, not by `npm run bench`';
    const page = existsSync(out) ? readFileSync(out, 'utf8') : '';
    const kept = page.includes(marker) ? `\n${page.slice(page.indexOf(marker))}` : '';
    writeFileSync(
      out,
      renderReport(
        { command: cmd, started, wallSeconds, loadStart, loadEnd: loadNow(), busyStart, busyEnd, python, setup, methodDoc },
        sections,
      ) + kept,
    );
    log(`wrote ${relative(process.cwd(), out)}; wall time ${(wallSeconds / 60).toFixed(1)} min`);
  } finally {
    await worker.close();
  }
}

function setupLines(plan: Plan, steps: StepResult[]): string[] {
  const size = (s: StepSize, r?: StepResult) =>
    `- ${s.label}: SRResNet, ${s.channels} channels, ${s.blocks} residual blocks, no BN, scale 1` +
    `${r ? ` (${(r.params / 1e6).toFixed(2)} M parameters)` : ''}; ${s.size}×${s.size} grayscale, batch ${s.batch}; ` +
    `VR smallresnet (supervised); ${s.warmup} warm-up + ${s.rounds} timed rounds.`;
  return [
    ...(plan.quick ? ['- **Quick run (`--quick`): reduced sizes, figures not comparable with the full run.**'] : []),
    size(
      plan.small,
      steps.find((r) => r.label === plan.small.label),
    ),
    size(
      plan.large,
      steps.find((r) => r.label === plan.large.label),
    ),
    '- Both: synthetic data (256 train images), Gaussian noise σ = 0.3, GradProm (λ = 0.003, global), Adam, seed 0, CPU, ' +
      'VR pre-trained for a few steps only (the step cost does not depend on it).',
  ];
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
