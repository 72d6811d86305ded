/**
 * Merge policies: the registry of built-ins, `definePolicy` for user-written ones, and `makePolicy` from config.
 *
 * A user policy in a script (a stricter gate, cos > 0.5, from the Gram only):
 *
 * ```ts
 * import { definePolicy, weighBlocks } from "gradprom";
 *
 * export const strictGate = definePolicy({
 *   name: "strict-gate",
 *   input: "gram",
 *   granularity: "global",
 *   decide: ({ gram }) =>
 *     weighBlocks(gram, { lambda: 0.003, lambdaMode: "plain", granularity: "global" }, (u) =>
 *       u.cos > 0.5 ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false },
 *     ),
 * });
 * ```
 */
import { assertLive } from '../protocol/views.js';
import { gradprom } from './gradprom.js';
import { gramFromVectors, gramProblem, layoutProblem, skippedDecision, vectorProblem } from './gram.js';
import { ipOnly } from './ip-only.js';
import { joint } from './joint.js';
import { jointScaled } from './joint-scaled.js';
import { pcgrad } from './pcgrad.js';
import { randomGate } from './random-gate.js';
import { soft } from './soft.js';
import type {
  Decision,
  Granularity,
  LambdaMode,
  Layout,
  Policy,
  PolicyInput,
  PolicyOptions,
  PolicySpec,
  StepContext,
  StepGrads,
} from './types.js';

export * from './types.js';
export {
  applyDecision,
  blockCosines,
  cosine,
  effectiveLambda,
  globalCosine,
  gramFromVectors,
  gramTotals,
  weighBlocks,
  type GramTotals,
  type Unit,
  type UnitWeights,
  type WeighOptions,
} from './gram.js';

/** Describes a decision that does not fit the layout or is not finite, or null. */
function decisionProblem(d: Decision, layout: Layout): string | null {
  if (d.kind === 'weights') {
    if (d.ip.length !== layout.length || d.vr.length !== layout.length) {
      return `policy returned ${d.ip.length}/${d.vr.length} weights for ${layout.length} blocks`;
    }
    for (let b = 0; b < layout.length; b++) {
      if (!Number.isFinite(d.ip[b]!) || !Number.isFinite(d.vr[b]!)) {
        return `policy returned non-finite weights for block ${b} ("${layout[b]!.name}")`;
      }
    }
    return null;
  }
  const last = layout[layout.length - 1];
  const length = last ? last.offset + last.numel : 0;
  if (d.merged.length !== length) return `policy returned a vector of length ${d.merged.length}, expected ${length}`;
  return vectorProblem('merged', d.merged);
}

/** Wraps a policy rule with the input checks every policy needs: a non-finite Gram or vectors give a skipped step. */
export function definePolicy(spec: PolicySpec): Policy {
  const decide = (step: StepGrads): Decision => {
    const { layout, gram } = step;
    const skip = (reason: string): Decision => skippedDecision(gram, layout.length, spec.granularity, `${spec.name}: ${reason}`);
    const problem = gramProblem(gram, layout);
    if (problem) return skip(problem);
    if (step.gIp) assertLive(step.gIp, 'gIp');
    if (step.gVr) assertLive(step.gVr, 'gVr');
    if (spec.input === 'vectors') {
      if (!step.gIp || !step.gVr) return skip('this policy needs the gradient vectors (train.transport: vectors)');
      const vp =
        layoutProblem(layout, step.gIp.length) ??
        layoutProblem(layout, step.gVr.length) ??
        vectorProblem('gIp', step.gIp) ??
        vectorProblem('gVr', step.gVr);
      if (vp) return skip(vp);
    }
    const decision = spec.decide(step);
    const out = decisionProblem(decision, layout);
    return out ? skip(out) : decision;
  };
  const decideFromVectors = (layout: Layout, gIp: Float32Array, gVr: Float32Array, context?: StepContext): Decision => {
    assertLive(gIp, 'gIp'); // a view of an earlier step's vectors is an error, not a silently empty vector
    assertLive(gVr, 'gVr');
    const lp = layoutProblem(layout, gIp.length) ?? layoutProblem(layout, gVr.length);
    // A non-finite element makes its block's Gram non-finite, which decide() reports.
    const gram = gramFromVectors(layout, gIp, gVr);
    if (lp) return skippedDecision(gram, layout.length, spec.granularity, `${spec.name}: ${lp}`);
    return decide({ layout, gram, gIp, gVr, ...(context ? { context } : {}) });
  };
  return { name: spec.name, input: spec.input, granularity: spec.granularity, usesVr: spec.usesVr ?? true, decide, decideFromVectors };
}

/** Computes the Gram of flat vectors and lets the policy decide (the vectors-mode path). */
export function decideFromVectors(policy: Policy, layout: Layout, gIp: Float32Array, gVr: Float32Array, context?: StepContext): Decision {
  return policy.decideFromVectors(layout, gIp, gVr, context);
}

/** A registry entry: what the trainer and the config checks need to know before building the policy. */
export interface PolicyEntry {
  readonly input: PolicyInput;
  readonly granularities: readonly Granularity[];
  /** Whether the policy reads `policy.open_rate` (required then, refused otherwise). */
  readonly usesOpenRate: boolean;
  create(opts: PolicyOptions): Policy;
}

/** The built-in policies, by config name. */
export const policies = {
  'ip-only': { input: 'gram', granularities: ['global', 'layer'], usesOpenRate: false, create: () => definePolicy(ipOnly()) },
  joint: { input: 'gram', granularities: ['global', 'layer'], usesOpenRate: false, create: (o) => definePolicy(joint(o)) },
  gradprom: { input: 'gram', granularities: ['global', 'layer'], usesOpenRate: false, create: (o) => definePolicy(gradprom(o)) },
  soft: { input: 'gram', granularities: ['global', 'layer'], usesOpenRate: false, create: (o) => definePolicy(soft(o)) },
  pcgrad: { input: 'gram', granularities: ['global', 'layer'], usesOpenRate: false, create: (o) => definePolicy(pcgrad(o)) },
  'random-gate': { input: 'gram', granularities: ['global', 'layer'], usesOpenRate: true, create: (o) => definePolicy(randomGate(o)) },
  'joint-scaled': { input: 'gram', granularities: ['global', 'layer'], usesOpenRate: true, create: (o) => definePolicy(jointScaled(o)) },
} as const satisfies Record<string, PolicyEntry>;

export type PolicyName = keyof typeof policies;

/** Names of the built-in policies, in registry order. */
export const POLICY_NAMES = Object.keys(policies) as [PolicyName, ...PolicyName[]];

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

/** Builds a registered policy from the config's `policy` section. */
export function makePolicy(cfg: PolicyConfig): Policy {
  return policies[cfg.name].create({
    lambda: cfg.lambda,
    lambdaMode: cfg.lambda_mode,
    threshold: cfg.threshold,
    granularity: cfg.granularity,
    openRate: cfg.open_rate ?? null,
  });
}

export { gradprom, ipOnly, joint, jointScaled, pcgrad, randomGate, soft };
export { uniformAt } from './coin.js';
