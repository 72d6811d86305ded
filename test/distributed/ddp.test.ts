/** Scale-out from TypeScript: 2 gloo ranks against 1 process, and a rank killed mid-run (CPU, 2 cores). */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { runExperiment, silentLogger, type Config, type RunResult } from 'gradprom';
import { alive, configOf, PythonRunner, realPython, root, waitFor } from '../helpers.js';

/**
 * IP parameters of the 2-rank run may differ from the 1-process run's by float rounding only. Two things turn
 * rounding into more, and the config avoids both: Adam divides by sqrt(v), so an element whose gradient is as small
 * as the rounding noise can move by up to lr per step differently (1.4e-4 seen after 10 steps with λ = 0.5): the
 * test trains with SGD and does not pretrain VR (pretraining is Adam); and a ReLU whose input sits within rounding
 * of 0 passes the gradient or not (seen with the default, wider VR and 2 threads per rank): the VR is narrow and
 * every process has one thread (below).
 */
const TOL = 1e-5;

/** A config small enough for seconds per run, without BatchNorm (srresnet without batch_norm, smallresnet uses GroupNorm). */
const TINY = [
  'data.counts.train=64',
  'data.counts.val=16',
  'data.counts.test=32',
  'ip.channels=8',
  'ip.blocks=1',
  'vr.pretrain_steps=0',
  'vr.kwargs.widths=[4, 8]',
  'train.steps=10',
  'train.batch_size=8',
  'train.eval_every=5',
  'train.checkpoint_every=5',
  'eval.limit=32',
  'policy.lambda=0.5',
  'device=cpu',
  'train.ip_optim.name=sgd',
  'train.ip_optim.lr=0.01',
  'train.vr_optim.name=sgd',
  'train.vr_optim.lr=0.01',
  'train.tensorboard=false', // its writer is a Python process per run; test/train/tensorboard.test.ts covers it
  'output.plots=false', // a second and a half of CPU per run; test/train/runner.test.ts draws them
];

const tinyConfig = (...sets: string[]): Promise<Config> => configOf([...TINY, ...sets]);

let py: PythonRunner; // the checkpoint reads, one torch import for all of them

/** Run a Python snippet in the sidecar's interpreter and parse its stdout as JSON. */
async function python<T>(script: string, ...args: string[]): Promise<T> {
  return JSON.parse(await py.run(script, args)) as T;
}

const MAX_IP_DIFF = `
import json, sys
from gradprom_sidecar.models.checkpoint import load_checkpoint
x, y = (load_checkpoint(p)["ip"] for p in sys.argv[1:3])
assert x.keys() == y.keys()
print(json.dumps(max(float((x[k].double() - y[k].double()).abs().max()) for k in x)))`;

const CHECKPOINT_STEP = `
import json, sys
from gradprom_sidecar.models.checkpoint import load_checkpoint
print(json.dumps(load_checkpoint(sys.argv[1])["step"]))`;

interface Line {
  type: string;
  step: number;
  gate?: boolean | null;
  cos?: number;
  loss_ip?: number;
}

