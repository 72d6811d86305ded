/** One training session in a sidecar, in the trainer's terms: the op map's compute ops with typed arrays and decisions. */
import type { Config } from '../config/index.js';
import { randomBytes } from 'node:crypto';
import { ProtocolError, SidecarError } from '../errors.js';
import type { Decision, Gram, Layout } from '../policy/index.js';
import { tensor, type Tensor } from '../protocol/dtypes.js';
import type { OpArgs, OpResult } from '../protocol/ops.js';
import { StepViews } from '../protocol/views.js';
import { memoryMapper, SharedRegion, type RegionInfo } from '../sidecar/region.js';
import type { Sidecar } from '../sidecar/sidecar.js';
import type { CallOptions } from '../sidecar/client.js';
import { noProgress, type Progress } from './progress.js';

/** What `session.create` reports: the IP layout, parameter counts, device and data set sizes. */
export type SessionInfo = OpResult<'session.create'>;

/** Per-evaluation metrics: numbers keyed by name (psnr, ssim, fixed_enhanced_acc, ...). */
export type EvalMetrics = Record<string, number | string>;

/** One step's gradients as the policy sees them: losses, the per-block Gram, and in vectors transport both vectors. */
export interface StepGradsReply {
  lossIp: number;
  lossVr: number;
  finite: boolean;
  gram: Gram;
  /**
   * g_IP and g_VR (vectors transport): views valid until the next step's vectors arrive, then detached (they read as
   * empty, and the policy entry points throw STALE_VIEW for them; src/protocol/views.ts). Copy what you keep.
   */
  gIp?: Float32Array;
  gVr?: Float32Array;
}

/** How this session's vectors reach TypeScript: a shared region, or plain ZeroMQ frames; either way into `views`. */
interface VectorsPath {
  views: StepViews;
  region: SharedRegion | null;
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

/** What `train.advance` reports: where training stands after the decision, and the next step's gradients (if asked for). */
export interface AdvanceReply {
  /** Steps taken. */
  step: number;
  /** Steps skipped so far. */
  skipped: number;
  /** Learning rates of the step just applied (0 when none was). */
  lrIp: number;
  lrVr: number;
  /** cos(−g_IP, Δθ) of the IP step just taken (NaN when none was): the Lemma's descent property as the optimizer kept it. */
  ipDescentActual: number;
  next: StepGradsReply | null;
}

/** One training session in a sidecar: create, pretrain, advance (one step per call), eval, checkpoints; long phases are reported to `progress`. */
export class RemoteSession {
  private vectors: VectorsPath | null = null;

  private constructor(
    readonly sidecar: Sidecar,
    readonly info: SessionInfo,
    readonly layout: Layout,
    readonly progress: Progress,
  ) {}

  static async create(sidecar: Sidecar, config: Config, options?: CallOptions, progress: Progress = noProgress): Promise<RemoteSession> {
    const where = config.data.path ?? config.data.image;
    progress.phase?.(`loading data: ${config.data.kind}${where ? ` from ${where}` : ''} ...`);
    sidecar.closeRegions(); // the sidecar drops the old session's region with it
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

  /**
   * One step of the training loop in one round trip: apply the pending step's decision (`'skip'`: none; null: nothing
   * is pending), then, with `next`, compute the next step's gradients.
   */
  async advance(action: Decision | 'skip' | null, next: boolean, transport: 'gram' | 'vectors'): Promise<AdvanceReply> {
    const path = transport === 'vectors' ? (this.vectors ??= await this.openVectorsPath()) : null;
    let decision: OpArgs<'train.advance'>['decision'];
    let tensorsIn: Tensor[] = [];
    if (action === 'skip') decision = { kind: 'skip' };
    else if (action?.kind === 'weights') decision = { kind: 'weights', ip: Array.from(action.ip), vr: Array.from(action.vr) };
    else if (action?.kind === 'vector') {
      if (path?.region) decision = { kind: 'merged', region_seq: path.region.writeMerged(action.merged) };
      else [decision, tensorsIn] = [{ kind: 'merged' }, [tensor('float32', action.merged)]];
    }
    const { result: r, tensors } = await this.sidecar.call(
      'train.advance',
      // No `decision` key at all when there is none: msgpack would carry `undefined` as an extension value.
      decision ? { decision, next, transport } : { next, transport },
      tensorsIn,
    );
    const reply: AdvanceReply = {
      step: r.step,
      skipped: r.skipped,
      lrIp: r.lr_ip,
      lrVr: r.lr_vr,
      ipDescentActual: r.ip_descent_actual,
      next: null,
    };
    if (r.next === null) return reply;
    const gram: Gram = {
      ipIp: Float64Array.from(r.next.gram.ip_ip),
      vrVr: Float64Array.from(r.next.gram.vr_vr),
      ipVr: Float64Array.from(r.next.gram.ip_vr),
    };
    reply.next = { lossIp: r.next.loss_ip, lossVr: r.next.loss_vr, finite: r.next.finite, gram };
    if (path) [reply.next.gIp, reply.next.gVr] = path.views.take(...this.received(path, r.next.region_seq, tensors), r.step + 1);
    return reply;
  }

  /** The two vectors of a reply: in the shared region (checked against the reply's number) or its two frames. */
  private received(path: VectorsPath, seq: number | undefined, tensors: Tensor[]): [Float32Array, Float32Array] {
    if (path.region) {
      if (seq === undefined) throw new ProtocolError('train.advance.result.next.region_seq', 'expected with a shared region open');
      return path.region.vectors(seq);
    }
    const [gIp, gVr] = tensors;
    if (gIp?.dtype !== 'float32' || gVr?.dtype !== 'float32')
      throw new ProtocolError('train.advance.tensors', 'expected two float32 vectors in vectors transport');
    return [gIp.data as Float32Array, gVr.data as Float32Array];
  }

  /**
   * Choose how vectors come (once per session, logged): a shared region when the sidecar is on this machine and both
   * sides can map it, else plain frames. A region that is there but wrong (size, mode, header) is an error.
   */
  private async openVectorsPath(): Promise<VectorsPath> {
    const numel = this.info.layout.numel;
    const views = new StepViews(numel);
    const frames = (reason: string): VectorsPath => {
      this.sidecar.logger.info(`vectors transport: plain ZeroMQ frames (${reason})`);
      return { views, region: null };
    };
    const allowed = this.sidecar.sharedMemory;
    if (!allowed.ok) return frames(allowed.reason);
    const mapper = await memoryMapper();
    if (typeof mapper === 'string') return frames(mapper);
    const nonce = randomBytes(16);
    let info: RegionInfo;
    try {
      info = (await this.sidecar.call('vectors.region', { dir: this.sidecar.regionDir(), nonce })).result;
    } catch (e) {
      if (!(e instanceof SidecarError)) throw e;
      return frames(`the sidecar could not make a region: ${e.detail}`);
    }
    const region = SharedRegion.open(info, nonce, mapper);
    if (!region) return frames(`the sidecar's region ${info.path} is not on this machine`);
    this.sidecar.trackRegion(region);
    this.sidecar.logger.info(`vectors transport: shared region ${info.path} (${(info.bytes / 1e6).toFixed(1)} MB)`);
    return { views, region };
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
