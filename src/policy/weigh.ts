/** Decisions from a per-unit rule: the rule sees one unit's Gram (the whole vector, or one block) and returns its weights. */
import { cosine, effectiveLambda, gramTotals } from './gram.js';
import type { Granularity, Gram, LambdaMode, Telemetry, WeightsDecision } from './types.js';

/** The statistics one merge decision sees: the Gram of one block (layer) or of the whole vector (global). */
export interface Unit {
  /** ‖g_IP‖² of the unit. */
  ipNormSq: number;
  /** ‖g_VR‖² of the unit. */
  vrNormSq: number;
  /** g_IP·g_VR of the unit. */
  dot: number;
  cos: number;
  lambdaEff: number;
}

/** One decision's weights, and whether the VR term was let in. */
export interface UnitWeights {
  ip: number;
  vr: number;
  open: boolean;
}

/** Options for weighBlocks. */
export interface WeighOptions {
  lambda: number;
  lambdaMode: LambdaMode;
  granularity: Granularity;
}

/**
 * Applies a per-unit rule once on the summed Gram (global) or once per block (layer), and fills the telemetry; the
 * rule's second argument is the unit's index (0 for the global decision, the block's index per layer).
 */
export function weighBlocks(gram: Gram, opts: WeighOptions, rule: (u: Unit, index: number) => UnitWeights): WeightsDecision {
  const n = gram.ipIp.length;
  const t = gramTotals(gram);
  const cos = cosine(t.ipVr, t.ipIp, t.vrVr);
  const lambdaEff = effectiveLambda(opts.lambda, opts.lambdaMode, t.ipIp, t.vrVr);
  const ip = new Float64Array(n);
  const vr = new Float64Array(n);
  let gate: boolean | null = null;
  let gateRate = 0;
  if (opts.granularity === 'global') {
    const w = rule({ ipNormSq: t.ipIp, vrNormSq: t.vrVr, dot: t.ipVr, cos, lambdaEff }, 0);
    ip.fill(w.ip);
    vr.fill(w.vr);
    gate = w.open;
    gateRate = w.open ? 1 : 0;
  } else {
    let opens = 0;
    for (let b = 0; b < n; b++) {
      const ipNormSq = gram.ipIp[b]!,
        vrNormSq = gram.vrVr[b]!,
        dot = gram.ipVr[b]!;
      const w = rule(
        {
          ipNormSq,
          vrNormSq,
          dot,
          cos: cosine(dot, ipNormSq, vrNormSq),
          lambdaEff: effectiveLambda(opts.lambda, opts.lambdaMode, ipNormSq, vrNormSq),
        },
        b,
      );
      ip[b] = w.ip;
      vr[b] = w.vr;
      if (w.open) opens++;
    }
    gateRate = n > 0 ? opens / n : 0;
  }
  const telemetry: Telemetry = {
    cos,
    gate,
    gateRate,
    ipNorm: Math.sqrt(t.ipIp),
    vrNorm: Math.sqrt(t.vrVr),
    lambdaEff,
    skipped: false,
  };
  return { kind: 'weights', ip, vr, telemetry };
}
