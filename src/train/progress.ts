/**
 * Progress of a run on stderr: phase lines ("loading data", "pretraining VR", "evaluating", "checkpoint written") everywhere;
 * a live bar on a terminal, and a status line every few seconds where stderr is a log (nohup, Slurm, CI).
 */
import cliProgress from 'cli-progress';

export interface StepView {
  step: number;
  lossIp: number;
  cos: number;
  gateRate: number;
  /** Wall time of this step, ms. */
  stepMs: number;
}

export interface Progress {
  /** A phase of the run, printed as its own line (optional, so a steps-only observer need not implement it). */
  phase?(text: string): void;
  /** How far a phase has got ("pretraining VR: 120/300"): rewritten in place on a terminal, a line now and then in a log. */
  status?(text: string): void;
  start(label: string, total: number, at: number): void;
  update(view: StepView): void;
  stop(): void;
}

/** Reports nothing. */
export const noProgress: Progress = { phase() {}, status() {}, start() {}, update() {}, stop() {} };

/** Where progress goes: a writable with an `isTTY` flag (process.stderr, or a test's stand-in). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  /** Seconds between status lines in a log (`output.progress_every_s`). */
  everyS?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

/** Seconds as "1h02m", "3m05s" or "42s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** Running figures of one run's steps: gate-open rate over the run so far, mean step time over the last 50 steps. */
class StepStats {
  label = '';
  total = 0;
  private open = 0;
  private seen = 0;
  private times: number[] = [];
  last: StepView | null = null;

  reset(label: string, total: number): void {
    Object.assign(this, { label, total, open: 0, seen: 0, times: [], last: null });
  }

  add(v: StepView): void {
    this.seen++;
    this.open += v.gateRate;
    this.times.push(v.stepMs);
    if (this.times.length > 50) this.times.shift();
    this.last = v;
  }

  gate(): string {
    return this.seen ? `${((100 * this.open) / this.seen).toFixed(0)}%` : '-';
  }

  msPerStep(): number {
    return this.times.length ? this.times.reduce((a, b) => a + b, 0) / this.times.length : NaN;
  }

  /** Seconds left at the recent pace (steps only: evaluations and checkpoints come on top). */
  eta(): number {
    return this.last ? ((this.total - this.last.step) * this.msPerStep()) / 1000 : NaN;
  }
}

/** For a log: every phase as a line, and one status line per `everyS` seconds (run, step/total, loss, cosine, gate rate, step time, ETA). */
export function logProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const everyMs = (options.everyS ?? 30) * 1000;
  const now = options.now ?? Date.now;
  const stats = new StepStats();
  let lastLine = -Infinity;
  let lastStatus = '';
  const line = (text: string) => stream.write(`[gradprom] ${text}\n`);
  const due = () => now() - lastLine >= everyMs;
  return {
    phase: (text) => line(text),
    status(text) {
      if (!due() || text === lastStatus) return; // a phase that has not moved says nothing new
      lastLine = now();
      lastStatus = text;
      line(text);
    },
    start(label, total, at) {
      stats.reset(label, total);
      lastLine = now();
      line(`${label}: training, step ${at}/${total}`);
    },
    update(v) {
      stats.add(v);
      if (!due() && v.step < stats.total) return;
      lastLine = now();
      line(
        `${stats.label}: step ${v.step}/${stats.total} | L_IP ${v.lossIp.toExponential(2)} | cos ${v.cos.toFixed(3)} | gate ${stats.gate()} | ` +
          `${stats.msPerStep().toFixed(0)} ms/step | ETA ${formatDuration(stats.eta())}`,
      );
    },
    stop() {},
  };
}

/** For a terminal: phase lines, a status line rewritten in place, and a bar with ETA, live loss, cosine and gate-open rate while training. */
export function barProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const bar = new cliProgress.SingleBar(
    {
      format: '{label} |{bar}| {value}/{total} | ETA {eta_formatted} | L_IP {loss} | cos {cos} | gate {gate} | {ms} ms/step {phase}',
      stream: stream as NodeJS.WritableStream,
      hideCursor: true,
      etaBuffer: 50,
      noTTYOutput: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const stats = new StepStats();
  let running = false;
  let pending = false; // a status line is on screen without its newline
  const endStatus = () => {
    if (pending) stream.write('\n');
    pending = false;
  };
  return {
    phase(text) {
      // While the bar is drawn a line of our own would tear it: the phase shows inside the bar until the next step.
      if (running) bar.update({ phase: `| ${text}` });
      else {
        endStatus();
        stream.write(`${text}\n`);
      }
    },
    status(text) {
      if (running) return;
      stream.write(`\r${text}\x1b[K`);
      pending = true;
    },
    start(label, total, at) {
      endStatus();
      stats.reset(label, total);
      running = true;
      bar.start(total, at, { label, loss: '-', cos: '-', gate: '-', ms: '-', phase: '' });
    },
    update(v) {
      stats.add(v);
      bar.update(v.step, {
        loss: v.lossIp.toExponential(2),
        cos: v.cos.toFixed(3),
        gate: stats.gate(),
        ms: stats.msPerStep().toFixed(0),
        phase: '',
      });
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}

/** The progress a command shows: none when quiet (or printing JSON), a bar on a terminal, status lines in a log. */
export function progressFor(mode: { quiet?: boolean; json?: boolean; everyS: number; stream?: ProgressStream }): Progress {
  const stream = mode.stream ?? process.stderr;
  if (mode.quiet || mode.json) return noProgress;
  return stream.isTTY ? barProgress({ stream }) : logProgress({ stream, everyS: mode.everyS });
}
