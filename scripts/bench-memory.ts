/**
 * Section 5 of `npm run bench`, run in its own Node process so that its RSS is the training loop's alone:
 * `node dist/scripts/bench-memory.js '<config JSON>'` trains with `runExperiment` and prints one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../src/config/index.js';
import { Sidecar } from '../src/sidecar/sidecar.js';
import { runExperiment } from '../src/train/runner.js';
import type { Progress } from '../src/train/progress.js';
import { median } from '../src/report/stats.js';
import { procMemory } from './bench-util.js';

/** The long memory run's model: a tiny IP and VR input (16×16, batch 2), so that a step takes ~10 ms. */
export const LONG_MODEL = { channels: 4, blocks: 1, size: 16, batch: 2 };

/** What the memory run saw; sizes in bytes. */
export interface MemoryResult {
  steps: number;
  transport: string;
  warmupSteps: number;
  seconds: number;
  /** Node RSS sampled after every step. */
  nodeRss: number[];
  /** Node's live heap (heapUsed) and V8's reserved heap (heapTotal), sampled after every step. */
  nodeHeap: number[];
  nodeHeapTotal: number[];
  /** Highest sampled Node RSS during the steps, and the process's high-water mark (startup and the end-of-run report included). */
  nodePeak: number;
  nodeHwm: number;
  /** Node's high-water mark when the first step was done (start, pre-training, first evaluation) and when the last was. */
  nodeHwmFirstStep: number;
  nodeHwmLastStep: number;
  /** Live heap right after a forced full GC halfway through warm-up and after the last step: what is still reachable. */
  liveAfterGc: { warm: number; end: number };
  /** Sidecar RSS sampled every 10 steps. */
  sidecarRss: number[];
  sidecarPeak: number;
}

/** Spawns this file as a child process and resolves with its result. */
export function runMemoryChild(config: Config, warmupSteps: number): Promise<MemoryResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    // --expose-gc: two forced collections (mid warm-up, last step) tell retained objects from garbage not yet collected.
    const child = spawn(process.execPath, ['--expose-gc', self, JSON.stringify({ config, warmupSteps })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as MemoryResult);
      else reject(new Error(`memory run exited with ${code}: ${last.slice(0, 500)}`));
    });
  });
}

async function main(arg: string): Promise<void> {
  const { config, warmupSteps } = JSON.parse(arg) as { config: Config; warmupSteps: number };
  const dir = mkdtempSync(join(tmpdir(), 'gradprom-bench-mem-'));
  const sidecar = await Sidecar.start({ device: config.device });
  const nodeRss: number[] = [];
  const nodeHeap: number[] = [];
  const nodeHeapTotal: number[] = [];
  const sidecarRss: number[] = [];
  let nodePeak = 0;
  let nodeHwmFirstStep = 0;
  let nodeHwmLastStep = 0;
  // VmHWM of this process's own memory map; resourceUsage().maxRSS would also count the parent's RSS at spawn time
  // (Linux carries the pre-exec high-water mark over exec), which is the bench's, not the training loop's.
  const hwm = (): number => procMemory(process.pid)?.peak ?? process.resourceUsage().maxRSS * 1024;
  const liveAfterGc = { warm: Number.NaN, end: Number.NaN };
  const fullGc = (): number => {
    (globalThis as { gc?: () => void }).gc?.();
    return process.memoryUsage().heapUsed;
  };
  const progress: Progress = {
    start() {},
    update({ step }) {
      if (nodeRss.length === 0) nodeHwmFirstStep = hwm();
      if (step === config.train.steps) nodeHwmLastStep = hwm();
      const m = process.memoryUsage();
      nodeRss.push(m.rss);
      nodeHeap.push(m.heapUsed);
      nodeHeapTotal.push(m.heapTotal);
      nodePeak = Math.max(nodePeak, m.rss);
      // After this step's sample, so the samples themselves never follow a forced collection directly.
      // Mid warm-up, so that the RSS window right after warm-up does not start from a just-collected heap.
      if (step === Math.floor(warmupSteps / 2)) liveAfterGc.warm = fullGc();
      if (step === config.train.steps) liveAfterGc.end = fullGc();
      if (step % 10 === 0) sidecarRss.push(procMemory(sidecar.pid)?.rss ?? Number.NaN);
      if (step % 100 === 0)
        process.stderr.write(
          `  memory: step ${step}/${config.train.steps}, node rss ${(median(nodeRss.slice(-100)) / 2 ** 20).toFixed(1)} MiB\n`,
        );
    },
    stop() {},
  };
  const t0 = performance.now();
  try {
    await runExperiment(config, { runDir: join(dir, 'run'), sidecar, progress });
    const seconds = (performance.now() - t0) / 1000;
    const sidecarPeak = procMemory(sidecar.pid)?.peak ?? Number.NaN;
    // The high-water mark also sees what the samples miss: startup, evaluation, the report written at the end.
    const nodeHwm = hwm();
    const result: MemoryResult = {
      steps: config.train.steps,
      transport: config.train.grad_exchange,
      warmupSteps,
      seconds,
      nodeRss,
      nodeHeap,
      nodeHeapTotal,
      nodePeak,
      nodeHwm,
      nodeHwmFirstStep,
      nodeHwmLastStep,
      liveAfterGc,
      sidecarRss,
      sidecarPeak,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await sidecar.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv[2] ?? '').catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
