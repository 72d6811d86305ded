/** Validation of what a policy is given and what it returns: each check describes the first problem, or gives null. */
import type { Decision, Gram, Layout } from './types.js';

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

/** Describes a decision that does not fit the layout or is not finite, or null. */
export function decisionProblem(d: Decision, layout: Layout): string | null {
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
