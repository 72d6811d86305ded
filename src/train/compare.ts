/** `compare`: one configuration under several policies, λ values and seeds, with a shared start per seed. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { makePolicy, type PolicyName } from '../policy/index.js';
import { writeCompareReport, type CompareResult, type RunSummary } from '../report/index.js';
import { distributedOptions } from '../sidecar/ranks.js';
import { Sidecar } from '../sidecar/sidecar.js';
import type { Logger } from '../sidecar/logger.js';
import type { Progress } from './progress.js';
import { defaultRunName, runExperiment } from './runner.js';
import { prepareRunFolder } from './run-folder.js';

export interface CompareOptions {
  policies: PolicyName[];
  lambdas: number[];
  /** Training seeds: config.seed, config.seed + 1, ... */
  seeds: number;
  /** The comparison folder; default `<output.dir>/<output.name or "compare">`. */
  outDir?: string;
  force?: boolean;
  progress?: Progress;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface CompareRun {
  policy: PolicyName;
  lambda: number;
  seed: number;
}

/** The runs of a comparison: policies × λ × seeds; a policy that never uses g_VR (ip-only) runs once per seed. */
export function comparePlan(config: Config, opts: Pick<CompareOptions, 'policies' | 'lambdas' | 'seeds'>): CompareRun[] {
  const runs: CompareRun[] = [];
  for (let s = 0; s < opts.seeds; s++) {
    for (const policy of opts.policies) {
      const usesVr = makePolicy({ ...config.policy, name: policy }).usesVr;
      const lambdas = usesVr ? opts.lambdas : [opts.lambdas[0] ?? config.policy.lambda];
      for (const lambda of lambdas) runs.push({ policy, lambda, seed: config.seed + s });
    }
  }
  return runs;
}

/** Run every configuration of the plan in one sidecar and write compare.md, compare.json and tradeoff.svg. */
export async function runCompare(config: Config, opts: CompareOptions): Promise<CompareResult & { dir: string; summaries: RunSummary[] }> {
  const dir = opts.outDir ?? join(config.output.dir, config.output.name ?? 'compare');
  prepareRunFolder(dir, opts.force ? 'force' : 'new');
  mkdirSync(join(dir, 'runs'), { recursive: true });
  const distributed = distributedOptions(config.distributed);
  const sidecar = await Sidecar.start({ device: config.device, distributed, ...(opts.logger ? { logger: opts.logger } : {}) });
  const summaries: RunSummary[] = [];
  try {
    const pretrained = new Set<number>();
    const plan = comparePlan(config, opts);
    for (const [i, run] of plan.entries()) {
      const cfg: Config = { ...config, seed: run.seed, policy: { ...config.policy, name: run.policy, lambda: run.lambda } };
      // Every policy of one seed starts from the same pretrained VR and initial IP.
      const start = join(dir, `start-seed${run.seed}.pt`);
      const first = !pretrained.has(run.seed);
      opts.progress?.phase?.(`compare: run ${i + 1} of ${plan.length}: ${defaultRunName(cfg)}`);
      const result = await runExperiment(cfg, {
        runDir: join(dir, 'runs', defaultRunName(cfg)),
        sidecar,
        ...(first ? { savePretrain: start } : { startFrom: start }),
        ...(opts.progress ? { progress: opts.progress } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      pretrained.add(run.seed);
      summaries.push(result.summary);
    }
  } finally {
    await sidecar.stop();
  }
  const result = await writeCompareReport(dir, summaries);
  return { ...result, dir, summaries };
}
