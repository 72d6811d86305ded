/**
 * Faults survived by a training run with the real sidecar: SIGKILL, a hang, a crash inside a checkpoint write,
 * NaN/Inf steps; and the restart limit. Resumed runs must end with the uninterrupted run's exact metrics.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isGradpromError, runExperiment, Sidecar, silentLogger, type RunResult } from 'gradprom';
import { alive } from '../helpers.js';
import { clearFaults, faultySidecar, onSteps, recordsOf, staleTemps, tempDir, tinyConfig, valEvalSteps } from './harness.js';

const EVERY_VAL_EVAL = [0, 5, 10, 15];

let tmp: ReturnType<typeof tempDir>;
let baseline: RunResult;
const sidecars: Sidecar[] = [];

/** A sidecar stopped in afterEach. */
async function sidecar(faults: Record<string, string> = {}, opts: Parameters<typeof faultySidecar>[1] = {}): Promise<Sidecar> {
  const sc = Object.keys(faults).length
    ? await faultySidecar(faults, opts)
    : await Sidecar.start({ device: 'cpu', logger: silentLogger, ...opts });
  sidecars.push(sc);
  return sc;
}

/** The final test evaluation: every metric, compared exactly. */
const finalOf = (r: RunResult) => r.summary.final;

beforeAll(async () => {
  tmp = tempDir('gradprom-faults-');
  baseline = await runExperiment(tinyConfig(), { runDir: join(tmp.dir, 'baseline'), sidecar: await sidecar() });
  expect(valEvalSteps(baseline.runDir)).toEqual(EVERY_VAL_EVAL);
  expect(baseline.summary.final.step).toBe(20);
});

afterEach(async () => {
  clearFaults();
  for (const sc of sidecars.splice(0)) await sc.stop();
});

afterAll(() => tmp.remove());

describe('a training run survives its sidecar', () => {
  it('crashing inside a checkpoint write, then a SIGKILL, then a hang: each time resumed, ending with the same metrics', async () => {
    const marker = join(tmp.dir, 'crashed-in-save');
    // Fault 1: the 2nd save (step 5) is killed between its temporary file's write and the rename.
    const sc = await sidecar({ FAULT_CRASH_IN_SAVE: `2:${marker}` }, { heartbeatIntervalMs: 250, heartbeatTimeoutMs: 3000 });
    const pids = [sc.pid];
    const r = await runExperiment(tinyConfig(), {
      runDir: join(tmp.dir, 'three-faults'),
      sidecar: sc,
      progress: onSteps({
        7: () => (pids.push(sc.pid), process.kill(sc.pid, 'SIGKILL')), // fault 2
        12: () => (pids.push(sc.pid), process.kill(sc.pid, 'SIGSTOP')), // fault 3: hung, found by the heartbeat
      }),
    });
    expect(existsSync(marker)).toBe(true);
    expect(new Set(pids).size).toBe(3);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    const resumes = recordsOf(r.runDir).all.filter((x) => x.type === 'resume') as unknown as {
      step: number;
      restart: number;
      reason: string;
    }[];
    // The crashed save left step 0's checkpoint intact, and the resume used it.
    expect(resumes.map((x) => [x.step, x.restart])).toEqual([
      [0, 1],
      [5, 2],
      [10, 3],
    ]);
    expect(resumes[0]!.reason).toMatch(/SIGKILL/);
    expect(resumes[2]!.reason).toMatch(/heartbeat/);
    expect(staleTemps(r.runDir)).toEqual([]);
    expect(valEvalSteps(r.runDir)).toEqual(EVERY_VAL_EVAL);
    expect(r.summary.loggedSteps).toBe(20);
    expect(finalOf(r)).toEqual(finalOf(baseline));
  });

  it('dying more often than train.max_restarts allows: a clear SIDECAR_DEAD, the last checkpoint kept', async () => {
    const sc = await sidecar();
    const kill = () => process.kill(sc.pid, 'SIGKILL');
    const runDir = join(tmp.dir, 'too-many');
    const err = await runExperiment(tinyConfig({ max_restarts: 1 }), {
      runDir,
      sidecar: sc,
      progress: onSteps({ 2: kill, 6: kill }),
    }).catch((e: unknown) => e);
    expect(isGradpromError(err, 'SIDECAR_DEAD')).toBe(true);
    expect((err as Error).message).toContain(join(runDir, 'checkpoints', 'last.pt'));
    expect(recordsOf(runDir).all.filter((x) => x.type === 'resume')).toHaveLength(1);
    await sc.restart();
    expect((await sc.call('checkpoint.load', { path: join(runDir, 'checkpoints', 'last.pt') })).result.step).toBe(5);
  });
});

describe('non-finite steps', () => {
  it('are skipped, counted and logged; K + 1 in a row stop the run naming the step; the last good checkpoint resumes', async () => {
    const runDir = join(tmp.dir, 'nan');
    // Attempts 2 (NaN loss) and 4 (Inf gradient) are isolated; from attempt 10 on every step is NaN: step 8 never succeeds.
    const sc = await sidecar({ FAULT_NAN_LOSS: '2,10+', FAULT_INF_GRAD: '4' });
    const err = await runExperiment(tinyConfig({ max_skips: 3 }), { runDir, sidecar: sc }).catch((e: unknown) => e);
    expect(isGradpromError(err, 'RUN')).toBe(true);
    expect((err as Error).message).toMatch(/\bstep 8\b/);
    const skipped = recordsOf(runDir).all.filter((x) => x.type === 'step' && x.skipped) as unknown as {
      step: number;
      loss_ip: number | null;
      reason: string;
    }[];
    expect(skipped.map((x) => x.step)).toEqual([1, 2, 7, 7, 7, 7]);
    expect(skipped[0]!.loss_ip).toBeNull(); // NaN, as JSON writes it
    expect(skipped[1]!.loss_ip).not.toBeNull(); // an infinite gradient under a finite loss
    expect(skipped.every((x) => x.reason.length > 0)).toBe(true);
    clearFaults();
    const r = await runExperiment(tinyConfig(), { runDir, resume: true, sidecar: await sidecar() });
    expect(r.summary.resumedAt).toEqual([5]);
    expect(r.summary.skipped).toBe(2); // the abandoned attempts after step 5 no longer count
    expect(r.summary.final.step).toBe(20);
    expect(valEvalSteps(r.runDir)).toEqual(EVERY_VAL_EVAL);
  });
});
