/** The runs of a comparison folder: which have finished (their summaries and per-image results) and which failed. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPerImage, type FailedRunInfo, type PerImage, type RunSummary } from '../report/index.js';
import type { PlannedRun } from './plan.js';
import { runPaths } from './run-folder.js';

/** A run folder's state: finished (summary and per-image results written), failed (it failed on its own, e.g. diverged: a finding, not retried), resumable (a checkpoint), empty (no checkpoint yet), absent. */
export type RunState = 'finished' | 'failed' | 'resumable' | 'empty' | 'absent';

/** The file in a run folder that records why the run failed. */
export const FAILED_FILE = 'failed.json';

/** Record that the run in `runDir` failed on its own (kept on resume: a failure is a result of the comparison). */
export function recordFailure(runDir: string, run: PlannedRun, reason: string): void {
  mkdirSync(runDir, { recursive: true });
  const failed: FailedRunInfo = {
    name: run.name,
    policy: run.policy,
    lambda: run.lambda,
    lambdaMode: run.lambdaMode,
    seed: run.seed,
    reason,
  };
  writeFileSync(join(runDir, FAILED_FILE), `${JSON.stringify({ ...failed, at: new Date().toISOString() }, null, 2)}\n`);
}

/** The failure recorded in `runDir`, or null. */
function failureOf(runDir: string): FailedRunInfo | null {
  try {
    return JSON.parse(readFileSync(join(runDir, FAILED_FILE), 'utf8')) as FailedRunInfo;
  } catch {
    return null;
  }
}

/** The gate-open rate measured by the finished run in `runDir`, or null. */
export function measuredOpenRate(runDir: string): number | null {
  return summaryOf(runDir)?.gateOpenRate ?? null;
}

/** The summary of a finished run, or null when its summary.json is absent or unreadable (a write cut short). */
function summaryOf(runDir: string): RunSummary | null {
  try {
    const s = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8')) as RunSummary;
    return s.final?.split === 'test' ? s : null;
  } catch {
    return null;
  }
}

/** Where the run in `runDir` stands. */
export function runState(runDir: string): RunState {
  if (!existsSync(runDir)) return 'absent';
  const paths = runPaths(runDir);
  if (summaryOf(runDir) && existsSync(join(runDir, 'per-image.json'))) return 'finished';
  if (existsSync(join(runDir, FAILED_FILE))) return 'failed';
  return existsSync(paths.checkpoint) ? 'resumable' : 'empty';
}

/** The finished runs among `runs` (in plan order) with their per-image results, and the names of the others. */
export async function finishedRuns(
  dir: string,
  runs: readonly PlannedRun[],
): Promise<{ summaries: RunSummary[]; perImage: Map<string, PerImage>; missing: string[]; failed: FailedRunInfo[] }> {
  const summaries: RunSummary[] = [];
  const perImage = new Map<string, PerImage>();
  const missing: string[] = [];
  const failed: FailedRunInfo[] = [];
  for (const r of runs) {
    const runDir = join(dir, 'runs', r.name);
    const state = runState(runDir);
    const f = state === 'failed' ? failureOf(runDir) : null;
    if (f) {
      failed.push({ name: r.name, policy: r.policy, lambda: r.lambda, lambdaMode: r.lambdaMode, seed: r.seed, reason: f.reason });
      continue;
    }
    const s = state === 'finished' ? summaryOf(runDir) : null;
    if (!s) {
      missing.push(r.name);
      continue;
    }
    summaries.push(s);
    const images = await readPerImage(runDir);
    if (images) perImage.set(s.name, images);
  }
  return { summaries, perImage, missing, failed };
}
