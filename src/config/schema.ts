/**
 * The experiment config schema (zod 4, strict objects, snake_case keys) and `parseConfig`, which returns issues instead of throwing.
 */
import * as z from 'zod';
import { policies, POLICY_NAMES, type PolicyName } from '../policy/index.js';
import type { PolicyInput } from '../policy/types.js';
import { data } from './data-schema.js';
import { DEFAULTS, DEGRADATION_DEFAULTS, isPlainObject, withDefaults, type Obj } from './defaults.js';
import { kwargs, nonNegInt, nullableName, posInt, posNum } from './fields.js';
import { renamedKeyIssues } from './renamed.js';

/** One problem with a config: a stable code, the dotted path (`degradation.0.sigma`), and a message naming the bad value. */
export interface ConfigIssue {
  code: string;
  path: string;
  message: string;
}

/** Shows a received value in a message, shortened. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'function') return 'a function';
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The built-in IP (enhancement) architectures. */
export const IP_ARCHS = ['srresnet', 'dncnn', 'unet', 'estr_srresnet'] as const;
/** The built-in VR (recognition) architectures; all but unet are classifiers. */
export const VR_ARCHS = ['smallresnet', 'resnet18', 'resnet34', 'resnet50', 'resnet101', 'densenet121', 'vgg16_bn', 'unet'] as const;

/** A built-in architecture name, or a user class as "package.module:Class". */
function arch(names: readonly string[]) {
  const plugin = /^[A-Za-z_][\w.]*:[A-Za-z_]\w*$/;
  const list = [...names, 'module:Class'].map((n) => `"${n}"`).join(' | ');
  return z
    .string()
    .refine((s) => names.includes(s) || plugin.test(s), { error: (iss) => `expected one of ${list}, got ${show(iss.input)}` });
}

const optim = z.strictObject({
  name: z.enum(['adam', 'sgd']),
  lr: posNum,
  momentum: z.number().min(0).lt(1),
  weight_decay: z.number().min(0),
  schedule: z.enum(['constant', 'cosine', 'step']),
  step_size: posInt,
  gamma: z.number().gt(0).max(1),
  warmup_steps: nonNegInt,
});

const degradation = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('gaussian'), sigma: posNum, clip: z.boolean(), seeding: z.enum(['data-seed', 'per-index']) }),
  z.strictObject({ kind: z.literal('poisson'), peak: posNum }),
  z.strictObject({ kind: z.literal('downsample'), scale: z.literal([2, 4]), method: z.enum(['torch', 'pil']) }),
  z.strictObject({ kind: z.literal('jpeg'), quality: z.int().min(1).max(100) }),
]);

type RefineCtx = { addIssue(issue: { code: 'custom'; path: (string | number)[]; params: { code: string }; message: string }): void };

/** Cross-field checks of the `distributed` section: ranks share each batch equally, one GPU per rank. */
function distributedIssues(
  c: {
    device: string;
    train: { batch_size: number };
    distributed: { nproc: number; nnodes: number; backend: string; master_port: number | null };
  },
  ctx: RefineCtx,
): void {
  const d = c.distributed;
  const world = d.nproc * d.nnodes;
  if (world > 1 && c.train.batch_size % world !== 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['train', 'batch_size'],
      params: { code: 'batch_ranks' },
      message: `expected a multiple of ${world} (the ${world} ranks of distributed.nproc x distributed.nnodes share each batch equally), got ${c.train.batch_size}`,
    });
  }
  if (world > 1 && /^cuda:\d+$/.test(c.device)) {
    ctx.addIssue({
      code: 'custom',
      path: ['device'],
      params: { code: 'device_ranks' },
      message: `"${c.device}" pins one GPU; with several ranks use auto or cuda (rank r uses cuda:r), got ${show(c.device)}`,
    });
  }
  if (d.backend === 'nccl' && c.device === 'cpu') {
    ctx.addIssue({
      code: 'custom',
      path: ['distributed', 'backend'],
      params: { code: 'backend_device' },
      message: 'nccl needs GPUs; with device "cpu" use gloo',
    });
  }
  if (d.nnodes > 1 && d.master_port === null) {
    ctx.addIssue({
      code: 'custom',
      path: ['distributed', 'master_port'],
      params: { code: 'required' },
      message: 'required when distributed.nnodes > 1 (the other machines join on it)',
    });
  }
}

/** `policy.open_rate` is required by the policies that read it (the dose-matched controls) and refused by the others. */
function openRateIssues(p: { name: PolicyName; open_rate: number | null }, ctx: z.core.$RefinementCtx): void {
  const uses = policies[p.name].usesOpenRate;
  if (uses === (p.open_rate !== null)) return;
  const readers = POLICY_NAMES.filter((n) => policies[n].usesOpenRate).join(' and ');
  ctx.addIssue({
    code: 'custom',
    path: ['policy', 'open_rate'],
    params: { code: uses ? 'required' : 'unused' },
    message: uses
      ? `required by policy "${p.name}": the probability p in [0, 1] that g_VR is let in (e.g. a gradprom run's gate-open rate)`
      : `policy "${p.name}" does not read it (only ${readers} do): leave it null`,
  });
}

