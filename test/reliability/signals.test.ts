/**
 * Ctrl-C and SIGTERM against `gradprom train` (a child process running the built CLI), during a step and during a
 * checkpoint write: exit 130, a consistent run folder, no sidecar left, and `--resume` finishes the run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, realPython, root, waitFor } from '../helpers.js';
import { faultPython, recordsOf, staleTemps, tempDir, tinyYaml, valEvalSteps } from './harness.js';

const bin = join(root, 'bin', 'gradprom.js');
const STEPS = 40;
const EVERY_VAL_EVAL = Array.from({ length: STEPS / 5 }, (_, i) => i * 5);
let tmp: ReturnType<typeof tempDir>;
let yaml: string;
let child: ChildProcess | null = null;

beforeAll(() => {
  tmp = tempDir('gradprom-signals-');
  yaml = join(tmp.dir, 'tiny.yaml');
  writeFileSync(yaml, tinyYaml({ steps: STEPS })); // long enough that a signal sent around step 10 lands before the end
});
afterEach(() => {
  if (child?.pid && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
  child = null;
});
afterAll(() => tmp.remove());

/** `gradprom train` in its own process group (like a shell job), optionally through the fault sidecar. */
function train(out: string, faults: Record<string, string> = {}): { exit: Promise<number | null>; stderr: () => string } {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1', ...faults };
  if (Object.keys(faults).length) Object.assign(env, { GRADPROM_PYTHON: faultPython, GRADPROM_REAL_PYTHON: realPython });
  const args = [bin, 'train', '--config', yaml, '--out', out, '--quiet'];
  child = spawn(process.execPath, args, { detached: true, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const c = child;
  let stderr = '';
  c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return { exit: new Promise((resolve) => c.once('exit', (code) => resolve(code))), stderr: () => stderr };
}

/** `gradprom train --resume dir`, to completion: its exit code, with its stderr when it is not 0. */
function resume(dir: string): number | string | null {
  const r = spawnSync(process.execPath, [bin, 'train', '--resume', dir, '--quiet'], {
    env: { ...process.env, OMP_NUM_THREADS: '1' },
    timeout: 120_000,
    encoding: 'utf8',
  });
  return r.status === 0 ? 0 : `exit ${r.status ?? r.signal}: ${r.stderr}`;
}

const stepsLogged = (dir: string) => {
  try {
    return (readFileSync(join(dir, 'metrics.jsonl'), 'utf8').match(/"type":"step"/g) ?? []).length;
  } catch {
    return 0;
  }
};

/** Sidecars whose parent was `pid` and that still run. */
function sidecarsOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(`--parent-pid\0${pid}\0`);
      } catch {
        return false;
      }
    })
    .map(Number)
    .filter(alive);
}

/** The folder is whole: config, parseable metrics, a loadable-looking checkpoint and no half-written files. */
function expectConsistent(dir: string): void {
  expect(() => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).not.toThrow();
  expect(() => recordsOf(dir)).not.toThrow();
  expect(readdirSync(join(dir, 'checkpoints'))).toContain('last.pt');
}

describe('interrupting gradprom train', () => {
  it('Ctrl-C (SIGINT to the process group) during a step: finishes it, checkpoints there, exits 130; --resume completes', async () => {
    const dir = join(tmp.dir, 'sigint');
    const { exit } = train(dir);
    expect(await waitFor(() => stepsLogged(dir) >= 8, 90_000)).toBeGreaterThanOrEqual(0);
    const pid = child!.pid!;
    process.kill(-pid, 'SIGINT');
    expect(await exit).toBe(130);
    expect(await waitFor(() => sidecarsOf(pid).length === 0, 5000)).toBeGreaterThanOrEqual(0);
    expectConsistent(dir);
    expect(staleTemps(dir)).toEqual([]);
    const stoppedAt = Math.max(
      ...recordsOf(dir)
        .all.filter((r) => r.type === 'step')
        .map((r) => (r as { step: number }).step),
    );
    expect(resume(dir)).toBe(0);
    expect(
      recordsOf(dir)
        .live.filter((r) => r.type === 'resume')
        .map((r) => (r as { step: number }).step),
    ).toEqual([stoppedAt]);
    expect(valEvalSteps(dir)).toEqual(EVERY_VAL_EVAL);
  }, 180_000);

  it('SIGTERM during a checkpoint write: the write completes, a final checkpoint follows, exit 130; --resume completes', async () => {
    const dir = join(tmp.dir, 'sigterm-in-save');
    // Saves 1 and 2 are steps 0 and 5; from the 3rd (step 10) on each sleeps 1.5 s between its write and its rename.
    const { exit } = train(dir, { FAULT_SLOW_SAVE: '3:1.5' });
    expect(await waitFor(() => stepsLogged(dir) >= 10 && staleTemps(dir).length > 0, 90_000)).toBeGreaterThanOrEqual(0);
    process.kill(child!.pid!, 'SIGTERM');
    expect(await exit).toBe(130);
    expectConsistent(dir);
    expect(staleTemps(dir)).toEqual([]);
    expect(resume(dir)).toBe(0);
    expect(
      recordsOf(dir)
        .live.filter((r) => r.type === 'resume')
        .map((r) => (r as { step: number }).step),
    ).toEqual([10]);
    expect(valEvalSteps(dir)).toEqual(EVERY_VAL_EVAL);
  }, 180_000);

  it('a second Ctrl-C during a checkpoint write abandons it: the previous checkpoint survives and --resume uses it', async () => {
    const dir = join(tmp.dir, 'double-sigint-in-save');
    const { exit, stderr } = train(dir, { FAULT_SLOW_SAVE: '3:30' });
    expect(await waitFor(() => stepsLogged(dir) >= 10 && staleTemps(dir).length > 0, 90_000)).toBeGreaterThanOrEqual(0);
    const pid = child!.pid!;
    process.kill(-pid, 'SIGINT');
    // The second Ctrl-C only once the CLI has taken the first (two signals at once could arrive as one).
    expect(await waitFor(() => stderr().includes('stopping after this step'), 30_000)).toBeGreaterThanOrEqual(0);
    process.kill(-pid, 'SIGINT');
    expect(await exit).toBe(130);
    expect(await waitFor(() => sidecarsOf(pid).length === 0, 5000)).toBeGreaterThanOrEqual(0);
    expectConsistent(dir);
    expect(staleTemps(dir)).toHaveLength(1); // the killed write's temporary file; last.pt is untouched
    expect(resume(dir)).toBe(0);
    expect(staleTemps(dir)).toEqual([]);
    expect(
      recordsOf(dir)
        .live.filter((r) => r.type === 'resume')
        .map((r) => (r as { step: number }).step),
    ).toEqual([5]);
    expect(valEvalSteps(dir)).toEqual(EVERY_VAL_EVAL);
  }, 180_000);
});
