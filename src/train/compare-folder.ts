/** The runs of a comparison folder: which have finished, and their summaries and per-image results. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPerImage, type PerImage, type RunSummary } from '../report/index.js';
import type { PlannedRun } from './plan.js';
import { runPaths } from './run-folder.js';

/** A run folder's state: finished (summary and per-image results written), resumable (a checkpoint), empty (no checkpoint yet), absent. */
export type RunState = 'finished' | 'resumable' | 'empty' | 'absent';

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
  return existsSync(paths.checkpoint) ? 'resumable' : 'empty';
}

/** The finished runs among `runs` (in plan order) with their per-image results, and the names of the others. */
export async function finishedRuns(
  dir: string,
  runs: readonly PlannedRun[],
): Promise<{ summaries: RunSummary[]; perImage: Map<string, PerImage>; missing: string[] }> {
  const summaries: RunSummary[] = [];
  const perImage = new Map<string, PerImage>();
  const missing: string[] = [];
  for (const r of runs) {
    const runDir = join(dir, 'runs', r.name);
    const s = runState(runDir) === 'finished' ? summaryOf(runDir) : null;
    if (!s) {
      missing.push(r.name);
      continue;
    }
    summaries.push(s);
    const images = await readPerImage(runDir);
    if (images) perImage.set(s.name, images);
  }
  return { summaries, perImage, missing };
}
