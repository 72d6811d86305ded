/**
 * Types shared by every merge policy: the parameter layout, the per-block Gram, and the decision.
 *
 * A policy sees IP-parameter space as a list of blocks (one per parameter
 * tensor). Per step it gets the per-block Gram of the two gradients and, only
 * when it declares `input: "vectors"`, the flattened gradients themselves.
 */

/** One parameter tensor of the IP model inside the flattened gradient vector. */
export interface Block {
  readonly name: string;
  readonly shape: readonly number[];
  /** Number of elements (product of shape). */
  readonly numel: number;
  /** Start index of this block in the flat vector. */
  readonly offset: number;
}

/** The IP parameter layout: blocks in flat-vector order. */
export type Layout = readonly Block[];

/** Per-block Gram of g_IP and g_VR: ‖g_IP_b‖², ‖g_VR_b‖², g_IP_b·g_VR_b (float64, one entry per block). */
export interface Gram {
  readonly ipIp: Float64Array;
  readonly vrVr: Float64Array;
  readonly ipVr: Float64Array;
}

/** Where a step sits in its run: what a policy that draws its own randomness keys its draws on (so a resumed run draws the same). */
export interface StepContext {
  /** Steps already taken (0 for the first); a skipped step keeps its index. */
  readonly step: number;
  /** The run's `seed`. */
  readonly seed: number;
}

/** What a policy is given per step; `gIp`/`gVr` are present only for `input: "vectors"` policies (or via decideFromVectors). */
export interface StepGrads {
  readonly layout: Layout;
  readonly gram: Gram;
  /** The step's place in the run; the trainer always passes it, policies that draw at random need it. */
  readonly context?: StepContext;
  /**
   * The flat vectors, as views valid for this step only: once the next step's vectors arrive they are detached (read as
   * empty; `decide` throws STALE_VIEW for them). A policy that keeps a vector across steps copies it (`Float32Array.from`).
   */
  readonly gIp?: Float32Array;
  readonly gVr?: Float32Array;
}

/** Per-step diagnostics; every number is finite except the norms of a skipped step, which show the fault. */
export interface Telemetry {
  /** Global cosine of g_IP and g_VR (0 when either is zero or the step is skipped). */
  cos: number;
  /** Whether the VR term was let in, for global policies; null for per-layer policies. */
  gate: boolean | null;
  /** Fraction of decisions (blocks, or the one global decision) that let the VR term in. */
  gateRate: number;
  /** Global ‖g_IP‖. */
  ipNorm: number;
  /** Global ‖g_VR‖. */
  vrNorm: number;
  /** λ applied to g_VR (for per-layer normalized λ: the value from global norms). */
  lambdaEff: number;
  /** True when the input was not finite: the trainer must skip this step. */
  skipped: boolean;
  reason?: string;
}

/** Per-block weights: the sidecar forms θ.grad_b = ip[b]·g_IP_b + vr[b]·g_VR_b. */
export interface WeightsDecision {
  readonly kind: 'weights';
  readonly ip: Float64Array;
  readonly vr: Float64Array;
  readonly telemetry: Telemetry;
}

/** A merged update vector, for policies that need more than the Gram. */
export interface VectorDecision {
  readonly kind: 'vector';
  readonly merged: Float32Array;
  readonly telemetry: Telemetry;
}

export type Decision = WeightsDecision | VectorDecision;

export type PolicyInput = 'gram' | 'vectors';
export type Granularity = 'global' | 'layer';
export type LambdaMode = 'plain' | 'normalized';

/** What a policy author writes: the fields the trainer reads, and the rule. */
export interface PolicySpec {
  readonly name: string;
  readonly input: PolicyInput;
  readonly granularity: Granularity;
  /** Whether the rule can let g_VR into IP's update, so that λ means something (default true; false for ip-only). */
  readonly usesVr?: boolean;
  /** The rule; called only with a finite Gram (and finite vectors when input is "vectors"). */
  decide(step: StepGrads): Decision;
}

/** A ready policy: the spec's rule wrapped with input checks, plus a vectors-mode entry point. */
export interface Policy extends PolicySpec {
  readonly usesVr: boolean;
  /** Computes the Gram from flat vectors in one pass per block, then decides; a stale view (an earlier step's) throws STALE_VIEW. */
  decideFromVectors(layout: Layout, gIp: Float32Array, gVr: Float32Array, context?: StepContext): Decision;
}

/** Options shared by the built-in policies (the `policy` section of the config, in camelCase). */
export interface PolicyOptions {
  /** Weight of the VR term (dimensionless; plain λ ≈ 0.003 because ‖g_VR‖ ≫ ‖g_IP‖). */
  readonly lambda: number;
  readonly lambdaMode: LambdaMode;
  /** Gate threshold τ on the cosine (strict: open iff cos > τ). */
  readonly threshold: number;
  readonly granularity: Granularity;
  /** p, the probability a dose-matched control lets g_VR in (random-gate, joint-scaled); null for the others. */
  readonly openRate?: number | null;
}

/** Added to ‖a‖‖b‖ in the cosine's denominator. */
export const COS_EPS = 1e-12;
