/** TensorBoard event files for a run: a `python -m gradprom_sidecar.tools.tbwriter` child fed the records the loop logs. */
import { spawn, type ChildProcess } from 'node:child_process';
import { pythonEnv, resolvePython } from '../sidecar/python.js';
import type { Logger } from '../sidecar/logger.js';

/** Receives every record a run logs (see MetricsLog). */
export interface RecordSink {
  write(record: Record<string, unknown>): void;
  close(): Promise<void>;
}

/**
 * Writes a run's records as TensorBoard events under `logdir` (a child process writing with the `tensorboard` package, without torch).
 *
 * A writer that cannot start or dies is reported once through `logger` and then ignored: TensorBoard is a view of
 * the run, and metrics.jsonl stays the record.
 */
export class TensorBoardWriter implements RecordSink {
  private failed = false;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly logdir: string,
    private readonly logger: Logger | undefined,
  ) {
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    proc.stdin?.on('error', (e) => this.fail(e.message));
    this.exited = new Promise((resolve) => {
      proc.on('error', (e) => {
        this.fail(e.message);
        resolve();
      });
      proc.on('exit', (code, signal) => {
        if (code !== 0) this.fail(`exited with ${signal ?? code}${stderr ? `: ${stderr.trim().split('\n').slice(-1)[0]}` : ''}`);
        resolve();
      });
    });
  }

  /** Start a writer for `logdir` with the sidecar's interpreter (GRADPROM_PYTHON or python/.venv); without one, a sink that drops records. */
  static start(logdir: string, options: { python?: string; logger?: Logger } = {}): RecordSink {
    let python: string;
    try {
      python = options.python ?? resolvePython();
    } catch (e) {
      options.logger?.warn(`no TensorBoard event files for ${logdir}: ${(e as Error).message}`);
      return { write() {}, close: async () => {} };
    }
    // One thread: the writer only serialises scalars, and must not compete with the sidecar's compute threads.
    const proc = spawn(python, ['-m', 'gradprom_sidecar.tools.tbwriter', logdir], {
      env: pythonEnv({ OMP_NUM_THREADS: '1' }),
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    return new TensorBoardWriter(proc, logdir, options.logger);
  }

  write(record: Record<string, unknown>): void {
    if (this.failed || !this.proc.stdin?.writable) return;
    this.proc.stdin.write(`${JSON.stringify(record)}\n`);
  }

  /** Close stdin and wait for the writer to flush its events and exit. */
  async close(): Promise<void> {
    this.proc.stdin?.end();
    await this.exited;
  }

  private fail(why: string): void {
    if (this.failed) return;
    this.failed = true;
    this.logger?.warn(`TensorBoard writer for ${this.logdir} stopped (${why}); metrics.jsonl is unaffected`);
  }
}
