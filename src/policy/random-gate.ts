/**
 * `random-gate`: a dose-matched control for gradprom; the gate opens at random, as often as gradprom's did, whatever the cosine.
 *
 * Rule: θ.grad = g_IP + λ_eff · g_VR if u(seed, step, unit) < p, else g_IP  (u uniform in [0, 1), see coin.ts; p = policy.open_rate).
 */
import { uniformAt } from './coin.js';
import { weighBlocks } from './gram.js';
import { GradpromError } from '../errors.js';
import type { PolicyOptions, PolicySpec, StepGrads } from './types.js';

/** p from the options, or a CONFIG error naming `policy.open_rate` and the policy that needs it. */
export function openRateOf(opts: PolicyOptions, policy: string): number {
  const p = opts.openRate;
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
    throw new GradpromError('CONFIG', `policy.open_rate: policy "${policy}" needs a number in [0, 1], got ${p ?? 'nothing'}`);
  }
  return p;
}

/** Builds the random gate: one draw per step (global) or per block and step (layer); open it adds exactly what gradprom's open gate adds. */
export function randomGate(opts: PolicyOptions): PolicySpec {
  const p = openRateOf(opts, 'random-gate');
  return {
    name: 'random-gate',
    input: 'gram',
    granularity: opts.granularity,
    decide: ({ gram, context }: StepGrads) => {
      if (!context) throw new GradpromError('CONFIG', 'random-gate: needs the step and the run seed (StepGrads.context)');
      return weighBlocks(gram, opts, (u, unit) =>
        uniformAt(context, unit) < p ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false },
      );
    },
  };
}
