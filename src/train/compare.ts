/**
 * `compare`: one configuration under several policies, λ settings and seeds, with a shared start per seed.
 *
 * A comparison is a folder: plan.json and config.json (written when it starts), start-seed<k>.pt, one run
 * folder per planned run under runs/, and the report (compare.md, compare.json, tradeoff.svg, descent.svg).
 * It survives crashes (`resume`: finished runs are kept, interrupted ones resume from their checkpoint,
 * missing ones start), runs N at once (`parallel`, one sidecar each) and splits across machines (`shard`).
 */
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../config/index.js';
import { GradpromError, isGradpromError } from '../errors.js';
import { policies as registry, type PolicyName } from '../policy/index.js';
import {
  ENDPOINTS,
  writeCompareReport,
  type CompareResult,
  type PairMetric,
  type RunSummary,
  type StatedDifferences,
} from '../report/index.js';
import { distributedOptions } from '../sidecar/ranks.js';
import { Sidecar } from '../sidecar/sidecar.js';
import type { Logger } from '../sidecar/logger.js';
import { finishedRuns, measuredOpenRate, recordFailure, runState } from './compare-folder.js';
import {
  makePlan,
  planDifference,
  PLAN_CONFIG_FILE,
  PLAN_FILE,
  readPlan,
  runConfig,
  savePlan,
  shardRuns,
  type LambdaSetting,
  type Plan,
  type PlannedRun,
} from './plan.js';
import { noProgress, type Progress } from './progress.js';
import { runExperiment } from './runner.js';
import { Starts } from './starts.js';

export { makePlan, parseLambdas, shardRuns, type LambdaSetting, type Plan, type PlannedRun } from './plan.js';

/** How to run a comparison (the plan itself comes from the config, policies, λ settings and seeds). */
export interface SweepOptions {
  /** Runs at once on this machine, each with its own sidecar (a GPU each on a GPU machine); default 1. */
  parallel?: number;
  /** Run only part `index` (0-based) of `count` disjoint parts of the plan (e.g. a Slurm array task). */
  shard?: { index: number; count: number };
  progress?: Progress;
  logger?: Logger;
  /** Stops every running run after its current step (each writes a checkpoint); the comparison can be resumed. */
  signal?: AbortSignal;
  /** Called as each run finishes: its name, and how many of this invocation's runs are done. */
  onRun?: (name: string, done: number, total: number) => void;
  /** Called when a run fails on its own (recorded in its folder; the comparison goes on). */
  onFailed?: (name: string, reason: string) => void;
}

export interface CompareOptions extends SweepOptions {
  policies: PolicyName[];
  /** Add the dose-matched controls (random-gate, joint-scaled), each run at its gradprom run's measured gate-open rate. */
  controls?: boolean;
  /** λ values (applied with `policy.lambda_mode`) or λ settings with their own mode. */
  lambdas: Array<number | LambdaSetting>;
  /** Training seeds: config.seed, config.seed + 1, ... */
  seeds: number;
  /** The comparison folder; default `<output.dir>/<output.name or "compare">`. */
  outDir?: string;
  /** Replace an existing comparison folder (renamed aside). */
  force?: boolean;
  /** Continue the comparison in `outDir` (its plan must be this one). */
  resume?: boolean;
}

/** What a comparison produced; without `report` (a shard) only the runs were written. */
export interface CompareOutcome {
  dir: string;
  plan: Plan;
  /** Runs this invocation trained (not those it found finished). */
  trained: string[];
  report: (CompareResult & { summaries: RunSummary[] }) | null;
}

/** The plan's λ settings from numbers (with the config's mode) or settings. */
function settings(config: Config, lambdas: CompareOptions['lambdas']): LambdaSetting[] {
  const list = lambdas.length ? lambdas : [config.policy.lambda];
  return list.map((l) => (typeof l === 'number' ? { lambda: l, mode: config.policy.lambda_mode } : l));
}

/** The runs of a comparison: policies × λ × seeds; ip-only (no VR term) once per seed. */
export function comparePlan(config: Config, opts: Pick<CompareOptions, 'policies' | 'lambdas' | 'seeds' | 'controls'>): PlannedRun[] {
  return makePlan(config, comparePolicies(opts), settings(config, opts.lambdas), opts.seeds).runs;
}

/** The dose-matched controls `--controls` adds. */
export const CONTROLS: readonly PolicyName[] = ['random-gate', 'joint-scaled'];

/** True for a policy whose p (`policy.open_rate`) comes from gradprom's run of the same seed and λ. */
function isControl(policy: PolicyName): boolean {
  return registry[policy].usesOpenRate;
}

