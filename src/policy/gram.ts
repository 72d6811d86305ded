/**
 * Gram helpers shared by the policies: Gram from flat vectors, cosines and λ_eff from a Gram, and applying a decision.
 *
 * Numerics: everything is float64; norms are taken as square roots before
 * being multiplied, so squared norms up to ~1e38 (or far beyond) never
 * overflow, and a zero-norm gradient is never aligned (cosine 0).
 */
import {
  COS_EPS,
  type Decision,
  type Granularity,
  type Gram,
  type LambdaMode,
  type Layout,
  type Telemetry,
  type WeightsDecision,
} from './types.js';

/** Sums of the per-block Gram entries: the Gram of the whole flattened vectors. */
export interface GramTotals {
  ipIp: number;
  vrVr: number;
  ipVr: number;
}

/** Sums the per-block Gram into the global one. */
export function gramTotals(gram: Gram): GramTotals {
  let ipIp = 0;
  let vrVr = 0;
  let ipVr = 0;
  for (let b = 0; b < gram.ipIp.length; b++) {
    ipIp += gram.ipIp[b]!;
    vrVr += gram.vrVr[b]!;
    ipVr += gram.ipVr[b]!;
  }
  return { ipIp, vrVr, ipVr };
}

/** cos = dot / (‖a‖‖b‖ + eps), clamped to [-1, 1]; 0 when either squared norm is not positive. */
export function cosine(dot: number, aa: number, bb: number): number {
  if (!(aa > 0) || !(bb > 0)) return 0;
  const na = Math.sqrt(aa);
  const nb = Math.sqrt(bb);
  const den = na * nb;
  // den overflows only for norms beyond ~1e154; divide in two steps there.
  const c = Number.isFinite(den) ? dot / (den + COS_EPS) : dot / na / nb;
  return c > 1 ? 1 : c < -1 ? -1 : c;
}

/** Per-block cosines of a Gram. */
export function blockCosines(gram: Gram): Float64Array {
  const out = new Float64Array(gram.ipIp.length);
  for (let b = 0; b < out.length; b++) out[b] = cosine(gram.ipVr[b]!, gram.ipIp[b]!, gram.vrVr[b]!);
  return out;
}

/** Global cosine from the summed Gram. */
export function globalCosine(gram: Gram): number {
  const t = gramTotals(gram);
  return cosine(t.ipVr, t.ipIp, t.vrVr);
}

/** λ_eff: λ (plain) or λ·‖g_IP‖/‖g_VR‖ (normalized; 0 when ‖g_VR‖ = 0). */
export function effectiveLambda(lambda: number, mode: LambdaMode, aa: number, bb: number): number {
  if (mode === 'plain') return lambda;
  if (!(bb > 0) || !(aa > 0)) return 0;
  return lambda * (Math.sqrt(aa) / Math.sqrt(bb));
}

/** Computes the per-block Gram from flat vectors: one fused float64 pass per block. */
export function gramFromVectors(layout: Layout, gIp: Float32Array, gVr: Float32Array): Gram {
  const n = layout.length;
  const ipIp = new Float64Array(n);
  const vrVr = new Float64Array(n);
  const ipVr = new Float64Array(n);
  for (let b = 0; b < n; b++) {
    const { offset, numel } = layout[b]!;
    let aa = 0,
      bb = 0,
      ab = 0;
    // A plain fused loop: V8 optimises it from the first call (~3 GB/s); unrolling only helped once warm.
    for (let i = offset, end = offset + numel; i < end; i++) {
      const a = gIp[i]!,
        v = gVr[i]!;
      aa += a * a;
      bb += v * v;
      ab += a * v;
    }
    ipIp[b] = aa;
    vrVr[b] = bb;
    ipVr[b] = ab;
  }
  return { ipIp, vrVr, ipVr };
}

