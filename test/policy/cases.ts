/**
 * Shared policy inputs: one pinned example, and a set of vector and Gram cases with zero, tiny and huge norms.
 */
import type { Gram, Layout, PolicyOptions, StepContext } from 'gradprom';

/** Builds a contiguous layout from block sizes. */
export function layoutOf(sizes: readonly number[]): Layout {
  let offset = 0;
  return sizes.map((numel, i) => {
    const block = { name: `block${i}`, shape: [numel], numel, offset };
    offset += numel;
    return block;
  });
}

/**
 * The pinned example: block 0 "conv.weight" agrees (cos 2/3), block 1 "conv.bias" conflicts (cos −0.316);
 * globally cos = 3.75/√(6.5·7.25) ≈ 0.546. All values are exact in float32.
 */
export const example = {
  layout: [
    { name: 'conv.weight', shape: [2, 2], numel: 4, offset: 0 },
    { name: 'conv.bias', shape: [2], numel: 2, offset: 4 },
  ] as Layout,
  gIp: new Float32Array([1, 2, 0, -1, 0.5, 0.5]),
  gVr: new Float32Array([2, 1, 1, 0, -1, 0.5]),
  gram: {
    ipIp: new Float64Array([6, 0.5]),
    vrVr: new Float64Array([6, 1.25]),
    ipVr: new Float64Array([4, -0.25]),
  } as Gram,
};

/** Options for the pinned example (λ = 0.5 keeps the pinned numbers readable; p = 0.5 is read only by the controls). */
export function opts(over: Partial<PolicyOptions> = {}): PolicyOptions {
  return { lambda: 0.5, lambdaMode: 'plain', threshold: 0, granularity: 'global', openRate: 0.5, ...over };
}

/** The step context of the i-th case of a set: each case its own step, so a random gate both opens and closes. */
export function contextAt(i: number): StepContext {
  return { seed: 3, step: i };
}

/** Deterministic pseudo-random numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

/** A unit-norm direction of length n (float64). */
function direction(n: number, seed: number): Float64Array {
  const r = rng(seed);
  const v = new Float64Array(n).map(() => r());
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

export interface VectorCase {
  label: string;
  layout: Layout;
  gIp: Float32Array;
  gVr: Float32Array;
}

const SIZES = [5, 3, 8];
const N = SIZES.reduce((a, b) => a + b, 0);

function scaled(dir: Float64Array, norm: number): Float32Array {
  return Float32Array.from(dir, (x) => x * norm);
}

/** Vector cases: norms {0, 1e-30, 1, 1e30} for each gradient × relations {aligned, opposite, random}, plus exact orthogonality and mixed-sign blocks. */
export function vectorCases(): VectorCase[] {
  const layout = layoutOf(SIZES);
  const norms = [0, 1e-30, 1, 1e30];
  const base = direction(N, 1);
  const relations: Array<[string, Float64Array]> = [
    ['aligned', base.map((x, i) => x + 0.3 * direction(N, 2)[i]!)],
    ['opposite', base.map((x, i) => -x + 0.3 * direction(N, 3)[i]!)],
    ['random', direction(N, 4)],
  ];
  const cases: VectorCase[] = [];
  for (const ni of norms) {
    for (const nv of norms) {
      for (const [rel, other] of relations) {
        cases.push({ label: `|ip|=${ni} |vr|=${nv} ${rel}`, layout, gIp: scaled(base, ni), gVr: scaled(other, nv) });
      }
    }
  }
  const e = (i: number) => Float32Array.from({ length: N }, (_, j) => (j === i ? 1 : 0));
  cases.push({ label: 'exactly orthogonal', layout, gIp: e(0), gVr: e(1) });
  // Block 0 agrees, block 1 conflicts, block 2 is zero in g_VR.
  const gIp = Float32Array.from({ length: N }, (_, j) => (j < 8 ? 1 : 0.5));
  const gVr = Float32Array.from({ length: N }, (_, j) => (j < 5 ? 2 : j < 8 ? -3 : 0));
  cases.push({ label: 'mixed blocks', layout, gIp, gVr });
  return cases;
}

/** Gram cases straight from the wire: squared norms from 0 to 1e38 (and a sub-1e-300 one), dots from cos ∈ {1, 0.3, 0, −0.3, −1}. */
export function gramCases(): Array<{ label: string; layout: Layout; gram: Gram }> {
  const sq = [0, 1e-300, 1e-60, 1e-38, 1, 1e38];
  const coss = [1, 0.3, 0, -0.3, -1];
  const layout = layoutOf([1, 1]);
  const out: Array<{ label: string; layout: Layout; gram: Gram }> = [];
  for (const a of sq) {
    for (const b of sq) {
      for (const c of coss) {
        const dot = c * Math.sqrt(a) * Math.sqrt(b);
        // Block 1 repeats block 0 with the roles swapped, so global and layer differ.
        out.push({
          label: `aa=${a} bb=${b} cos=${c}`,
          layout,
          gram: { ipIp: new Float64Array([a, b]), vrVr: new Float64Array([b, a]), ipVr: new Float64Array([dot, dot]) },
        });
      }
    }
  }
  return out;
}
