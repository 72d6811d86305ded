/** withRecovery's rules, against a scripted stand-in sidecar: what is retried, how often, and what a restore sets in the loop. */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GradpromError,
  isGradpromError,
  parseConfig,
  RemoteSession,
  SidecarError,
  SidecarExitedError,
  SidecarTimeoutError,
  type Sidecar,
} from 'gradprom';
import { isRecoverable, removeStaleTemps, withRecovery } from '../../src/train/recover.js';
import { restartLimit, StepLoop } from '../../src/train/step-loop.js';
import { MetricsLog, runPaths } from '../../src/train/run-folder.js';
import { tempDir } from '../reliability/harness.js';

const config = (() => {
  const r = parseConfig({ train: { max_restarts: 2 } });
  if (!r.ok) throw new Error('config');
  return r.config;
})();

const CREATE = {
  layout: { blocks: [{ name: 'w', shape: [2], numel: 2, offset: 0 }], numel: 2 },
  ip_params: 2,
  vr_params: 2,
  device: 'cpu',
  data: { train: 1, val: 1, test: 1, num_classes: 2 },
};

/** A stand-in sidecar: counts restarts and answers session.create and checkpoint.load (at `step`); it never shares memory. */
function fakeSidecar(step = 5) {
  const fake = {
    restarts: 0,
    closeRegions() {},
    async restart() {
      fake.restarts++;
    },
    async call(op: string) {
      if (op === 'session.create') return { result: CREATE, tensors: [] };
      if (op === 'checkpoint.load') return { result: { step, skipped: 2, extra: { consecutiveSkips: 1 }, config: {} }, tensors: [] };
      throw new Error(`unexpected op ${op}`);
    },
  };
  return fake;
}

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir('gradprom-recover-');
  mkdirSync(join(tmp.dir, 'checkpoints'));
});
afterEach(() => tmp.remove());

async function setup(step = 5, cfg = config) {
  const fake = fakeSidecar(step);
  const sidecar = fake as unknown as Sidecar;
  const paths = runPaths(tmp.dir);
  const log = new MetricsLog(paths.metrics);
  const session = await RemoteSession.create(sidecar, cfg);
  const loop = new StepLoop(session, 'gram', { step: 0, skipped: 0, consecutiveSkips: 0 }, restartLimit(cfg));
  return { fake, opts: { sidecar, config: cfg, paths, log }, session, loop };
}

const exited = () => new SidecarExitedError(null, 'SIGKILL', ['boom']);

test('only a dead or timed-out sidecar is recoverable', () => {
  expect(isRecoverable(exited())).toBe(true);
  expect(isRecoverable(new SidecarTimeoutError('train.grads', 10))).toBe(true);
  expect(isRecoverable(new SidecarError('eval', 'ValueError', 'x', ''))).toBe(false);
  expect(isRecoverable(new GradpromError('RUN', 'x'))).toBe(false);
  expect(isRecoverable(new Error('plain'))).toBe(false);
});

test('a failure is followed by a restart, a restore into the state, a resume record, and the body again', async () => {
  const { fake, opts, session, loop } = await setup(5);
  let runs = 0;
  await withRecovery(opts, loop, async (l) => {
    runs++;
    if (runs === 1) {
      l.step = 7;
      throw exited();
    }
    // The sidecar's counts (step, skipped) and the loop's own run of skips, as the checkpoint holds them.
    expect([l.step, l.skipped, l.consecutiveSkips, l.pending, l.restarts]).toEqual([5, 2, 1, null, 1]);
    expect(l.session).not.toBe(session);
  });
  expect(runs).toBe(2);
  expect(fake.restarts).toBe(1);
  const records = readFileSync(opts.paths.metrics, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(records).toEqual([{ type: 'resume', step: 5, restart: 1, reason: 'sidecar exited (signal SIGKILL)' }]);
});

test('past train.max_restarts the run ends with SIDECAR_DEAD, the failure as its cause', async () => {
  const { fake, opts, loop } = await setup();
  const last = exited();
  const err = await withRecovery(opts, loop, async () => {
    throw last;
  }).catch((e: unknown) => e);
  expect(isGradpromError(err, 'SIDECAR_DEAD')).toBe(true);
  expect((err as Error).cause).toBe(last);
  expect(fake.restarts).toBe(2);
});

test('other errors pass through untouched, without a restart', async () => {
  const { fake, opts, loop } = await setup();
  const boom = new GradpromError('RUN', 'diverged');
  await expect(withRecovery(opts, loop, async () => Promise.reject(boom))).rejects.toBe(boom);
  expect(fake.restarts).toBe(0);
});

test('once the run is being interrupted, a dead sidecar means INTERRUPTED, not a restart', async () => {
  const { fake, opts, loop } = await setup();
  const ac = new AbortController();
  ac.abort();
  const err = await withRecovery({ ...opts, signal: ac.signal }, loop, async () => Promise.reject(exited())).catch((e: unknown) => e);
  expect(isGradpromError(err, 'INTERRUPTED')).toBe(true);
  expect(fake.restarts).toBe(0);
});

test('a config read back without max_restarts falls back to the default limit, never to none', async () => {
  const old = { ...config, train: { ...config.train, max_restarts: undefined as unknown as number } };
  const { fake, opts, loop } = await setup(5, old);
  const err = await withRecovery(opts, loop, async () => Promise.reject(exited())).catch((e: unknown) => e);
  expect(isGradpromError(err, 'SIDECAR_DEAD')).toBe(true);
  expect(fake.restarts).toBe(3);
});

test('removeStaleTemps removes only the temporary files of cut-short saves', () => {
  const dir = join(tmp.dir, 'checkpoints');
  for (const n of ['last.pt', '.last.pt.abc123.tmp', '.last.pt.x.tmp', 'other.tmp', '.other.pt.q.tmp']) writeFileSync(join(dir, n), '');
  expect(removeStaleTemps(join(dir, 'last.pt')).sort()).toEqual(['.last.pt.abc123.tmp', '.last.pt.x.tmp']);
  expect(readdirSync(dir).sort()).toEqual(['.other.pt.q.tmp', 'last.pt', 'other.tmp']);
});
