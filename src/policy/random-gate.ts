/**
 * `random-gate`: a dose-matched control for gradprom; the gate opens at random, as often as gradprom's did, whatever the cosine.
 *
 * Rule: θ.grad = g_IP + λ_eff · g_VR if u(seed, step, unit) < p, else g_IP  (u uniform in [0, 1), see coin.ts; p = policy.open_rate).
 */
import { uniformAt } from './coin.js';
import { definePolicy } from './define.js';
import { GradpromError } from '../errors.js';
import { openRateOf } from './open-rate.js';
import { weighBlocks } from './weigh.js';

/** One draw per step (global) or per block and step (layer); open, it adds exactly what gradprom's open gate adds. */
export const randomGate = definePolicy({
  name: 'random-gate',
  input: 'gram',
  granularities: ['global', 'layer'],
  doc: 'θ.grad = g_IP + λ_eff·g_VR if u(seed, step, unit) < p, else g_IP',
  usesOpenRate: true,
  decide: ({ gram, context }, opts) => {
    if (!context) throw new GradpromError('CONFIG', 'random-gate: needs the step and the run seed (StepGrads.context)');
    const p = openRateOf(opts, 'random-gate');
    return weighBlocks(gram, opts, (u, unit) =>
      uniformAt(context, unit) < p ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false },
    );
  },
});
