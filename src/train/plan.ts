/**
 * The plan of a comparison: which runs (policies × λ settings × seeds) of which configuration.
 *
 * Written as plan.json (with the base config as config.json) when a comparison starts, so that an
 * interrupted comparison can continue (`--resume`), shards on several machines can share one folder
 * (`--shard`), and a resume with another plan is refused, naming the difference.
 */
import { createHash } from 'node:crypto';
import { existsSync, linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config/index.js';
import { GradpromError } from '../errors.js';
import { makePolicy, policies as registry, POLICY_NAMES, type LambdaMode, type PolicyName } from '../policy/index.js';
import { defaultRunName } from './runner.js';

export const PLAN_FILE = 'plan.json';
export const PLAN_CONFIG_FILE = 'config.json';

/** One λ and how it is applied (plain, or normalized by ‖g_IP‖/‖g_VR‖). */
export interface LambdaSetting {
  lambda: number;
  mode: LambdaMode;
}

/** One run of the plan. */
export interface PlannedRun {
  name: string;
  policy: PolicyName;
  lambda: number;
  lambdaMode: LambdaMode;
  seed: number;
}

const settingSchema = z.object({ lambda: z.number().nonnegative(), mode: z.enum(['plain', 'normalized']) }).strict();
const planSchema = z
  .object({
    format: z.literal('gradprom-compare-plan'),
    version: z.literal(1),
    policies: z.array(z.enum(POLICY_NAMES)).min(1),
    lambdas: z.array(settingSchema).min(1),
    seeds: z.array(z.number().int()).min(1),
    configHash: z.string(),
    runs: z.array(
      z
        .object({
          name: z.string(),
          policy: z.enum(POLICY_NAMES),
          lambda: z.number(),
          lambdaMode: z.enum(['plain', 'normalized']),
          seed: z.number().int(),
        })
        .strict(),
    ),
  })
  .strict();

export type Plan = z.infer<typeof planSchema>;

/**
 * Parse `--lambdas`: comma-separated non-negative numbers, each optionally suffixed `n` (normalized) or `p` (plain);
 * a bare number takes `defaultMode`. Returns the settings or a message naming the bad entry.
 */
export function parseLambdas(text: string, defaultMode: LambdaMode): LambdaSetting[] | string {
  const out: LambdaSetting[] = [];
  for (const raw of text.split(',')) {
    const m = /^\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*([np]?)\s*$/i.exec(raw);
    const lambda = m ? Number(m[1]) : NaN;
    if (!m || !Number.isFinite(lambda)) return `"${raw.trim()}" is not a non-negative number (optionally suffixed n: normalized, p: plain)`;
    out.push({ lambda, mode: m[2] === 'n' || m[2] === 'N' ? 'normalized' : m[2] ? 'plain' : defaultMode });
  }
  return out;
}

/** The config of one planned run; with `compare.data_seed: per-seed` the data seed moves with the training seed. */
export function runConfig(config: Config, run: Pick<PlannedRun, 'policy' | 'lambda' | 'lambdaMode' | 'seed'>): Config {
  const data =
    config.compare.data_seed === 'per-seed' ? { ...config.data, seed: config.data.seed + (run.seed - config.seed) } : config.data;
  return {
    ...config,
    seed: run.seed,
    data,
    policy: { ...config.policy, name: run.policy, lambda: run.lambda, lambda_mode: run.lambdaMode },
  };
}

/** The part of a config that decides results: without output, distributed, how comparisons are read, and what the plan sets per run. */
export function experimentPart(config: Config): Record<string, unknown> {
  const { output: _o, distributed: _d, compare, seed: _s, ...rest } = config;
  const { name: _n, lambda: _l, lambda_mode: _m, ...policy } = config.policy;
  // Varying the data seed changes every run's data; the default adds nothing, so older plans keep their hash.
  return { ...rest, policy, ...(compare.data_seed === 'fixed' ? {} : { dataSeed: compare.data_seed }) };
}

/** JSON with object keys sorted at every level (a stable text to hash and compare). */
function stable(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, stable((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** sha256 of the experiment part of a config. */
export function configHash(config: Config): string {
  return createHash('sha256')
    .update(JSON.stringify(stable(experimentPart(config))))
    .digest('hex');
}

/** The plan: for each seed, each policy at each λ setting (a policy that never uses g_VR, such as ip-only, once per seed). */
export function makePlan(config: Config, policies: readonly PolicyName[], lambdas: readonly LambdaSetting[], seeds: number): Plan {
  const seedList = Array.from({ length: seeds }, (_, i) => config.seed + i);
  const runs: PlannedRun[] = [];
  for (const seed of seedList) {
    for (const policy of policies) {
      // A control's p is set per run later (from gradprom's run); any p builds it here to read its declaration and name.
      const probe = { ...config, policy: { ...config.policy, open_rate: registry[policy].usesOpenRate ? 1 : null } };
      const { usesVr } = makePolicy({ ...probe.policy, name: policy });
      for (const l of usesVr ? lambdas : lambdas.slice(0, 1)) {
        const run = { policy, lambda: l.lambda, lambdaMode: l.mode, seed };
        const name = defaultRunName(runConfig(probe, run));
        // A control's p is measured later, so its name carries none (not the placeholder's "-p1").
        runs.push({ name: registry[policy].usesOpenRate ? name.replace(/-p1-s(\d+)$/, '-s$1') : name, ...run });
      }
    }
  }
  const names = new Set(runs.map((r) => r.name));
  if (names.size !== runs.length) throw new GradpromError('CONFIG', 'the plan names two runs alike: list each λ setting once');
  return {
    format: 'gradprom-compare-plan',
    version: 1,
    policies: [...policies],
    lambdas: [...lambdas],
    seeds: seedList,
    configHash: configHash(config),
    runs,
  };
}

/** The runs of shard `index` of `count`: every count-th run of the plan, starting at `index` (deterministic, disjoint). */
export function shardRuns(plan: Plan, shard: { index: number; count: number } | undefined): PlannedRun[] {
  return shard ? plan.runs.filter((_, i) => i % shard.count === shard.index) : plan.runs;
}

/** Dotted paths where two JSON values differ (at most `max`). */
function differences(a: unknown, b: unknown, path = '', out: string[] = [], max = 6): string[] {
  if (out.length >= max) return out;
  const obj = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (obj(a) && obj(b)) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort())
      differences(ra[k], rb[k], path ? `${path}.${k}` : k, out, max);
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${path}: ${JSON.stringify(a)} there, ${JSON.stringify(b)} now`);
  return out;
}

/** What differs between the saved plan (and its config) and the wanted one, or null when they are the same. */
export function planDifference(saved: Plan, wanted: Plan, savedConfig: Config | null, wantedConfig: Config): string | null {
  const out: string[] = [];
  const show = (xs: unknown[]) =>
    xs
      .map((x) =>
        typeof x === 'object' ? `${(x as LambdaSetting).lambda}${(x as LambdaSetting).mode === 'normalized' ? 'n' : ''}` : String(x),
      )
      .join(',');
  if (JSON.stringify(saved.policies) !== JSON.stringify(wanted.policies))
    out.push(`policies: ${show(saved.policies)} there, ${show(wanted.policies)} now`);
  if (JSON.stringify(saved.lambdas) !== JSON.stringify(wanted.lambdas))
    out.push(`lambdas: ${show(saved.lambdas)} there, ${show(wanted.lambdas)} now`);
  if (JSON.stringify(saved.seeds) !== JSON.stringify(wanted.seeds))
    out.push(`seeds: ${show(saved.seeds)} there, ${show(wanted.seeds)} now`);
  if (saved.configHash !== wanted.configHash) {
    const d = savedConfig ? differences(experimentPart(savedConfig), experimentPart(wantedConfig)) : [];
    out.push(
      d.length ? `config ${d.join('; ')}` : `config hash ${saved.configHash.slice(0, 12)} there, ${wanted.configHash.slice(0, 12)} now`,
    );
  }
  return out.length ? out.join('; ') : null;
}

/** Read and check a comparison folder's plan.json. */
export function readPlan(dir: string): Plan {
  const file = join(dir, PLAN_FILE);
  if (!existsSync(file))
    throw new GradpromError('RUN', `${dir} holds no comparison (no ${PLAN_FILE}); start one with gradprom compare --config ...`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new GradpromError('RUN', `${file}: invalid JSON (${(e as Error).message})`);
  }
  const r = planSchema.safeParse(parsed);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new GradpromError('RUN', `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}

/**
 * Write `text` to `file` unless it exists, atomically and first-writer-wins (a hard link fails if the name is
 * taken, also on shared filesystems); returns true when this call wrote it.
 */
export function createOnce(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, text);
  try {
    linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

/** Write the plan and its config into `dir` unless there already; returns the plan in force there. */
export function savePlan(dir: string, plan: Plan, config: Config): Plan {
  createOnce(join(dir, PLAN_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
  createOnce(join(dir, PLAN_FILE), `${JSON.stringify(plan, null, 2)}\n`);
  return readPlan(dir);
}
