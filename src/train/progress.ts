/** Progress reporting for the training loop: a bar on a terminal, nothing in quiet/JSON modes. */
import cliProgress from 'cli-progress';

export interface StepView {
  step: number;
  lossIp: number;
  cos: number;
  gateRate: number;
}

export interface Progress {
  start(label: string, total: number, at: number): void;
  update(view: StepView): void;
  stop(): void;
}

/** Reports nothing. */
export const noProgress: Progress = { start() {}, update() {}, stop() {} };

/** A progress bar with ETA and live loss, cosine and running gate-open rate, on stderr. */
export function barProgress(): Progress {
  const bar = new cliProgress.SingleBar(
    {
      format: '{label} |{bar}| {value}/{total} | ETA {eta_formatted} | L_IP {loss} | cos {cos} | gate {gate}',
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  let open = 0;
  let seen = 0;
  return {
    start(label, total, at) {
      open = 0;
      seen = 0;
      bar.start(total, at, { label, loss: '-', cos: '-', gate: '-' });
    },
    update(v) {
      seen++;
      open += v.gateRate;
      bar.update(v.step, { loss: v.lossIp.toExponential(2), cos: v.cos.toFixed(3), gate: `${((100 * open) / seen).toFixed(0)}%` });
    },
    stop() {
      bar.stop();
    },
  };
}
