/** Progress on stderr: status lines every N seconds in a log, a bar and in-place status on a terminal, phase lines in both. */
import { barProgress, formatDuration, logProgress, progressFor, noProgress, type ProgressStream } from 'gradprom';

function sink(isTTY: boolean): ProgressStream & { text: () => string } {
  const chunks: string[] = [];
  return { isTTY, write: (t: string) => chunks.push(t), text: () => chunks.join('') };
}

const view = (step: number) => ({ step, lossIp: 0.0123, cos: 0.25, gateRate: step % 2, stepMs: 100 });

describe('logProgress (stderr is not a terminal)', () => {
  it('prints a status line at most every N seconds, with run, step/total, loss, cosine, gate rate, step time and ETA', () => {
    let t = 0;
    const out = sink(false);
    const p = logProgress({ stream: out, everyS: 30, now: () => t });
    p.phase!('loading data: 2000 images');
    p.start('gradprom-l0.003-s0', 100, 0);
    for (let step = 1; step <= 100; step++) {
      t += 1000; // one second a step
      p.update(view(step));
    }
    p.stop();
    const lines = out.text().trim().split('\n');
    expect(lines[0]).toBe('[gradprom] loading data: 2000 images');
    expect(lines[1]).toBe('[gradprom] gradprom-l0.003-s0: training, step 0/100');
    const status = lines.filter((l) => l.includes('| ETA'));
    // steps 30, 60 and 90 (30 s apart), and the last step
    expect(status.map((l) => /step (\d+)\/100/.exec(l)![1])).toEqual(['30', '60', '90', '100']);
    expect(status[0]).toBe('[gradprom] gradprom-l0.003-s0: step 30/100 | L_IP 1.23e-2 | cos 0.250 | gate 50% | 100 ms/step | ETA 7s');
  });

  it('throttles status lines of a phase the same way', () => {
    let t = 0;
    const out = sink(false);
    const p = logProgress({ stream: out, everyS: 10, now: () => t });
    for (let k = 0; k < 25; k++) {
      t += 1000;
      p.status!(`pretraining VR: ${k}/300`);
    }
    expect(out.text()).toBe('[gradprom] pretraining VR: 0/300\n[gradprom] pretraining VR: 10/300\n[gradprom] pretraining VR: 20/300\n');
    t += 60_000;
    p.status!('pretraining VR: 20/300'); // nothing moved: nothing new to say
    expect(out.text().split('\n')).toHaveLength(4);
  });
});

describe('barProgress (a terminal)', () => {
  it('prints phases as lines, rewrites status in place, and draws a bar while training', () => {
    const out = sink(true);
    const p = barProgress({ stream: out });
    p.phase!('loading data: 10 images');
    p.status!('pretraining VR: 1/5');
    p.status!('pretraining VR: 2/5');
    p.phase!('pretraining VR: 5/5');
    p.start('run', 4, 0);
    for (let s = 1; s <= 4; s++) p.update(view(s));
    p.stop();
    const text = out.text();
    expect(text.startsWith('loading data: 10 images\n\rpretraining VR: 1/5\x1b[K\rpretraining VR: 2/5\x1b[K\npretraining VR: 5/5\n')).toBe(
      true,
    );
    expect(text).toMatch(/run \|[^\n]*\| 4\/4 \| ETA/);
    expect(text).toMatch(/L_IP 1\.23e-2 \| cos 0\.250 \| gate 50%/);
  });
});

describe('progressFor', () => {
  it('is silent with --quiet or --json, a bar on a terminal, status lines otherwise', () => {
    expect(progressFor({ quiet: true, everyS: 30, stream: sink(true) })).toBe(noProgress);
    expect(progressFor({ json: true, everyS: 30, stream: sink(false) })).toBe(noProgress);
    const log = sink(false);
    progressFor({ everyS: 30, stream: log }).phase!('x');
    expect(log.text()).toBe('[gradprom] x\n');
    const tty = sink(true);
    progressFor({ everyS: 30, stream: tty }).phase!('x');
    expect(tty.text()).toBe('x\n');
  });

  it('formats durations', () => {
    expect([formatDuration(42), formatDuration(185), formatDuration(3720), formatDuration(NaN)]).toEqual(['42s', '3m05s', '1h02m', '-']);
  });
});
