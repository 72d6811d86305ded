/**
 * The closed list of sidecar operations: for each op name, the zod schema of its `args` and of its reply's `result`.
 *
 * `Sidecar.call` takes only these names (checked at compile time), types `args` from the args schema, and parses
 * every reply's `result` with the result schema before the caller sees it (a mismatch is a PROTOCOL error naming
 * the op and the field). Args are typed, not parsed: the sidecar is the authority on them and its errors name the
 * field. Tensors travel beside args and result; each op's comment says which. The Python side registers the same
 * names (python/gradprom_sidecar: the I/O thread answers hello, ping, cancel and shutdown; every other op is a
 * handler); docs/PROTOCOL.md describes both halves and how to add an op. Ops the Python tests register for
 * themselves (python/tests/extra_ops.py) are not here: production never calls them.
 */
import { z } from 'zod';
import type { Config } from '../config/index.js';

/** Any number, NaN and ±Infinity included: a diverging step reports exactly those, and the trainer skips it. */
const anyNumber = z.custom<number>((v) => typeof v === 'number', { message: 'expected a number' });
const int = z.number().int();
const noArgs = z.object({});
const noResult = z.object({});

const helloResult = z.object({
  protocol: int,
  torch: z.string(),
  python: z.string(),
  devices: z.array(z.string()),
  device: z.string(),
  pid: int,
  cuda: z.string().nullable(),
});

const blockSchema = z.object({ name: z.string(), shape: z.array(int), numel: int, offset: int });
const sessionResult = z.object({
  layout: z.object({ blocks: z.array(blockSchema), numel: int }),
  ip_params: int,
  vr_params: int,
  device: z.string(),
  data: z.object({ train: int, val: int, test: int, num_classes: int }).loose(),
});

const gramSchema = z.object({ ip_ip: z.array(anyNumber), vr_vr: z.array(anyNumber), ip_vr: z.array(anyNumber) });

/** Per-evaluation metrics keyed by name (psnr, ssim, fixed_enhanced_acc, ...); null for a metric that does not apply. */
// Metrics by name; with `per_image: true` also `per_image`, the names of the per-image tensors, in order.
const evalResult = z.record(z.string(), z.union([anyNumber, z.string(), z.null(), z.array(z.string())]));

/** A processing model or recognizer of the transfer table: its row or column label, built-in arch and weights file. */
const modelSpec = z.object({ label: z.string().min(1), arch: z.string().min(1), weights: z.string().min(1) });

/** Per recognizer label, a fraction of images (NaN when there were none). */
const cells = z.record(z.string(), anyNumber);

/** The transfer table: rows (clean, degraded input, each IP) by recognizer columns, with image quality per row. */
const transferResult = z.object({
  split: z.enum(['val', 'test']),
  n: int,
  num_classes: int,
  topk: z.array(int),
  ssim_convention: z.string(),
  psnr_convention: z.string(),
  recognizers: z.array(modelSpec.extend({ left_at_init: z.array(z.string()) })),
  rows: z.array(
    z.object({
      label: z.string(),
      kind: z.enum(['clean', 'degraded', 'ip']),
      arch: z.string().optional(),
      weights: z.string().optional(),
      psnr: anyNumber.nullable(),
      ssim: anyNumber.nullable(),
      top1: cells,
      top5: cells.optional(),
    }),
  ),
});

/** One op: what its request's `args` may hold, and what its reply's `result` must hold. */
export interface OpSpec {
  readonly args: z.ZodType<Record<string, unknown>>;
  readonly result: z.ZodType<Record<string, unknown>>;
}

