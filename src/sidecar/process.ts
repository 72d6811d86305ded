/** The process layer: spawn the sidecar, read its output, signal and kill it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { SidecarExitedError } from '../errors.js';
import { levelOfLine, type Logger } from './logger.js';
import { pythonEnv } from './python.js';

const STDERR_TAIL = 40;
const READY = 'GRADPROM_READY ';

export interface ProcessOptions {
  python: string;
  args: string[];
  token: string;
  logger: Logger;
  /** Extra environment variables (a rank's RANK, WORLD_SIZE, ...). */
  env?: Record<string, string>;
  /** Interpreter arguments before `-m gradprom_sidecar` (torchrun: `-m torch.distributed.run ...`). */
  launcher?: string[];
  /** How log lines name the process; default `sidecar`. */
  label?: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running sidecar process; `exited` settles once, when it ends. */
export class SidecarProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  readonly ready: Promise<{ endpoint: string; pid: number }>;
  private readonly tail: string[] = [];
  exit: Exit | null = null;

  constructor(opts: ProcessOptions) {
    this.child = spawn(opts.python, [...(opts.launcher ?? []), '-m', 'gradprom_sidecar', ...opts.args], {
      env: pythonEnv({ ...opts.env, GRADPROM_TOKEN: opts.token }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        resolve(this.exit);
      });
      // spawn failure (ENOENT): 'exit' may never come
      this.child.once('error', (err) => {
        this.tail.push(String(err));
        if (!this.exit) {
          this.exit = { code: null, signal: null };
          live.delete(this);
          resolve(this.exit);
        }
      });
    });
    const stderr = createInterface({ input: this.child.stderr! });
    stderr.on('line', (line) => {
      this.tail.push(line);
      if (this.tail.length > STDERR_TAIL) this.tail.shift();
      opts.logger[levelOfLine(line, 'stderr')](`${opts.label ?? 'sidecar'}: ${line}`);
    });
    const stdout = createInterface({ input: this.child.stdout! });
    this.ready = new Promise((resolve, reject) => {
      stdout.on('line', (line) => {
        if (line.startsWith(READY)) resolve(JSON.parse(line.slice(READY.length)));
        else opts.logger[levelOfLine(line, 'stdout')](`${opts.label ?? 'sidecar'}: ${line}`);
      });
      void this.exited.then(async (e) => {
        await streamsDone(this.child);
        reject(this.exitedError(e));
      });
    });
    this.ready.catch(() => {}); // observed by whoever awaits it
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last lines the sidecar wrote to stderr. */
  stderrTail(): string[] {
    return [...this.tail];
  }

  /** The error for this process having exited (after its stderr is drained). */
  exitedError(e: Exit, op?: string): SidecarExitedError {
    return new SidecarExitedError(e.code, e.signal, this.stderrTail(), op);
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.exit) this.child.kill(sig);
  }

  /** Wait up to `ms` for the process to end; true if it did. */
  async waitExit(ms: number): Promise<boolean> {
    if (this.exit) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    const done = await Promise.race([this.exited.then(() => true), timeout]);
    clearTimeout(timer);
    return done;
  }
}

/** Resolves once the child's output streams have closed, so its last stderr lines are read. */
export function streamsDone(child: ChildProcess): Promise<void> {
  const closed = (s: NodeJS.ReadableStream | null) =>
    new Promise<void>((r) => (!s || (s as NodeJS.ReadableStream & { closed?: boolean }).closed ? r() : s.once('close', () => r())));
  return Promise.race([
    Promise.all([closed(child.stdout), closed(child.stderr)]).then(() => {}),
    new Promise<void>((r) => setTimeout(r, 200)),
  ]);
}

// No orphans: every live sidecar is killed when Node exits, however it exits.
const live = new Set<SidecarProcess>();
let hooked = false;

/** Install the exit hooks once: on exit, SIGINT/SIGTERM and an uncaught exception, kill all sidecars. */
export function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const p of live) p.signal('SIGKILL');
    for (const d of folders) rmSync(d, { recursive: true, force: true }); // a SIGKILLed sidecar cleans up nothing
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      // Another listener means the application handles the signal (the CLI finishes the step and writes a
      // checkpoint, which needs the sidecar alive); the 'exit' hook still kills the sidecars when Node ends.
      if (process.listenerCount(sig) > 1) return;
      killAll();
      // Only ours: restore the default so the signal still ends Node.
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

const folders = new Set<string>();

/** Remove `dir` when Node exits, however it exits (unless `removeNow` removed it first). */
export function removeOnExit(dir: string): void {
  folders.add(dir);
}

/** Remove `dir` now, and no longer at exit. */
export function removeNow(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  folders.delete(dir);
}

/** Sidecar processes still running (for tests and diagnostics). */
export function liveProcesses(): number {
  return live.size;
}
