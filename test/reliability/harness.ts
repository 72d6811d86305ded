/** Shared pieces of the reliability tests: a tiny config, fault-switched sidecars, run-folder readers. */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig, Sidecar, silentLogger, type Config, type Progress, type SidecarOptions } from 'gradprom';
import { latestRecords, parseRecords, type MetricRecord } from '../../src/report/index.js';
import { realPython, root } from '../helpers.js';

export const faultPython = join(root, 'test', 'fixtures', 'fault-python.sh');

// One torch thread per sidecar: these models are tiny, and on a shared 2-core machine threads that spin
// against other processes make a 1 s run take 10 s. Sidecars inherit the variable (restarts included).
process.env.OMP_NUM_THREADS = '1';

/**
 * A config that trains in seconds on 2 CPU cores: 64/16/32 images of 16 px, 20 steps, eval and checkpoint every 5;
 * no TensorBoard writer (a Python process of its own per run; test/train/tensorboard.test.ts covers it) and no
 * report plots (a second and a half of CPU per run; test/train/runner.test.ts covers them).
 */
export const TINY = {
  device: 'cpu',
  data: { size: 16, classes: 3, counts: { train: 64, val: 16, test: 32 } },
  ip: { channels: 8, blocks: 1 },
  vr: { pretrain_steps: 5, kwargs: { widths: [4, 8] } },
  train: { steps: 20, batch_size: 8, eval_every: 5, checkpoint_every: 5, max_skips: 3, tensorboard: false },
  eval: { limit: 16, batch_size: 16 },
  output: { plots: false },
};

/** TINY with `train` fields overridden. */
export function tinyConfig(train: Record<string, unknown> = {}): Config {
  const r = parseConfig({ ...TINY, train: { ...TINY.train, ...train } });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

/** The YAML text of TINY (for the command line), with `train` fields overridden. */
export function tinyYaml(train: Record<string, number> = {}): string {
  return stringify({ ...TINY, train: { ...TINY.train, ...train } });
}

/** A sidecar whose FAULT_* variables stay set until `clearFaults` (restarts re-read them). */
export async function faultySidecar(faults: Record<string, string>, opts: SidecarOptions = {}): Promise<Sidecar> {
  Object.assign(process.env, faults, { GRADPROM_REAL_PYTHON: realPython });
  return Sidecar.start({ device: 'cpu', python: faultPython, logger: silentLogger, ...opts });
}

/** Unset every FAULT_* variable. */
export function clearFaults(): void {
  for (const k of Object.keys(process.env)) if (k.startsWith('FAULT_')) delete process.env[k];
}

/** A progress sink that calls `at[step]` the first time the run reaches that step. */
export function onSteps(at: Record<number, () => void>): Progress {
  const done = new Set<number>();
  return {
    start() {},
    stop() {},
    update({ step }) {
      if (at[step] && !done.has(step)) {
        done.add(step);
        at[step]!();
      }
    },
  };
}

/** Every record of a run's metrics.jsonl, and those still in force. */
export function recordsOf(runDir: string): { all: MetricRecord[]; live: MetricRecord[] } {
  const all = parseRecords(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8'));
  return { all, live: latestRecords(all) };
}

/** The steps of the validation evaluations in force, in order. */
export function valEvalSteps(runDir: string): number[] {
  return recordsOf(runDir)
    .live.filter((r) => r.type === 'eval' && r.split === 'val')
    .map((r) => (r as { step: number }).step)
    .sort((a, b) => a - b);
}

/** Temporary files a cut-short save left beside the checkpoint. */
export function staleTemps(runDir: string): string[] {
  const dir = join(runDir, 'checkpoints');
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.tmp')) : [];
}

/** A fresh temporary folder, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