/** Forms the merged update from a decision (float64 arithmetic, float32 result); weights [1, 0] copy g_IP exactly. */
export function applyDecision(decision: Decision, layout: Layout, gIp: Float32Array, gVr: Float32Array): Float32Array {
  if (decision.kind === 'vector') return decision.merged;
  const out = new Float32Array(gIp.length);
  for (let b = 0; b < layout.length; b++) {
    const { offset, numel } = layout[b]!;
    const wi = decision.ip[b]!;
    const wv = decision.vr[b]!;
    const end = offset + numel;
    if (wv === 0 && wi === 1) {
      out.set(gIp.subarray(offset, end), offset);
      continue;
    }
    for (let i = offset; i < end; i++) out[i] = wi * gIp[i]! + wv * gVr[i]!;
  }
  return out;
}

/** Describes the first structural problem of a layout against a vector length, or null. */
export function layoutProblem(layout: Layout, length?: number): string | null {
  let next = 0;
  for (const [b, block] of layout.entries()) {
    const product = block.shape.reduce((p, d) => p * d, 1);
    if (!Number.isInteger(block.numel) || block.numel < 0 || block.numel !== product) {
      return `block ${b} ("${block.name}"): numel ${block.numel} does not match shape [${block.shape.join(', ')}]`;
    }
    if (block.offset !== next) return `block ${b} ("${block.name}"): offset ${block.offset}, expected ${next}`;
    next += block.numel;
  }
  if (length !== undefined && length !== next) return `vector length ${length}, layout covers ${next}`;
  return null;
}

/** Describes the first non-finite (or negative squared-norm) Gram entry, or a length mismatch, or null. */
export function gramProblem(gram: Gram, layout: Layout): string | null {
  const fields = ['ipIp', 'vrVr', 'ipVr'] as const;
  for (const f of fields) {
    if (gram[f].length !== layout.length) return `gram.${f} has ${gram[f].length} entries, layout has ${layout.length} blocks`;
  }
  for (let b = 0; b < layout.length; b++) {
    for (const f of fields) {
      const v = gram[f][b]!;
      if (!Number.isFinite(v)) return `non-finite gram.${f}[${b}] (block "${layout[b]!.name}"): ${v}`;
      if (f !== 'ipVr' && v < 0) return `negative squared norm gram.${f}[${b}] (block "${layout[b]!.name}"): ${v}`;
    }
  }
  return null;
}

/** Describes the first non-finite element of a vector, or null. */
export function vectorProblem(name: string, v: Float32Array): string | null {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!)) return `non-finite ${name}[${i}]: ${v[i]}`;
  }
  return null;
}

/** The decision for a step the trainer must skip: weights [1, 0], finite telemetry apart from the norms. */
export function skippedDecision(gram: Gram, nBlocks: number, granularity: Granularity, reason: string): WeightsDecision {
  const t = gramTotals(gram);
  const telemetry: Telemetry = {
    cos: 0,
    gate: granularity === 'global' ? false : null,
    gateRate: 0,
    ipNorm: Math.sqrt(t.ipIp),
    vrNorm: Math.sqrt(t.vrVr),
    lambdaEff: 0,
    skipped: true,
    reason,
  };
  return { kind: 'weights', ip: new Float64Array(nBlocks).fill(1), vr: new Float64Array(nBlocks), telemetry };
}

/** The statistics one merge decision sees: the Gram of one block (layer) or of the whole vector (global). */
export interface Unit {
  aa: number;
  bb: number;
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
    const w = rule({ aa: t.ipIp, bb: t.vrVr, dot: t.ipVr, cos, lambdaEff }, 0);
    ip.fill(w.ip);
    vr.fill(w.vr);
    gate = w.open;
    gateRate = w.open ? 1 : 0;
  } else {
    let opens = 0;
    for (let b = 0; b < n; b++) {
      const aa = gram.ipIp[b]!,
        bb = gram.vrVr[b]!,
        dot = gram.ipVr[b]!;
      const w = rule(
        {
          aa,
          bb,
          dot,
          cos: cosine(dot, aa, bb),
          lambdaEff: effectiveLambda(opts.lambda, opts.lambdaMode, aa, bb),
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
