/** One training session in a sidecar, in the trainer's terms: the op map's compute ops with typed arrays and decisions. */
import type { Config } from '../config/index.js';
import { ProtocolError } from '../errors.js';
import type { Decision, Gram, Layout } from '../policy/index.js';
import { tensor, type Tensor } from '../protocol/dtypes.js';
import type { OpResult } from '../protocol/ops.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import type { CallOptions } from '../sidecar/client.js';
import { noProgress, type Progress } from './progress.js';

/** What `session.create` reports: the IP layout, parameter counts, device and data set sizes. */
export type SessionInfo = OpResult<'session.create'>;

/** Per-evaluation metrics: numbers keyed by name (psnr, ssim, fixed_enhanced_acc, ...). */
export type EvalMetrics = Record<string, number | string>;

export interface StepGradsReply {
  step: number;
  lossIp: number;
  lossVr: number;
  finite: boolean;
  gram: Gram;
  gIp?: Float32Array;
  gVr?: Float32Array;
}

/** While `work` runs, ask the sidecar every second how far its op has got (ping's `progress`) and show it as a status line. */
async function watch<T>(sidecar: Sidecar, progress: Progress, work: Promise<T>): Promise<T> {
  if (progress === noProgress) return work;
  const timer = setInterval(() => {
    sidecar.call('ping', {}, [], { timeoutMs: 5_000 }).then(
      ({ result }) => {
        if (result.progress) progress.status?.(`${result.progress.what}: ${result.progress.done}/${result.progress.total}`);
      },
      () => {}, // the heartbeat, not this, decides whether the sidecar is alive
    );
  }, 1_000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/** One training session in a sidecar: create, pretrain, grads/apply, eval, checkpoints; long phases are reported to `progress`. */
export class RemoteSession {
  private constructor(
    readonly sidecar: Sidecar,
    readonly info: SessionInfo,
    readonly layout: Layout,
    readonly progress: Progress,
  ) {}

  static async create(sidecar: Sidecar, config: Config, options?: CallOptions, progress: Progress = noProgress): Promise<RemoteSession> {
    const where = config.data.path ?? config.data.image;
    progress.phase?.(`loading data: ${config.data.kind}${where ? ` from ${where}` : ''} ...`);
    const { result } = await watch(sidecar, progress, sidecar.call('session.create', { config }, [], options));
    const d = result.data;
    progress.phase?.(`loading data: ${d.train + d.val + d.test} images (train ${d.train}, val ${d.val}, test ${d.test})`);
    return new RemoteSession(sidecar, result, result.layout.blocks, progress);
  }

  async pretrain(steps: number, options?: CallOptions): Promise<OpResult<'vr.pretrain'>> {
    if (steps > 0) this.progress.phase?.(`pretraining VR: ${steps} steps ...`);
    const { result } = await watch(this.sidecar, this.progress, this.sidecar.call('vr.pretrain', { steps }, [], options));
    if (steps > 0) this.progress.phase?.(`pretraining VR: ${steps}/${steps}, clean val score ${result.accuracy.toFixed(3)}`);
    return result;
  }

  async grads(transport: 'gram' | 'vectors'): Promise<StepGradsReply> {
    const { result: r, tensors } = await this.sidecar.call('train.grads', { transport });
    const gram: Gram = {
      ipIp: Float64Array.from(r.gram.ip_ip),
      vrVr: Float64Array.from(r.gram.vr_vr),
      ipVr: Float64Array.from(r.gram.ip_vr),
    };
    const out: StepGradsReply = { step: r.step, lossIp: r.loss_ip, lossVr: r.loss_vr, finite: r.finite, gram };
    if (transport === 'vectors') {
      const [gIp, gVr] = tensors;
      if (gIp?.dtype !== 'float32' || gVr?.dtype !== 'float32')
        throw new ProtocolError('train.grads.tensors', 'expected two float32 vectors in vectors transport');
      out.gIp = gIp.data as Float32Array;
      out.gVr = gVr.data as Float32Array;
    }
    return out;
  }

  async apply(decision: Decision): Promise<OpResult<'train.apply'>> {
    const reply =
      decision.kind === 'weights'
        ? await this.sidecar.call('train.apply', { weights: { ip: Array.from(decision.ip), vr: Array.from(decision.vr) } })
        : await this.sidecar.call('train.apply', {}, [tensor('float32', decision.merged)]);
    return reply.result;
  }

  async skip(): Promise<void> {
    await this.sidecar.call('train.skip');
  }

  async evaluate(split: 'val' | 'test', limit: number | null, options?: CallOptions): Promise<EvalMetrics> {
    this.progress.phase?.(`evaluating: ${split}`);
    const { result } = await this.sidecar.call('eval', { split, limit }, [], options);
    return Object.fromEntries(Object.entries(result).filter(([, v]) => v !== null)) as EvalMetrics;
  }

  /** An evaluation with its per-image values (float32, image order), named like the metrics they average to. */
  async evaluateImages(
    split: 'val' | 'test',
    limit: number | null,
  ): Promise<{ metrics: EvalMetrics; images: Record<string, Float32Array> }> {
    this.progress.phase?.(`evaluating: ${split}`);
    const reply = await this.sidecar.call('eval', { split, limit, per_image: true });
    const { per_image: names, ...rest } = reply.result;
    if (!Array.isArray(names)) throw new ProtocolError('eval.result.per_image', 'expected the names of the per-image tensors');
    if (names.length !== reply.tensors.length)
      throw new ProtocolError('eval.tensors', `${names.length} per-image names for ${reply.tensors.length} tensors`);
    const images: Record<string, Float32Array> = {};
    names.forEach((name, i) => {
      const t = reply.tensors[i]!;
      if (t.dtype !== 'float32') throw new ProtocolError(`eval.tensors[${i}]`, `per-image "${name}" is ${t.dtype}, expected float32`);
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
    this.progress.phase?.(`checkpoint written: ${path}`);
  }

  async load(path: string): Promise<OpResult<'checkpoint.load'>> {
    return (await this.sidecar.call('checkpoint.load', { path })).result;
  }
}
