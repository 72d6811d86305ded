/** `definePolicy`: a rule and its metadata, stated once, become a policy kind that the config's options bind. */
import { assertLive } from '../protocol/views.js';
import { decisionProblem, gramProblem, layoutProblem, vectorProblem } from './checks.js';
import { gramFromVectors } from './gram.js';
import { openRateOf } from './open-rate.js';
import { skippedDecision } from './skip.js';
import type {
  Decision,
  Granularity,
  Layout,
  Policy,
  PolicyDefinition,
  PolicyKind,
  PolicyOptions,
  StepContext,
  StepGrads,
} from './types.js';

/** Binds a definition to options: the resolved granularity, and the rule wrapped with the checks every policy needs. */
function bind(def: PolicyDefinition, opts: PolicyOptions): Policy {
  if (def.usesOpenRate) openRateOf(opts, def.name);
  const granularity: Granularity = def.granularities.includes(opts.granularity) ? opts.granularity : def.granularities[0];
  const options: PolicyOptions = { ...opts, granularity };
  const decide = (step: StepGrads): Decision => {
    const { layout, gram } = step;
    const skip = (reason: string): Decision => skippedDecision(gram, layout.length, granularity, `${def.name}: ${reason}`);
    const problem = gramProblem(gram, layout);
    if (problem) return skip(problem);
    if (step.gIp) assertLive(step.gIp, 'gIp');
    if (step.gVr) assertLive(step.gVr, 'gVr');
    if (def.input === 'vectors') {
      if (!step.gIp || !step.gVr) return skip('this policy needs the gradient vectors (train.grad_exchange: vectors)');
      const vp =
        layoutProblem(layout, step.gIp.length) ??
        layoutProblem(layout, step.gVr.length) ??
        vectorProblem('gIp', step.gIp) ??
        vectorProblem('gVr', step.gVr);
      if (vp) return skip(vp);
    }
    const decision = def.decide(step, options);
    const out = decisionProblem(decision, layout);
    return out ? skip(out) : decision;
  };
  const decideFromVectors = (layout: Layout, gIp: Float32Array, gVr: Float32Array, context?: StepContext): Decision => {
    assertLive(gIp, 'gIp'); // a view of an earlier step's vectors is an error, not a silently empty vector
    assertLive(gVr, 'gVr');
    const lp = layoutProblem(layout, gIp.length) ?? layoutProblem(layout, gVr.length);
    // A non-finite element makes its block's Gram non-finite, which decide() reports.
    const gram = gramFromVectors(layout, gIp, gVr);
    if (lp) return skippedDecision(gram, layout.length, granularity, `${def.name}: ${lp}`);
    return decide({ layout, gram, gIp, gVr, ...(context ? { context } : {}) });
  };
  return { name: def.name, input: def.input, granularity, doc: def.doc, usesVr: def.usesVr ?? true, decide, decideFromVectors };
}

/** Defines a policy from its rule and metadata; `create(options)` (or makePolicy, or runExperiment) binds it to the config. */
export function definePolicy<const N extends string>(def: PolicyDefinition<N>): PolicyKind<N> {
  return {
    name: def.name,
    input: def.input,
    granularities: def.granularities,
    doc: def.doc,
    usesVr: def.usesVr ?? true,
    usesOpenRate: def.usesOpenRate ?? false,
    create: (opts) => bind(def, opts),
  };
}