function lines(file: string): Line[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

/** Run the CLI (asynchronously: the test's event loop keeps running). */
function gradprom(...args: string[]): Promise<{ code: number | null; stderr: string }> {
  const cli = spawn(process.execPath, [join(root, 'bin', 'gradprom.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => cli.once('close', (code) => resolve({ code, stderr })));
}

/** The sidecar processes a process started, by rank (read from their environment; Linux /proc). */
function ranksOf(parent: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid !== parent) continue;
      const env = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      const rank = env.find((e) => e.startsWith('RANK='));
      if (rank) out.set(Number(rank.slice(5)), Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

/** A port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const steps = (run: string) => lines(join(run, 'metrics.jsonl')).filter((l) => l.type === 'step');

/** The same global batch and seed on several ranks as in one process: same decisions, same parameters to rounding. */
async function expectSameRun(one: RunResult, other: RunResult): Promise<void> {
  const [a, b] = [steps(one.runDir), steps(other.runDir)];
  expect(b).toHaveLength(10);
  expect(b.map((l) => l.gate)).toEqual(a.map((l) => l.gate));
  expect(new Set(a.map((l) => l.gate)).size).toBe(2); // both decisions occur, so a wrong one would show
  b.forEach((l, i) => {
    expect(l.loss_ip).toBeCloseTo(a[i]!.loss_ip!, 5);
    expect(l.cos).toBeCloseTo(a[i]!.cos!, 5); // the policy saw the global gradients
  });
  const diff = await python<number>(MAX_IP_DIFF, join(one.runDir, 'checkpoints', 'last.pt'), join(other.runDir, 'checkpoints', 'last.pt'));
  expect(diff).toBeLessThanOrEqual(TOL);
  expect(Number(other.summary.final.psnr)).toBeCloseTo(Number(one.summary.final.psnr), 3); // evaluation gathered over the ranks
}

// One thread per process, for every sidecar of this file (children inherit it): the same arithmetic in every rank
// (see TOL), and steady step times on a busy 2-core machine, where a 2-thread torch step can stall for seconds.
const threads = process.env.OMP_NUM_THREADS;
let shared: string;
let one: RunResult;
beforeAll(async () => {
  process.env.OMP_NUM_THREADS = '1';
  py = new PythonRunner();
  shared = mkdtempSync(join(tmpdir(), 'gradprom-ddp-one-'));
  one = await runExperiment(await tinyConfig(), { runDir: join(shared, 'one'), logger: silentLogger });
}, 300_000);
afterAll(async () => {
  await py.close();
  rmSync(shared, { recursive: true, force: true });
  if (threads === undefined) delete process.env.OMP_NUM_THREADS;
  else process.env.OMP_NUM_THREADS = threads;
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-ddp-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the sidecar on 2 ranks (torch.distributed, gloo)', () => {
  it('gives the same IP parameters and gate decisions as 1 process with the same global batch and seed', async () => {
    const two = await runExperiment(await tinyConfig('distributed.nproc=2'), { runDir: join(dir, 'two'), logger: silentLogger });
    await expectSameRun(one, two);
  }, 300_000);

  it("follows README's several-machine recipe: node 0 started by gradprom, node 1 by torchrun (both on this machine)", async () => {
    const port = await freePort();
    // README: PYTHONPATH=$PWD/python torchrun --nnodes 2 --node-rank 1 --nproc-per-node 4 --master-addr A --master-port P -m gradprom_sidecar --dist-backend nccl
    const args = ['-m', 'torch.distributed.run', '--nnodes', '2', '--node-rank', '1', '--nproc-per-node', '1'];
    args.push(
      '--master-addr',
      '127.0.0.1',
      '--master-port',
      String(port),
      '-m',
      'gradprom_sidecar',
      '--dist-backend',
      'gloo',
      '--device',
      'cpu',
    );
    const node1 = spawn(realPython, args, {
      env: { ...process.env, PYTHONPATH: join(root, 'python') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let node1Err = '';
    node1.stderr.on('data', (d: Buffer) => (node1Err += d.toString()));
    const node1Exit = new Promise<number | null>((r) => node1.once('exit', (code) => r(code)));
    try {
      const config = await tinyConfig('distributed.nnodes=2', `distributed.master_port=${port}`);
      const multi = await runExperiment(config, { runDir: join(dir, 'multi'), logger: silentLogger }).catch((e: unknown) => {
        throw new Error(`${String(e)}\n--- node 1 (torchrun) stderr ---\n${node1Err}`);
      });
      await expectSameRun(one, multi);
      expect({ code: await node1Exit, stderr: node1Err }).toMatchObject({ code: 0, stderr: expect.stringMatching(/rank 1 of 2 joined/) }); // rank 0 told it to exit
    } finally {
      node1.kill('SIGKILL');
    }
  }, 300_000);

  it('stops the run when a rank is killed: the error names the rank with its last stderr lines, the checkpoint is kept, no process is left', async () => {
    const runDir = join(dir, 'run');
    const sets = [...TINY, 'train.steps=40', 'train.eval_every=0', 'train.checkpoint_every=5'].flatMap((s) => ['--set', s]);
    const cli = spawn(
      process.execPath,
      [join(root, 'bin', 'gradprom.js'), 'train', '--nproc', '2', '--out', runDir, '--verbose', ...sets],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => cli.once('exit', (code) => r(code)));
    const metrics = join(runDir, 'metrics.jsonl');
    // Past step 5: its checkpoint is written. (Two ranks start and import torch first: minutes on a loaded machine.)
    expect(await waitFor(() => lines(metrics).some((l) => l.type === 'step' && l.step > 5), 240_000)).toBeGreaterThanOrEqual(0);
    const ranks = ranksOf(cli.pid!);
    expect([...ranks.keys()].sort()).toEqual([0, 1]);
    process.kill(ranks.get(1)!, 'SIGKILL');

    expect(await exited).toBe(1);
    expect(stderr).toMatch(/sidecar rank 1 of 2 exited \(signal SIGKILL\)/);
    expect(stderr).toMatch(/--- last stderr of rank 1 ---\n.*rank 1 of 2 joined/);
    for (const pid of ranks.values()) expect(await waitFor(() => !alive(pid), 5_000)).toBeGreaterThanOrEqual(0);
    const kept = await python<number>(CHECKPOINT_STEP, join(runDir, 'checkpoints', 'last.pt'));
    expect(kept).toBeGreaterThanOrEqual(5);
    expect(kept % 5).toBe(0);

    // The kept checkpoint resumes on another number of ranks: here one process.
    const resumed = await gradprom('train', '--resume', runDir, '--quiet');
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const after = lines(metrics);
    expect(after.find((l) => l.type === 'resume')?.step).toBe(kept);
    expect(after.filter((l) => l.type === 'step').at(-1)?.step).toBe(40);
  }, 300_000);
});