/** Options for building the schema: where the cross-field checks look up a policy's declared input. */
export interface SchemaOptions {
  policyInput?: (name: PolicyName) => PolicyInput;
}

/** Builds the config schema; `configSchema()` is the one the CLI uses. */
export function configSchema(options: SchemaOptions = {}) {
  const policyInput = options.policyInput ?? ((name: PolicyName) => policies[name].input);
  return z
    .strictObject({
      seed: nonNegInt,
      device: z.string().refine((s) => /^(auto|cpu|cuda(:\d+)?)$/.test(s), {
        error: (iss) => `expected auto | cpu | cuda | cuda:N, got ${show(iss.input)}`,
      }),
      data,
      degradation: z.array(degradation),
      ip: z.strictObject({
        arch: arch(IP_ARCHS),
        channels: posInt.nullable(),
        blocks: posInt.nullable(),
        batch_norm: z.boolean().nullable(),
        depth: posInt,
        levels: posInt,
        scale: posInt.nullable(),
        weights: nullableName,
        residual: z.boolean(),
        plugin_path: nullableName,
        kwargs,
      }),
      vr: z.strictObject({
        arch: arch(VR_ARCHS),
        task: z.enum(['classify', 'segment']),
        mode: z.enum(['supervised', 'unsupervised', 'frozen']),
        weights: nullableName,
        normalize: z.enum(['none', 'imagenet']),
        weights_channels: z.literal([1, 3]).nullable(),
        pretrain_steps: nonNegInt,
        pretrain_lr: posNum,
        plugin_path: nullableName,
        kwargs,
      }),
      policy: z.strictObject({
        name: z.enum(POLICY_NAMES),
        lambda: z.number().min(0),
        lambda_mode: z.enum(['plain', 'normalized']),
        threshold: z.number().min(-1).max(1),
        granularity: z.enum(['global', 'layer']),
        open_rate: z.number().min(0).max(1).nullable(),
      }),
      train: z.strictObject({
        steps: posInt,
        batch_size: posInt,
        loss: z.enum(['mse', 'l1']),
        grad_exchange: z.enum(['gram', 'vectors']),
        max_skips: nonNegInt,
        max_restarts: nonNegInt,
        precision: z.enum(['fp32', 'bf16', 'fp16']),
        channels_last: z.enum(['auto', 'on', 'off']),
        deterministic: z.boolean(),
        ip_optim: optim,
        vr_optim: optim,
        eval_every: nonNegInt,
        checkpoint_every: nonNegInt,
        tensorboard: z.boolean(),
      }),
      eval: z.strictObject({
        batch_size: posInt,
        limit: posInt.nullable(),
        ssim: z.enum(['skimage', 'pytorch_ssim']),
        psnr: z.enum(['image', 'batch']),
      }),
      output: z.strictObject({ dir: z.string().min(1), name: nullableName, plots: z.boolean(), progress_every_s: posNum }),
      compare: z.strictObject({
        primary: z.array(z.enum(['psnr', 'ssim', 'fixed_vr', 'cotrained_vr'])).min(1),
        differences: z.strictObject({ psnr: posNum, ssim: posNum, fixed_vr: posNum, cotrained_vr: posNum }),
        primary_pairs: z.enum(['all', 'gradprom']),
        data_seed: z.enum(['fixed', 'per-seed']),
      }),
      distributed: z.strictObject({
        nproc: posInt,
        backend: z.enum(['gloo', 'nccl']),
        nnodes: posInt,
        master_addr: z.string().min(1),
        master_port: z.int().min(1).max(65535).nullable(),
        timeout_s: posNum,
      }),
    })
    .superRefine((c, ctx) => {
      distributedIssues(c, ctx);
      const product = c.degradation.reduce((p, d) => (d.kind === 'downsample' ? p * d.scale : p), 1);
      // Only a degrading config ties ip.scale to its downsampling (enhance runs with no degradation); null follows the weights.
      if (c.ip.scale !== null && c.degradation.length > 0 && c.ip.scale !== product) {
        ctx.addIssue({
          code: 'custom',
          path: ['ip', 'scale'],
          params: { code: 'scale_mismatch' },
          message: `expected ${product} (the product of the downsample scales in degradation), got ${c.ip.scale}`,
        });
      }
      openRateIssues(c.policy, ctx);
      if (c.train.grad_exchange === 'gram' && policyInput(c.policy.name) === 'vectors') {
        ctx.addIssue({
          code: 'custom',
          path: ['train', 'grad_exchange'],
          params: { code: 'grad_exchange_policy' },
          message: `policy "${c.policy.name}" needs the gradient vectors: set train.grad_exchange to "vectors"`,
        });
      }
    });
}