/** The plan's policies: those asked for, plus the controls with `controls`; a control needs gradprom beside it. */
export function comparePolicies(opts: Pick<CompareOptions, 'policies' | 'controls'>): PolicyName[] {
  const list = [...opts.policies, ...(opts.controls ? CONTROLS.filter((p) => !opts.policies.includes(p)) : [])];
  const orphan = list.filter(isControl);
  if (orphan.length && !list.includes('gradprom')) {
    throw new GradpromError(
      'CONFIG',
      `${orphan.join(', ')} take their open rate from gradprom's run of the same seed and λ: add gradprom to --policies`,
    );
  }
  return list;
}

/** Start a comparison (or, with `resume` or a shard, continue the one in the folder), run its runs and report. */
export async function runCompare(config: Config, opts: CompareOptions): Promise<CompareOutcome> {
  const dir = opts.outDir ?? join(config.output.dir, config.output.name ?? 'compare');
  const plan = makePlan(config, comparePolicies(opts), settings(config, opts.lambdas), opts.seeds);
  if (opts.resume || opts.shard) {
    // A shard joins (or starts) the shared folder: whichever shard comes first writes the plan, the others check it.
    if (!opts.resume) mkdirSync(join(dir, 'runs'), { recursive: true });
    const saved = opts.resume ? readPlan(dir) : savePlan(dir, plan, config);
    const diff = planDifference(saved, plan, await folderConfig(dir).catch(() => null), config);
    if (diff) {
      throw new GradpromError(
        'CONFIG',
        `${join(dir, PLAN_FILE)} plans another comparison (${diff}); resume it as it is with gradprom compare --resume ${dir}`,
      );
    }
  } else {
    prepareFolder(dir, Boolean(opts.force));
    savePlan(dir, plan, config);
  }
  return sweep(dir, plan, config, opts);
}

/** Continue the comparison in `dir` with its saved plan and config. */
export async function resumeCompare(dir: string, opts: SweepOptions = {}): Promise<CompareOutcome> {
  const plan = readPlan(dir);
  return sweep(dir, plan, await folderConfig(dir), opts);
}

/** Write compare.md and the rest from the runs of `dir` that have finished, listing the missing ones. */
export async function reportCompare(dir: string): Promise<CompareResult & { summaries: RunSummary[]; dir: string }> {
  const plan = readPlan(dir);
  const { summaries, perImage, missing, failed } = await finishedRuns(dir, plan.runs);
  if (summaries.length === 0) {
    const why = failed.length ? ` (${failed.length} failed: ${failed.map((f) => `${f.name}: ${f.reason}`).join('; ')})` : '';
    throw new GradpromError('RUN', `${dir}: none of the ${plan.runs.length} planned runs has finished yet${why}`);
  }
  const result = await writeCompareReport(dir, summaries, { perImage, missing, failed, ...reading((await folderConfig(dir)).compare) });
  return { ...result, summaries, dir };
}

/** How the config says to read a comparison: primary endpoints and the differences worth detecting, as the report names them. */
export function reading(c: Config['compare']): {
  primary: PairMetric[];
  primaryPairs: 'all' | 'gradprom';
  differences: StatedDifferences;
} {
  const d = c.differences;
  return {
    primary: c.primary.map((e) => ENDPOINTS[e]),
    primaryPairs: c.primary_pairs,
    differences: { psnr: d.psnr, ssim: d.ssim, fixed: d.fixed_vr, cotrained: d.cotrained_vr },
  };
}

/** The base config saved with the plan, checked by the schema. */
async function folderConfig(dir: string): Promise<Config> {
  const file = join(dir, PLAN_CONFIG_FILE);
  const r = await loadConfig(file);
  if (r.ok) return r.config;
  throw new GradpromError(
    'CONFIG',
    `cannot resume: ${r.issues.map((i) => (i.path ? `${file}: ${i.path}: ${i.message}` : i.message)).join('; ')}`,
  );
}

