/** p, the open rate of the dose-matched controls, read from the options with an error that names the config field. */
import { GradpromError } from '../errors.js';
import type { PolicyOptions } from './types.js';

/** p from the options, or a CONFIG error naming `policy.open_rate` and the policy that needs it. */
export function openRateOf(opts: PolicyOptions, policy: string): number {
  const p = opts.openRate;
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
    throw new GradpromError('CONFIG', `policy.open_rate: policy "${policy}" needs a number in [0, 1], got ${p ?? 'nothing'}`);
  }
  return p;
}
