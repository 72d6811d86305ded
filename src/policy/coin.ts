/**
 * The seeded draw of the random-gate control: a counter-based hash of (run seed, step, unit) to a uniform in [0, 1).
 *
 * Stateless, so a resumed run draws exactly what the uninterrupted one would have, and made of 32-bit integer
 * operations only, so python/gradprom_sidecar/tools/policies.py computes the same bits:
 *
 *   h ← 0x9e3779b9;  for w in (seed mod 2³², ⌊seed / 2³²⌋, step, unit): h ← fmix32((h ⊕ w) + 0x9e3779b9 mod 2³²);
 *   u = h / 2³²
 *
 * fmix32 is MurmurHash3's finaliser (full avalanche: consecutive steps give unrelated draws).
 */
import { GradpromError } from '../errors.js';
import type { StepContext } from './types.js';

const GOLDEN = 0x9e3779b9;
const TWO_32 = 2 ** 32;

/** MurmurHash3's 32-bit finaliser. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function checked(what: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new GradpromError('CONFIG', `${what}: expected an integer in [0, ${max}], got ${v}`);
  }
  return v;
}

/** u ∈ [0, 1) for one decision: `unit` is 0 for a global decision, the block's index for a per-layer one. */
export function uniformAt(context: StepContext, unit: number): number {
  const seed = checked('seed', context.seed, Number.MAX_SAFE_INTEGER);
  const words = [seed >>> 0, Math.floor(seed / TWO_32) >>> 0, checked('step', context.step, TWO_32 - 1), checked('unit', unit, TWO_32 - 1)];
  let h = GOLDEN;
  for (const w of words) h = fmix32(((h ^ w) >>> 0) + GOLDEN);
  return h / TWO_32;
}