/** A fresh comparison folder: refuses one that holds files, unless forced (then it is renamed aside). */
function prepareFolder(dir: string, force: boolean): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    if (!force) {
      const hint = existsSync(join(dir, PLAN_FILE)) ? `continue it with --resume ${dir}` : 'choose another --out';
      throw new GradpromError('RUN', `comparison folder ${dir} already holds files; ${hint}, or replace it with --force`);
    }
    renameSync(dir, `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  }
  mkdirSync(join(dir, 'runs'), { recursive: true });
}

/** A promise with its resolve function. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Sidecar options for worker `w` of `n`: threads split on the CPU cores; the GPUs of the machine in turn. */
function workerOptions(config: Config, w: number, n: number, gpus: number, logger?: Logger) {
  const budget = Number(process.env.OMP_NUM_THREADS) || availableParallelism();
  const env = n > 1 ? { OMP_NUM_THREADS: String(Math.max(1, Math.floor(budget / n))) } : undefined;
  const device = gpus > 0 && (config.device === 'auto' || config.device === 'cuda') ? `cuda:${w % gpus}` : config.device;
  return {
    device,
    ...(n === 1 ? { distributed: distributedOptions(config.distributed) } : {}),
    ...(env ? { env } : {}),
    ...(logger ? { logger } : {}),
  };
}

/** Run the plan's (shard's) unfinished runs with `parallel` workers, then report unless this is a shard. */
async function sweep(dir: string, plan: Plan, config: Config, opts: SweepOptions): Promise<CompareOutcome> {
  const n = opts.parallel ?? 1;
  if (n > 1 && config.distributed.nproc > 1) {
    throw new GradpromError(
      'CONFIG',
      `--parallel ${n} with distributed.nproc = ${config.distributed.nproc}: run either several runs at once or one run on several ranks`,
    );
  }
  mkdirSync(join(dir, 'runs'), { recursive: true });
  const open = shardRuns(plan, opts.shard).filter((r) => !['finished', 'failed'].includes(runState(join(dir, 'runs', r.name))));
  // The controls come last: each waits for its gradprom run, whose measured gate-open rate is its p.
  const todo = [...open.filter((r) => !isControl(r.policy)), ...open.filter((r) => isControl(r.policy))];
  const settled = new Map(todo.map((r) => [r.name, deferred()]));
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) stop.abort();
  const starts = new Starts(dir);
  const trained: string[] = [];
  const failures: unknown[] = [];
  let next = 0;
  let gpus = 0;
  // Worker 0 starts first: its sidecar says how many GPUs the machine has before the others pick theirs.
  let firstUp = () => {};
  const firstReady = new Promise<void>((resolve) => (firstUp = resolve));
  /** A control's p: its gradprom run's measured gate-open rate (waiting for that run when this sweep trains it). */
  const openRateFor = async (run: PlannedRun): Promise<number | null> => {
    const g = plan.runs.find(
      (r) => r.policy === 'gradprom' && r.seed === run.seed && r.lambda === run.lambda && r.lambdaMode === run.lambdaMode,
    );
    if (!g) return null;
    await settled.get(g.name)?.promise;
    return measuredOpenRate(join(dir, 'runs', g.name));
  };
  const worker = async (w: number): Promise<void> => {
    let sidecar: Sidecar | null = null;
    try {
      if (w > 0) await firstReady;
      while (!stop.signal.aborted && next < todo.length) {
        if (!sidecar) {
          sidecar = await Sidecar.start(workerOptions(config, w, n, gpus, opts.logger));
          if (w === 0) gpus = sidecar.info.devices.filter((d) => d.startsWith('cuda')).length;
          firstUp();
          // Another worker may have taken the last run while this sidecar started.
          if (next >= todo.length) break;
        }
        const index = next++;
        const run = todo[index]!;
        const runDir = join(dir, 'runs', run.name);
        try {
          let cfg = runConfig(config, run);
          if (isControl(run.policy)) {
            const p = await openRateFor(run);
            if (stop.signal.aborted) break;
            // Its gradprom run failed, or belongs to a shard that has not finished it: nothing to match (the run stays missing).
            if (p === null) continue;
            cfg = { ...cfg, policy: { ...cfg.policy, open_rate: p } };
          }
          opts.progress?.phase?.(`compare: run ${index + 1} of ${todo.length}: ${run.name}`);
          const state = runState(runDir);
          await runExperiment(cfg, {
            runDir,
            sidecar,
            ...(state === 'resumable'
              ? { resume: true }
              : { force: state === 'empty', startFrom: await starts.get(run.seed, cfg, sidecar) }),
            progress: n === 1 ? (opts.progress ?? noProgress) : noProgress,
            signal: stop.signal,
            ...(opts.logger ? { logger: opts.logger } : {}),
          });
          trained.push(run.name);
          opts.onRun?.(run.name, trained.length, todo.length);
        } catch (e) {
          // A run that fails on its own (it diverged past train.max_skips) is a result: recorded, and the comparison goes on.
          if (!isGradpromError(e, 'RUN')) throw e;
          recordFailure(runDir, run, e.message);
          opts.onFailed?.(run.name, e.message);
        } finally {
          settled.get(run.name)?.resolve();
        }
      }
    } catch (e) {
      failures.push(e);
      stop.abort(); // the other workers checkpoint and stop: the comparison stays resumable
    } finally {
      if (w === 0) firstUp(); // also when it failed or had nothing to do: nobody waits forever
      // A control waiting on a run this worker will not finish must not wait forever either.
      if (stop.signal.aborted) for (const d of settled.values()) d.resolve();
      await sidecar?.stop();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(n, todo.length) }, (_, w) => worker(w)));
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  const failure = failures.find((e) => !isGradpromError(e, 'INTERRUPTED')) ?? failures[0];
  if (failure !== undefined) {
    if (!isGradpromError(failure, 'INTERRUPTED')) throw failure;
    throw new GradpromError(
      'INTERRUPTED',
      `interrupted: finished runs are kept and interrupted ones have checkpoints; continue with gradprom compare --resume ${dir}`,
    );
  }
  if (opts.shard) return { dir, plan, trained, report: null };
  return { dir, plan, trained, report: await reportCompare(dir) };
}
