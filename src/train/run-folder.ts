/** A run folder: resolved config, metrics.jsonl, checkpoints, report; never silently overwritten. */
import { appendFileSync, existsSync, mkdirSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GradpromError } from '../errors.js';
import type { RecordSink } from './tensorboard.js';

export interface RunPaths {
  dir: string;
  config: string;
  metrics: string;
  checkpoint: string;
  plots: string;
  tensorboard: string;
}

/** The files of the run in `dir`. */
export function runPaths(dir: string): RunPaths {
  return {
    dir,
    config: join(dir, 'config.json'),
    metrics: join(dir, 'metrics.jsonl'),
    checkpoint: join(dir, 'checkpoints', 'last.pt'),
    plots: join(dir, 'plots'),
    tensorboard: join(dir, 'tensorboard'),
  };
}

export type FolderMode = 'new' | 'resume' | 'force';

/** Make (or, for resume, check) a run folder; refuses to write over an existing run unless forced. */
export function prepareRunFolder(dir: string, mode: FolderMode): RunPaths {
  const paths = runPaths(dir);
  if (mode === 'resume') {
    if (!existsSync(paths.checkpoint)) {
      throw new GradpromError('RUN', `cannot resume ${dir}: no checkpoint at ${paths.checkpoint}`);
    }
    return paths;
  }
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    if (mode !== 'force') {
      throw new GradpromError(
        'RUN',
        `output folder ${dir} already holds files; use --resume to continue that run or --force to replace it`,
      );
    }
    // Keep what was there, renamed aside, rather than deleting someone's results.
    renameSync(dir, `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  }
  try {
    mkdirSync(join(dir, 'checkpoints'), { recursive: true });
    writeFileSync(join(dir, '.write-test'), '');
    unlinkSync(join(dir, '.write-test'));
  } catch (e) {
    throw new GradpromError('RUN', `cannot write to output folder ${dir}: ${(e as Error).message}`);
  }
  return paths;
}

/** Write `text` to `file` atomically (temporary file, then rename). */
export function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Appends one JSON record per line (each line written whole, so a crash leaves at most a torn last line), and hands it to `sink`. */
export class MetricsLog {
  constructor(
    readonly file: string,
    private readonly sink?: RecordSink,
  ) {}

  append(record: Record<string, unknown>): void {
    appendFileSync(this.file, `${JSON.stringify(record)}\n`);
    this.sink?.write(record);
  }
}