export const OPS = {
  // I/O ops: answered by the sidecar's I/O thread, never behind a long computation.
  /** Handshake: versions and devices. */
  hello: { args: noArgs, result: helloResult },
  /** Heartbeat: whether the compute thread is busy, with which op, and how far that op has got (loading data, pretraining VR). */
  ping: {
    args: noArgs,
    result: z.object({
      pid: int,
      busy: z.boolean(),
      op: z.string().nullable(),
      progress: z.object({ what: z.string(), done: int, total: int }).nullable().optional(),
    }),
  },
  /** Stop request `id` at its next cancellation point; `cancelled` is false when it was not pending. */
  cancel: { args: z.object({ id: int }), result: z.object({ cancelled: z.boolean() }) },
  /** The process exits after replying. */
  shutdown: { args: noArgs, result: noResult },

  // Bridge ops (compute thread).
  /** Tensors: the request's, returned unchanged. Args are ignored. */
  echo: { args: z.record(z.string(), z.unknown()), result: noResult },
  /** Busy the compute thread for `seconds` (cooperative: stops early when cancelled). */
  sleep: { args: z.object({ seconds: z.number() }), result: z.object({ slept: z.number() }) },

  // Compute ops: one training session per sidecar.
  /** Build data, models, optimisers and RNG from the resolved config (replacing any session). */
  'session.create': { args: z.object({ config: z.custom<Config>() }), result: sessionResult },
  /** Train VR on clean images for `steps`; its final state is kept as the fixed evaluation VR. 0 steps: loss NaN. */
  'vr.pretrain': { args: z.object({ steps: int }), result: z.object({ loss: anyNumber, accuracy: anyNumber }) },
  /**
   * The training loop's one op per step: apply the pending step's `decision` (weights; `merged`, the vector being the
   * one tensor in, or with `region_seq` the shared region's merged slot; or `skip`), then with `next` compute the next
   * step's gradients. Tensors out, vectors transport and `next` only: [g_ip, g_vr] float32 flat, or none when a shared
   * region is open (`vectors.region`): then `next.region_seq` numbers the vectors in it. After replying the sidecar makes VR's own update of that step (when finite)
   * and draws the following step's inputs, while TypeScript decides.
   */
  'train.advance': {
    args: z.object({
      decision: z
        .discriminatedUnion('kind', [
          z.object({ kind: z.literal('weights'), ip: z.array(z.number()), vr: z.array(z.number()) }),
          z.object({ kind: z.literal('merged'), region_seq: int.optional() }),
          z.object({ kind: z.literal('skip') }),
        ])
        .optional(),
      next: z.boolean(),
      transport: z.enum(['gram', 'vectors']),
    }),
    result: z.object({
      step: int,
      skipped: int,
      lr_ip: z.number(),
      lr_vr: z.number(),
      // cos(−g_IP, Δθ) of the IP step just applied, NaN when none was (python/gradprom_sidecar/training/descent.py).
      ip_descent_actual: anyNumber,
      next: z
        .object({ loss_ip: anyNumber, loss_vr: anyNumber, finite: z.boolean(), gram: gramSchema, region_seq: int.optional() })
        .nullable(),
    }),
  },
  /**
   * Vectors transport through shared memory: the sidecar makes a region file in `dir` (a private folder of this
   * process's), sized from the session's layout, writes `nonce` (16 bytes) into its header, and keeps the session's
   * vectors there from now on (src/sidecar/region.ts, python/gradprom_sidecar/wire/region.py). Refused with several ranks.
   */
  'vectors.region': {
    args: z.object({ dir: z.string(), nonce: z.instanceof(Uint8Array) }),
    result: z.object({ path: z.string(), bytes: int, numel: int, header: int, slot: int }),
  },
  /**
   * Bench only (registered when the sidecar starts with GRADPROM_BENCH_OPS=1): one whole step inside the sidecar
   * with the config's built-in policy, the in-process reference `npm run bench` times the bridge against.
   */
  'train.step': {
    args: noArgs,
    result: z.object({
      step: int,
      loss_ip: anyNumber,
      loss_vr: anyNumber,
      finite: z.boolean(),
      cos: anyNumber,
      gate: z.boolean().nullable(),
      gate_rate: anyNumber,
      ip_norm: anyNumber,
      vr_norm: anyNumber,
      lambda_eff: anyNumber,
      ms: z.number(),
    }),
  },
  /**
   * Bench only (GRADPROM_BENCH_OPS=1): `steps` steps of the lean plain-PyTorch loop `npm run bench` takes as the floor
   * (its own copies of the session's networks), each timed inside the sidecar.
   */
  'bench.lean': { args: z.object({ steps: int }), result: z.object({ ms: z.array(z.number()) }) },
  /** Image quality and recognition on a split (`limit`: the first images only). */
  eval: {
    args: z.object({ split: z.enum(['train', 'val', 'test']), limit: int.nullable().optional(), per_image: z.boolean().optional() }),
    result: evalResult,
  },
  /**
   * Trained weights scored on a split without a session (and changing none): `config`'s `ip.weights`/`vr.weights` (the VR
   * also as the fixed one), or a gradprom `checkpoint`'s networks; a file-based split is streamed, never held whole.
   */
  'eval.weights': {
    args: z.object({
      config: z.custom<Config>(),
      split: z.enum(['val', 'test']),
      limit: int.nullable().optional(),
      checkpoint: z.string().nullable().optional(),
    }),
    result: evalResult,
  },
  /**
   * The transfer table of several processing models (`ips`) read by several recognizers (`vrs`) on a split, built from
   * `config` (data, degradation, ip/vr sections, eval conventions); needs no session and changes none.
   */
  'eval.transfer': {
    args: z.object({
      config: z.custom<Config>(),
      ips: z.array(modelSpec),
      vrs: z.array(modelSpec),
      split: z.enum(['val', 'test']),
      limit: int.nullable().optional(),
    }),
    result: transferResult,
  },
  /** Tensors: [images] N×C×H×W float32 in [0,1] in, [enhanced] out. */
  enhance: { args: noArgs, result: noResult },
  /** Enhance PNG/JPEG/DICOM files, NIfTI volumes and DICOM series folders into `out_dir` (metadata kept). */
  'enhance.files': {
    args: z.object({ inputs: z.array(z.string()), out_dir: z.string() }),
    result: z.object({ written: z.array(z.string()) }),
  },
  /** Write the session (models, optimisers, step, RNG, config) atomically, with `extra` stored beside it. */
  'checkpoint.save': {
    args: z.object({ path: z.string(), extra: z.record(z.string(), z.unknown()) }),
    result: z.object({ path: z.string(), bytes: int }),
  },
  /** Restore a checkpoint; with no session yet, one is built from the checkpoint's own config. */
  'checkpoint.load': {
    args: z.object({ path: z.string() }),
    result: z.object({ step: int, skipped: int, extra: z.unknown(), config: z.unknown() }),
  },
} as const satisfies Record<string, OpSpec>;

/** The name of a sidecar operation. */
export type OpName = keyof typeof OPS;
/** What a call to `op` takes as args. */
export type OpArgs<K extends OpName> = z.input<(typeof OPS)[K]['args']>;
/** What a reply to `op` holds as its result, once parsed. */
export type OpResult<K extends OpName> = z.output<(typeof OPS)[K]['result']>;
