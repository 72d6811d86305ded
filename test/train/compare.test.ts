/**
 * `gradprom compare` as a sweep that survives crashes and spreads out (child processes running the built CLI):
 * SIGKILL then --resume, Ctrl-C then --resume, two shards then --report, and --parallel 2, each ending with the
 * compare.json of one uninterrupted sweep; a resume with another plan is refused, naming the difference.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from '../helpers.js';
import { tinyYaml } from '../reliability/harness.js';

const bin = join(root, 'bin', 'gradprom.js');
/** Integration sweeps take seconds each on an idle 2-core machine, far more under load. */
const LONG = 600_000;
/** Two policies (one without VR, one gated) by two seeds: what resume, shards and --parallel must reproduce does not grow with the plan. */
const PLAN = ['--policies', 'ip-only,gradprom', '--seeds', '2', '--quiet'];
/** One thread per sidecar everywhere: runs repeat bit for bit only at the same thread count. */
const ONE_THREAD = { ...process.env, OMP_NUM_THREADS: '1' };

let dir: string;
let yaml: string;
let children: ChildProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-sweep-'));
  yaml = join(dir, 'tiny.yaml');
  // The reliability tests' tiny config (16 px images, small VR, no TensorBoard writer, no run plots: the comparison's
  // own plots are still drawn), 16 steps at λ = 0.5.
  writeFileSync(yaml, `${tinyYaml({ steps: 16 })}policy: {lambda: 0.5}\n`);
});
afterEach(() => {
  for (const c of children) if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGKILL');
  children = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function gradprom(args: string[], env: NodeJS.ProcessEnv = ONE_THREAD) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: LONG });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function background(args: string[], env: NodeJS.ProcessEnv = ONE_THREAD): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  return { child, exit: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

/** compare.json without what differs between two identical sweeps: wall-clock times and where runs resumed. */
function comparable(folder: string): unknown {
  const json = JSON.parse(readFileSync(join(folder, 'compare.json'), 'utf8')) as { summaries: Array<Record<string, unknown>> };
  for (const s of json.summaries) {
    delete s.wallSeconds;
    delete s.stepMsMedian;
    delete s.resumedAt;
  }
  return json;
}

const runsOf = (folder: string) => (existsSync(join(folder, 'runs')) ? readdirSync(join(folder, 'runs')) : []);
const finished = (folder: string) => runsOf(folder).filter((r) => existsSync(join(folder, 'runs', r, 'summary.json')));
const stepsLogged = (runDir: string) => {
  try {
    return (readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').match(/"type":"step"/g) ?? []).length;
  } catch {
    return 0;
  }
};

/** Poll every 20 ms until `cond` gives a value, or `ms` passes. */
async function until<T>(cond: () => T | null, ms: number): Promise<T | null> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = cond();
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}

/** Wait until one run has finished and another has logged more than a checkpoint's worth of steps; its name. */
function midSweep(folder: string): Promise<string | null> {
  return until(() => {
    if (finished(folder).length < 1) return null;
    return runsOf(folder).find((r) => !finished(folder).includes(r) && stepsLogged(join(folder, 'runs', r)) >= 7) ?? null;
  }, LONG);
}

describe('compare sweeps', () => {
  let reference: unknown;

  beforeAll(() => {
    const r = gradprom(['compare', '--config', yaml, ...PLAN, '--out', join(dir, 'ref')]);
    if (r.code !== 0) throw new Error(`reference sweep failed: ${r.stderr}`);
    reference = comparable(join(dir, 'ref'));
  }, LONG);

  it(
    'SIGKILL of the Node process mid-sweep, then --resume: finished runs kept, the interrupted one resumed, the same compare.json',
    async () => {
      const out = join(dir, 'killed');
      const { child, exit } = background(['compare', '--config', yaml, ...PLAN, '--out', out]);
      const cut = await midSweep(out);
      expect(cut).not.toBeNull();
      child.kill('SIGKILL');
      await exit;
      const kept = Object.fromEntries(finished(out).map((r) => [r, readFileSync(join(out, 'runs', r, 'metrics.jsonl'), 'utf8')]));
      expect(Object.keys(kept).length).toBeGreaterThanOrEqual(1);
      expect(existsSync(join(out, 'runs', cut!, 'summary.json'))).toBe(false);

      const r = gradprom(['compare', '--resume', out, '--quiet']);
      expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
      expect(comparable(out)).toEqual(reference);
      for (const [run, text] of Object.entries(kept)) expect(readFileSync(join(out, 'runs', run, 'metrics.jsonl'), 'utf8')).toBe(text);
      expect(readFileSync(join(out, 'runs', cut!, 'metrics.jsonl'), 'utf8')).toMatch(/"type":"resume","step":(5|10|15|20)\b/);
    },
    LONG,
  );

  it(
    '--parallel 2 (a thread per sidecar) gives the compare.json of --parallel 1, across a Ctrl-C (checkpoint, exit 130) and --resume',
    async () => {
      const out = join(dir, 'interrupted');
      // Two threads split over two sidecars: one each, as in the reference.
      const twoThreads = { ...process.env, OMP_NUM_THREADS: '2' };
      const { child, exit } = background(['compare', '--config', yaml, ...PLAN, '--out', out, '--parallel', '2'], twoThreads);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      expect(await midSweep(out)).not.toBeNull();
      child.kill('SIGINT');
      expect(await exit).toBe(130);
      expect(stderr).toMatch(/--resume/);
      const r = gradprom(['compare', '--resume', out, '--parallel', '2', '--quiet'], twoThreads);
      expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 }); // the error, if any, shows
      expect(comparable(out)).toEqual(reference);
    },
    LONG,
  );

  it(
    'two shards at once into one folder, then --report: the same compare.json as one unsharded sweep',
    async () => {
      const out = join(dir, 'sharded');
      const shards = [0, 1].map((i) => background(['compare', '--config', yaml, ...PLAN, '--out', out, '--shard', `${i}/2`]));
      expect(await Promise.all(shards.map((s) => s.exit))).toEqual([0, 0]);
      expect(existsSync(join(out, 'compare.json'))).toBe(false); // shards train; the report is its own step
      const r = gradprom(['compare', '--report', out, '--json']);
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as { missing: string[] }).missing).toEqual([]);
      expect(comparable(out)).toEqual(reference);
    },
    LONG,
  );

  it('--report lists the runs that have not finished', () => {
    const out = join(dir, 'partial');
    cpSync(join(dir, 'ref'), out, { recursive: true });
    rmSync(join(out, 'runs', 'gradprom-l0.5-s1', 'summary.json'));
    const r = gradprom(['compare', '--report', out, '--quiet']);
    expect(r.code).toBe(0);
    const md = readFileSync(join(out, 'compare.md'), 'utf8');
    expect(md).toContain('**Incomplete: 1 planned run(s) not finished**: `gradprom-l0.5-s1`');
    expect(md).toContain('# Comparison of 3 runs');
  });

  it('a resume with another plan or config is refused before any work, naming the difference', () => {
    const ref = join(dir, 'ref');
    const before = readFileSync(join(ref, 'compare.json'), 'utf8');
    const seeds = gradprom(['compare', '--resume', ref, '--config', yaml, '--policies', 'ip-only,gradprom', '--seeds', '3']);
    expect(seeds.code).toBe(2);
    expect(seeds.stderr).toContain('seeds: 0,1 there, 0,1,2 now');
    const steps = gradprom(['compare', '--resume', ref, '--config', yaml, '--seeds', '2', '--set', 'train.steps=17']);
    expect(steps.code).toBe(2);
    expect(steps.stderr).toContain('config train.steps: 16 there, 17 now');
    expect(readFileSync(join(ref, 'compare.json'), 'utf8')).toBe(before);
    const again = gradprom(['compare', '--config', yaml, ...PLAN, '--out', ref]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`continue it with --resume ${ref}`);
  });

  it('a folder without a comparison, a damaged plan, or no finished run yet is named (exit 1)', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const none = gradprom(['compare', '--resume', empty]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`${empty} holds no comparison (no plan.json)`);
    const fresh = join(dir, 'fresh');
    mkdirSync(fresh);
    for (const f of ['plan.json', 'config.json']) cpSync(join(dir, 'ref', f), join(fresh, f));
    const unfinished = gradprom(['compare', '--report', fresh]);
    expect(unfinished.code).toBe(1);
    expect(unfinished.stderr).toContain(`${fresh}: none of the 4 planned runs has finished yet`);
    writeFileSync(join(fresh, 'plan.json'), '{"format": "gradprom-compare-plan", "version": 1, "policies": ["magic"]}');
    const damaged = gradprom(['compare', '--report', fresh]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toContain(`${join(fresh, 'plan.json')}: policies.0: Invalid option`);
  });

  it('bad --parallel, --shard and flag combinations are usage errors', () => {
    expect(gradprom(['compare', '--parallel', '0']).code).toBe(2);
    const shard = gradprom(['compare', '--shard', '2/2']);
    expect(shard.code).toBe(2);
    expect(shard.stderr).toContain('0 <= i < n');
    expect(gradprom(['compare', '--report', join(dir, 'ref'), '--shard', '0/2']).code).toBe(2);
    expect(gradprom(['compare', '--resume', join(dir, 'ref'), '--force']).code).toBe(2);
    expect(gradprom(['compare', '--lambdas', '0.1,x']).stderr).toContain('"x" is not a non-negative number');
  });
});

