/**
 * Merge policies: the registry of built-ins (derived from their definitions), `definePolicy` for user-written ones, and
 * `makePolicy` from config.
 *
 * A user policy in a script (a stricter gate, cos > 0.5, from the Gram only); λ, its mode and the granularity come
 * from the config's `policy` section when the run binds it:
 *
 * ```ts
 * import { definePolicy, weighBlocks } from "gradprom";
 *
 * export const strictGate = definePolicy({
 *   name: "strict-gate",
 *   input: "gram",
 *   granularities: ["global", "layer"],
 *   doc: "θ.grad = g_IP + λ_eff·g_VR if cos(g_IP, g_VR) > 0.5, else g_IP",
 *   decide: ({ gram }, opts) =>
 *     weighBlocks(gram, opts, (u) => (u.cos > 0.5 ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false })),
 * });
 * // runExperiment(config, { policy: strictGate }), or strictGate.create(policyOptions(config.policy)).
 * ```
 */
import { gradprom } from './gradprom.js';
import { ipOnly } from './ip-only.js';
import { joint } from './joint.js';
import { jointScaled } from './joint-scaled.js';
import { pcgrad } from './pcgrad.js';
import { randomGate } from './random-gate.js';
import { soft } from './soft.js';
import type { Decision, Granularity, LambdaMode, Layout, Policy, PolicyKind, PolicyOptions, StepContext } from './types.js';

export * from './types.js';
export { applyDecision } from './apply.js';
export { uniformAt } from './coin.js';
export { definePolicy } from './define.js';
export { blockCosines, cosine, effectiveLambda, globalCosine, gramFromVectors, gramTotals, type GramTotals } from './gram.js';
export { weighBlocks, type Unit, type UnitWeights, type WeighOptions } from './weigh.js';

/** Computes the Gram of flat vectors and lets the policy decide (the vectors-mode path). */
export function decideFromVectors(policy: Policy, layout: Layout, gIp: Float32Array, gVr: Float32Array, context?: StepContext): Decision {
  return policy.decideFromVectors(layout, gIp, gVr, context);
}

const BUILT_INS = [ipOnly, joint, gradprom, soft, pcgrad, randomGate, jointScaled] as const;

export type PolicyName = (typeof BUILT_INS)[number]['name'];

/** The built-in policies, by config name, in registry order. */
export const policies = Object.fromEntries(BUILT_INS.map((k) => [k.name, k])) as { readonly [K in PolicyName]: PolicyKind<K> };

/** Names of the built-in policies, in registry order. */
export const POLICY_NAMES = BUILT_INS.map((k) => k.name) as [PolicyName, ...PolicyName[]];

/** The `policy` section of the experiment config (snake_case, as in the config file). */
export interface PolicyConfig {
  readonly name: PolicyName;
  readonly lambda: number;
  readonly lambda_mode: LambdaMode;
  readonly threshold: number;
  readonly granularity: Granularity;
  /** p for random-gate and joint-scaled (required there); null or absent for the others. */
  readonly open_rate?: number | null;
}

/** The config's `policy` section as the options a policy is bound to. */
export function policyOptions(cfg: PolicyConfig): PolicyOptions {
  return {
    lambda: cfg.lambda,
    lambdaMode: cfg.lambda_mode,
    threshold: cfg.threshold,
    granularity: cfg.granularity,
    openRate: cfg.open_rate ?? null,
  };
}

/** Binds a policy to the config's `policy` section: the registered one it names, or `kind` (a user-defined policy). */
export function makePolicy(cfg: PolicyConfig, kind: PolicyKind = policies[cfg.name]): Policy {
  return kind.create(policyOptions(cfg));
}

export { gradprom, ipOnly, joint, jointScaled, pcgrad, randomGate, soft };