/** The experiment config schema. */
export const ConfigSchema = configSchema();

/** The resolved experiment config. */
export type Config = z.infer<typeof ConfigSchema>;

export type ConfigResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The keys the schema allows at `path`, from the defaults (degradation entries by kind). */
function knownKeys(path: PropertyKey[], value: unknown): string[] {
  if (path[0] === 'degradation' && isPlainObject(value) && typeof value.kind === 'string') {
    const table: Obj = DEGRADATION_DEFAULTS;
    const d = table[value.kind];
    return isPlainObject(d) ? ['kind', ...Object.keys(d)] : [];
  }
  let node: unknown = DEFAULTS;
  for (const p of path) node = isPlainObject(node) ? node[String(p)] : undefined;
  if (path.join('.') === 'data.window') return ['center', 'width'];
  return isPlainObject(node) ? Object.keys(node) : [];
}

function sizeBound(iss: { origin?: string; inclusive?: boolean }, op: '<' | '>', bound: unknown): string {
  const eq = iss.inclusive ? '=' : '';
  if (iss.origin === 'array') return `at ${op === '>' ? 'least' : 'most'} ${String(bound)} item(s)`;
  if (iss.origin === 'string') return `at ${op === '>' ? 'least' : 'most'} ${String(bound)} character(s)`;
  return `${iss.origin === 'int' ? 'integer' : 'number'} ${op}${eq} ${String(bound)}`;
}

/** Turns zod issues into ConfigIssues with dotted paths and "expected X, got Y" messages. */
export function toConfigIssues(issues: readonly z.core.$ZodIssue[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of issues) {
    const path = iss.path.map(String).join('.');
    const got = show(iss.input);
    switch (iss.code) {
      case 'invalid_type':
        out.push({ code: iss.code, path, message: `expected ${iss.expected === 'int' ? 'integer' : iss.expected}, got ${got}` });
        break;
      case 'invalid_value':
        out.push({ code: iss.code, path, message: `expected one of ${iss.values.map((v) => show(v)).join(' | ')}, got ${got}` });
        break;
      case 'too_small':
        out.push({ code: iss.code, path, message: `expected ${sizeBound(iss, '>', iss.minimum)}, got ${got}` });
        break;
      case 'too_big':
        out.push({ code: iss.code, path, message: `expected ${sizeBound(iss, '<', iss.maximum)}, got ${got}` });
        break;
      case 'unrecognized_keys':
        for (const key of iss.keys) {
          const known = knownKeys(iss.path, iss.input);
          const near = known.filter((k) => distance(k, key) <= 2).sort((a, b) => distance(a, key) - distance(b, key))[0];
          const hint = near ? ` (did you mean "${near}"?)` : known.length ? ` (allowed: ${known.join(', ')})` : '';
          out.push({ code: 'unrecognized_key', path: path ? `${path}.${key}` : key, message: `unknown key "${key}"${hint}` });
        }
        break;
      case 'invalid_union': {
        const values = 'options' in iss && Array.isArray(iss.options) ? iss.options.map((v) => show(v)).join(' | ') : null;
        const message = values
          ? `expected one of ${values}, got ${show(isPlainObject(iss.input) ? iss.input.kind : iss.input)}`
          : `${iss.message}, got ${got}`;
        out.push({ code: iss.code, path, message });
        break;
      }
      case 'custom': {
        const code = typeof iss.params?.code === 'string' ? iss.params.code : 'custom';
        out.push({ code, path, message: iss.message });
        break;
      }
      default:
        out.push({ code: iss.code, path, message: `${iss.message}, got ${got}` });
    }
  }
  return out;
}

/** Validates a raw config (deep-merged over the defaults first); never throws. A renamed key is refused naming its new key. */
export function parseConfig(raw: unknown, options: SchemaOptions = {}): ConfigResult {
  const schema = options.policyInput ? configSchema(options) : ConfigSchema;
  const renamed = renamedKeyIssues(raw);
  const result = schema.safeParse(withDefaults(raw), { reportInput: true });
  if (result.success && !renamed.length) return { ok: true, config: withScale(result.data) };
  // The schema reports an old key as unknown too: the rename says more.
  const old = new Set(renamed.map((i) => i.path));
  const rest = result.success ? [] : toConfigIssues(result.error.issues).filter((i) => !(i.code === 'unrecognized_key' && old.has(i.path)));
  return { ok: false, issues: [...renamed, ...rest] };
}

/** A degrading config's null ip.scale is its downsampling (the only scale its weights may have); with none (enhance), the weights'. */
function withScale(c: Config): Config {
  if (c.ip.scale !== null || c.degradation.length === 0) return c;
  const scale = c.degradation.reduce((p, d) => (d.kind === 'downsample' ? p * d.scale : p), 1);
  return { ...c, ip: { ...c.ip, scale } };
}