describe('compare --controls', () => {
  it(
    "runs random-gate and joint-scaled at each gradprom run's measured gate-open rate; compare.md has the control rows, Holm-adjusted p-values and the detectable difference",
    () => {
      const out = join(dir, 'controls');
      const r = gradprom(['compare', '--config', yaml, '--policies', 'gradprom', '--controls', '--seeds', '2', '--quiet', '--out', out]);
      expect(r.code).toBe(0);
      for (const seed of [0, 1]) {
        const rate = JSON.parse(readFileSync(join(out, 'runs', `gradprom-l0.5-s${seed}`, 'summary.json'), 'utf8')).gateOpenRate as number;
        for (const control of ['random-gate', 'joint-scaled']) {
          const cfg = JSON.parse(readFileSync(join(out, 'runs', `${control}-l0.5-s${seed}`, 'config.json'), 'utf8'));
          expect(cfg.policy.open_rate).toBe(rate);
        }
      }
      const md = readFileSync(join(out, 'compare.md'), 'utf8');
      expect(md).toContain('## Does the gate help? gradprom against the dose-matched controls');
      expect(md).toMatch(/\| `random-gate` \| 0\.5 \| 2 \|/);
      expect(md).toMatch(/\| `joint-scaled` \| 0\.5 \| 2 \|/);
      expect(md).toMatch(/`gradprom` − `random-gate`[^\n]*Holm-adjusted: t p/);
      expect(md).toContain('detectable with 80 % power over 2 seeds');
      expect(md).toContain('## What this design can detect');
      expect(md).toContain('**This design cannot state any ordering.**');
    },
    LONG,
  );

  it('refuses controls without gradprom, before any work', () => {
    const r = gradprom(['compare', '--config', yaml, '--policies', 'joint', '--controls', '--out', join(dir, 'orphan')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--controls');
    expect(existsSync(join(dir, 'orphan'))).toBe(false);
  });
});
