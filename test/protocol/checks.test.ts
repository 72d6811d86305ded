/** The hot path's plain checks (src/protocol/checks.ts) pass only what their zod schema passes unchanged. */
import { z } from 'zod';
import { OPS } from 'gradprom';
import { isAdvanceResult, isOkHeader, tensorDescs } from '../../src/protocol/checks.js';
import { replyHeaderSchema, tensorDescSchema } from '../../src/protocol/schema.js';
import { Rng } from './fuzz-frames.js';

const SEED = 20261207;
const CASES = 5_000;
const ODD: unknown[] = [NaN, Infinity, -Infinity, -1, 0, 1.5, 2 ** 60, 'x', '', null, true, [], {}, undefined, [1, 'a'], [NaN], { a: 1 }];

type Tree = Record<string, unknown> | unknown[];

const odd = (rng: Rng): unknown => structuredClone(rng.pick(ODD)); // a fresh copy: later edits must not reach the pool

/** A deep copy of `v` with a few random edits: a value replaced by an odd one, a key removed, or a key added. */
function mutate(rng: Rng, v: unknown): unknown {
  const copy = structuredClone(v);
  for (let n = 1 + rng.int(3); n > 0; n--) {
    // Walk down to a random container, then edit one of its entries.
    let node = copy as Tree;
    for (let depth = rng.int(4); depth > 0; depth--) {
      const inner = Object.values(node).filter((x): x is Tree => typeof x === 'object' && x !== null);
      if (!inner.length) break;
      node = rng.pick(inner);
    }
    const keys = Object.keys(node);
    const edit = rng.int(3);
    if (edit === 0 && keys.length) (node as Record<string, unknown>)[rng.pick(keys)] = odd(rng);
    else if (edit === 1 && keys.length && !Array.isArray(node)) delete (node as Record<string, unknown>)[rng.pick(keys)];
    else if (!Array.isArray(node)) (node as Record<string, unknown>)[rng.pick(['extra', 'step', 'next', 'gram', 'dtype'])] = odd(rng);
  }
  return copy;
}

/** Over valid values and their mutations: whatever `check` passes, `schema` passes and returns unchanged (the part `used` reads). */
function holdsTo(
  check: (v: unknown) => boolean,
  schema: z.ZodType,
  valid: (rng: Rng) => unknown,
  used: (v: unknown) => unknown = (v) => v,
): { passed: number; refused: number } {
  const rng = new Rng(SEED);
  let passed = 0;
  let refused = 0;
  for (let k = 0; k < CASES; k++) {
    const v = k % 5 === 0 ? valid(rng) : mutate(rng, valid(rng));
    if (!check(v)) {
      refused++;
      continue;
    }
    passed++;
    const r = schema.safeParse(v);
    if (!r.success) throw new Error(`case ${k}: the check passed what the schema refuses: ${JSON.stringify(v)}`);
    expect(used(r.data)).toEqual(used(v)); // what the caller reads is what the schema would have given
  }
  return { passed, refused };
}

const numbers = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.pick([rng.next() - 0.5, NaN, 0]));

function advanceResult(rng: Rng): unknown {
  const n = 1 + rng.int(4);
  const next = {
    loss_ip: rng.next(),
    loss_vr: rng.pick([rng.next(), NaN]),
    finite: rng.int(2) === 0,
    gram: { ip_ip: numbers(rng, n), vr_vr: numbers(rng, n), ip_vr: numbers(rng, n) },
    ...(rng.int(2) ? { region_seq: rng.int(100) } : {}),
  };
  return {
    step: rng.int(50),
    skipped: rng.int(5),
    lr_ip: 1e-3,
    lr_vr: 0,
    ip_descent_actual: rng.pick([NaN, 0.9]),
    next: rng.int(4) ? next : null,
  };
}

test('the train.advance check passes only results its schema returns unchanged, and passes the valid ones', () => {
  const { passed, refused } = holdsTo(isAdvanceResult, OPS['train.advance'].result, advanceResult);
  expect(passed).toBeGreaterThanOrEqual(CASES / 5); // every unmutated result takes the plain path
  expect(refused).toBeGreaterThan(CASES / 2);
});

test('the reply header check passes only ok headers the schema returns unchanged', () => {
  const header = (rng: Rng) => ({
    v: 1,
    id: rng.pick([rng.int(1000), null]),
    status: 'ok',
    tensors: rng.int(2) ? [] : [{ dtype: 'float32', shape: [rng.int(4)] }],
    result: { step: rng.int(9) },
  });
  const check = (v: unknown) => typeof v === 'object' && v !== null && isOkHeader(v as Record<string, unknown>);
  const { passed } = holdsTo(check, replyHeaderSchema, header);
  expect(passed).toBeGreaterThanOrEqual(CASES / 5);
  expect(isOkHeader({ v: 1, id: 1, status: 'error', tensors: [], error: { type: 'X', message: 'm' } })).toBe(false); // errors: the schema
});

test('the tensor descriptor check passes only descriptors the schema returns unchanged, absent ones as none', () => {
  const descs = z.object({ tensors: z.array(tensorDescSchema).default([]) });
  const header = (rng: Rng) => ({
    tensors: Array.from({ length: rng.int(3) }, () => ({ dtype: rng.pick(['float32', 'int64', 'bool']), shape: [rng.int(5), 2] })),
  });
  const check = (v: unknown) => {
    const t = typeof v === 'object' && v !== null && !Array.isArray(v) ? tensorDescs(v as Record<string, unknown>) : null;
    return t !== null;
  };
  const { passed } = holdsTo(check, descs, header, (v) => (v as { tensors?: unknown }).tensors ?? []); // decodeFrames reads only these (absent: none)
  expect(passed).toBeGreaterThanOrEqual(CASES / 5);
  expect(tensorDescs({})).toEqual([]);
  expect(tensorDescs({ tensors: [{ dtype: 'complex64', shape: [1] }] })).toBeNull();
});
