/**
 * Hand-written checks for what every training step receives (the reply header, its tensor descriptors, the
 * `train.advance` result), run before the zod schemas on the hot path.
 *
 * Each check accepts only values its schema accepts unchanged (the exact keys, each of the schema's type), so a value it
 * passes is what the schema would return; anything else goes to the schema, whose error names the field as always.
 * test/protocol/checks.test.ts holds them to that against random and mutated values.
 */
import { DTYPES } from './dtypes.js';

type Plain = Record<string, unknown>;

/** A plain map (what msgpack decodes a map to), not an array, a marker object or null. */
export function isPlainMap(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isNumber = (v: unknown): v is number => typeof v === 'number';
const isFinite = (v: unknown): v is number => Number.isFinite(v);
const isNumbers = (v: unknown): boolean => Array.isArray(v) && v.every(isNumber);

/** True when `v` has exactly the keys in `required` and maybe those in `optional`. */
function hasKeys(v: Plain, required: readonly string[], optional: readonly string[] = []): boolean {
  const keys = Object.keys(v);
  let found = 0;
  for (const k of keys) {
    if (required.includes(k)) found++;
    else if (!optional.includes(k)) return false;
  }
  return found === required.length;
}

/** `header.tensors` when every descriptor is a plain `{dtype, shape}` of a wire dtype and non-negative integers; else null. */
export function tensorDescs(header: Plain): { dtype: string; shape: number[] }[] | null {
  const t = header.tensors;
  if (t === undefined) return [];
  if (!Array.isArray(t)) return null;
  for (const d of t as unknown[]) {
    if (!isPlainMap(d) || !hasKeys(d, ['dtype', 'shape'])) return null;
    if (typeof d.dtype !== 'string' || !Object.hasOwn(DTYPES, d.dtype)) return null;
    if (!Array.isArray(d.shape) || !d.shape.every((n) => isInt(n) && n >= 0)) return null;
  }
  return t as { dtype: string; shape: number[] }[];
}

/** True for an `ok` reply header as the sidecar writes it: `{v, id, status: 'ok', tensors, result}` (`tensors` checked apart). */
export function isOkHeader(h: Plain): boolean {
  return (
    h.status === 'ok' &&
    hasKeys(h, ['v', 'id', 'status', 'tensors', 'result']) &&
    isInt(h.v) &&
    (h.id === null || isInt(h.id)) &&
    isPlainMap(h.result)
  );
}

const GRAM = ['ip_ip', 'vr_vr', 'ip_vr'] as const;

/** True for a `train.advance` result exactly as its schema in ops.ts describes it. */
export function isAdvanceResult(r: unknown): boolean {
  if (!isPlainMap(r) || !hasKeys(r, ['step', 'skipped', 'lr_ip', 'lr_vr', 'ip_descent_actual', 'next'])) return false;
  if (!isInt(r.step) || !isInt(r.skipped) || !isFinite(r.lr_ip) || !isFinite(r.lr_vr) || !isNumber(r.ip_descent_actual)) return false;
  const n = r.next;
  if (n === null) return true;
  if (!isPlainMap(n) || !hasKeys(n, ['loss_ip', 'loss_vr', 'finite', 'gram'], ['region_seq'])) return false;
  if (!isNumber(n.loss_ip) || !isNumber(n.loss_vr) || typeof n.finite !== 'boolean') return false;
  if (n.region_seq !== undefined && !isInt(n.region_seq)) return false;
  const g = n.gram;
  return isPlainMap(g) && hasKeys(g, GRAM) && GRAM.every((k) => isNumbers(g[k]));
}
