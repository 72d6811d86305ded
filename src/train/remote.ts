/** Typed wrappers over the sidecar's compute operations; every reply is parsed by a zod schema. */
import { z } from 'zod';
import type { Config } from '../config/index.js';
import type { Decision, Gram, Layout } from '../policy/index.js';
import { tensor, type Tensor } from '../protocol/dtypes.js';
import { parseOrThrow } from '../protocol/schema.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import type { CallOptions } from '../sidecar/client.js';

const blockSchema = z.object({ name: z.string(), shape: z.array(z.number().int()), numel: z.number().int(), offset: z.number().int() });

const createSchema = z.object({
  layout: z.object({ blocks: z.array(blockSchema), numel: z.number().int() }),
  ip_params: z.number().int(),
  vr_params: z.number().int(),
  device: z.string(),
  data: z.object({ train: z.number().int(), val: z.number().int(), test: z.number().int(), num_classes: z.number().int() }).loose(),
});
export type SessionInfo = z.infer<typeof createSchema>;

// zod's z.number() refuses NaN and ±Infinity, but a diverging step reports exactly those: the trainer skips it.
const anyNumber = z.custom<number>((v) => typeof v === 'number', { message: 'expected a number' });
const gramSchema = z.object({ ip_ip: z.array(anyNumber), vr_vr: z.array(anyNumber), ip_vr: z.array(anyNumber) });
const gradsSchema = z.object({ step: z.number().int(), loss_ip: anyNumber, loss_vr: anyNumber, finite: z.boolean(), gram: gramSchema });
// ip_descent_actual: cos(−g_IP, Δθ) of the step the optimizer took (see python/gradprom_sidecar/descent.py).
const applySchema = z.object({ step: z.number().int(), lr_ip: z.number(), lr_vr: z.number(), ip_descent_actual: anyNumber });
const pretrainSchema = z.object({ loss: anyNumber, accuracy: anyNumber }); // 0 steps: no loss (NaN)
const loadSchema = z.object({ step: z.number().int(), extra: z.unknown(), config: z.unknown() }).loose();

/** Per-evaluation metrics: numbers keyed by name (psnr, ssim, fixed_enhanced_acc, ...). */
export type EvalMetrics = Record<string, number | string>;
const evalSchema = z.record(z.string(), z.union([anyNumber, z.string(), z.null()]));
const evalImagesSchema = z.object({ per_image: z.array(z.string()) }).catchall(z.union([anyNumber, z.string(), z.null()]));

export interface StepGradsReply {
  step: number;
  lossIp: number;
  lossVr: number;
  finite: boolean;
  gram: Gram;
  gIp?: Float32Array;
  gVr?: Float32Array;
}

/** One training session in a sidecar: create, pretrain, grads/apply, eval, checkpoints. */
export class RemoteSession {
  private constructor(
    readonly sidecar: Sidecar,
    readonly info: SessionInfo,
    readonly layout: Layout,
  ) {}

  static async create(sidecar: Sidecar, config: Config, options?: CallOptions): Promise<RemoteSession> {
    const reply = await sidecar.call('session.create', { config }, [], options);
    const info = parseOrThrow(createSchema, reply.result, 'session.create.result');
    return new RemoteSession(sidecar, info, info.layout.blocks);
  }

  async pretrain(steps: number, options?: CallOptions): Promise<z.infer<typeof pretrainSchema>> {
    const reply = await this.sidecar.call('vr.pretrain', { steps }, [], options);
    return parseOrThrow(pretrainSchema, reply.result, 'vr.pretrain.result');
  }

  async grads(transport: 'gram' | 'vectors'): Promise<StepGradsReply> {
    const reply = await this.sidecar.call('train.grads', { transport });
    const r = parseOrThrow(gradsSchema, reply.result, 'train.grads.result');
    const gram: Gram = {
      ipIp: Float64Array.from(r.gram.ip_ip),
      vrVr: Float64Array.from(r.gram.vr_vr),
      ipVr: Float64Array.from(r.gram.ip_vr),
    };
    const out: StepGradsReply = { step: r.step, lossIp: r.loss_ip, lossVr: r.loss_vr, finite: r.finite, gram };
    if (transport === 'vectors') {
      const [gIp, gVr] = reply.tensors;
      if (gIp?.dtype !== 'float32' || gVr?.dtype !== 'float32')
        throw new Error('train.grads: expected two float32 vectors in vectors transport');
      out.gIp = gIp.data as Float32Array;
      out.gVr = gVr.data as Float32Array;
    }
    return out;
  }

  async apply(decision: Decision): Promise<z.infer<typeof applySchema>> {
    const reply =
      decision.kind === 'weights'
        ? await this.sidecar.call('train.apply', { weights: { ip: Array.from(decision.ip), vr: Array.from(decision.vr) } })
        : await this.sidecar.call('train.apply', {}, [tensor('float32', decision.merged)]);
    return parseOrThrow(applySchema, reply.result, 'train.apply.result');
  }

  async skip(): Promise<void> {
    await this.sidecar.call('train.skip');
  }

  async evaluate(split: 'val' | 'test', limit: number | null, options?: CallOptions): Promise<EvalMetrics> {
    const reply = await this.sidecar.call('eval', { split, limit }, [], options);
    const r = parseOrThrow(evalSchema, reply.result, 'eval.result');
    return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== null)) as EvalMetrics;
  }

  /** An evaluation with its per-image values (float32, image order), named like the metrics they average to. */
  async evaluateImages(
    split: 'val' | 'test',
    limit: number | null,
  ): Promise<{ metrics: EvalMetrics; images: Record<string, Float32Array> }> {
    const reply = await this.sidecar.call('eval', { split, limit, per_image: true });
    const { per_image: names, ...rest } = parseOrThrow(evalImagesSchema, reply.result, 'eval.result');
    if (names.length !== reply.tensors.length) throw new Error(`eval: ${names.length} per-image names for ${reply.tensors.length} tensors`);
    const images: Record<string, Float32Array> = {};
    names.forEach((name, i) => {
      const t = reply.tensors[i]!;
      if (t.dtype !== 'float32') throw new Error(`eval: per-image "${name}" is ${t.dtype}, expected float32`);
      images[name] = t.data as Float32Array;
    });
    const metrics = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== null)) as EvalMetrics;
    return { metrics, images };
  }

  async enhance(images: Tensor<'float32'>): Promise<Tensor> {
    const reply = await this.sidecar.call('enhance', {}, [images]);
    return reply.tensors[0]!;
  }

  async save(path: string, extra: Record<string, unknown>): Promise<void> {
    await this.sidecar.call('checkpoint.save', { path, extra });
  }

  async load(path: string): Promise<z.infer<typeof loadSchema>> {
    const reply = await this.sidecar.call('checkpoint.load', { path });
    return parseOrThrow(loadSchema, reply.result, 'checkpoint.load.result');
  }
}
