/** Evaluation from code: one IP (and VR) or a run folder scored; the transfer table; files enhanced with a trained IP. */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { IP_ARCHS, VR_ARCHS, resolveConfig, type Config, type ConfigSource } from '../config/index.js';
import { GradpromError } from '../errors.js';
import type { TransferTable } from '../report/transfer-table.js';
import type { Logger } from '../sidecar/logger.js';
import { Sidecar } from '../sidecar/sidecar.js';
import { RemoteSession, type EvalMetrics } from '../train/remote.js';

/** A processing model or recognizer: its weights file, its architecture (default: the config's) and a label. */
export interface ModelSpec {
  weights: string;
  arch?: string;
  label?: string;
}

/** A model spec with every field known. */
export interface LabelledSpec {
  label: string;
  arch: string;
  weights: string;
}

type Parsed = { label: string | null; arch: string | null; weights: string };

/** What every evaluation function takes besides its own fields. */
export interface SessionOptions {
  /** A config file, or an object over the defaults (data, degradation, device, eval). Default: the defaults. */
  config?: ConfigSource;
  split?: 'val' | 'test';
  logger?: Logger;
  signal?: AbortSignal;
}

const EVAL_TIMEOUT_MS = 24 * 3600_000; // a whole ImageNet val split through many networks takes its time

/** Parses `[LABEL=][ARCH:]WEIGHTS`: ARCH counts only when it is one of `archs`; otherwise the rest is the file. */
export function parseSpec(text: string, archs: readonly string[]): Parsed {
  const labelled = /^([^=/\\:]+)=(.+)$/.exec(text);
  const rest = labelled ? labelled[2]! : text;
  const colon = rest.indexOf(':');
  const arch = colon > 0 ? rest.slice(0, colon) : '';
  return archs.includes(arch)
    ? { label: labelled?.[1] ?? null, arch, weights: rest.slice(colon + 1) }
    : { label: labelled?.[1] ?? null, arch: null, weights: rest };
}

/** Labels for specs without one: the file name (processing models) or the arch (recognizers), made unique. */
export function labelSpecs(specs: Parsed[], defaultArch: string, byFile: boolean): LabelledSpec[] {
  const base = specs.map((s) => {
    const arch = s.arch ?? defaultArch;
    return { arch, weights: s.weights, label: s.label ?? (byFile ? basename(s.weights, extname(s.weights)) : arch) };
  });
  return base.map((s, i) => {
    if (specs[i]!.label !== null || base.filter((o) => o.label === s.label).length === 1) return s;
    const longer = byFile ? `${basename(dirname(s.weights))}/${s.label}` : `${s.arch}:${basename(s.weights, extname(s.weights))}`;
    const clash = base.filter((o, j) => j !== i && (byFile ? `${basename(dirname(o.weights))}/${o.label}` : o.label) === longer);
    return { ...s, label: clash.length ? `${longer}#${i + 1}` : longer };
  });
}

/** Specs (strings `[LABEL=][ARCH:]WEIGHTS` or objects) labelled, weights resolved and checked to exist. */
export function resolveSpecs(what: 'ip' | 'vr', specs: readonly (string | ModelSpec)[], defaultArch: string): LabelledSpec[] {
  const archs: readonly string[] = what === 'ip' ? IP_ARCHS : VR_ARCHS;
  const parsed = specs.map((s): Parsed => {
    const p = typeof s === 'string' ? parseSpec(s, archs) : { label: s.label ?? null, arch: s.arch ?? null, weights: s.weights };
    if (p.arch !== null && !archs.includes(p.arch))
      throw new GradpromError('CONFIG', `${what} ${p.weights}: unknown arch "${p.arch}" (known: ${archs.join(', ')})`);
    const weights = resolve(p.weights);
    if (!existsSync(weights))
      throw new GradpromError('CONFIG', `${what} ${typeof s === 'string' ? s : s.weights}: ${weights} does not exist`);
    return { ...p, weights };
  });
  const labelled = labelSpecs(parsed, defaultArch, what === 'ip');
  const labels = labelled.map((s) => s.label);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup !== undefined) throw new GradpromError('CONFIG', `${what}: label "${dup}" is given twice`);
  return labelled;
}

/** Start a sidecar on the config's device, run `fn`, stop it. */
async function withSidecar<T>(config: Config, options: SessionOptions, fn: (sidecar: Sidecar) => Promise<T>): Promise<T> {
  const sidecar = await Sidecar.start({ device: config.device, ...(options.logger ? { logger: options.logger } : {}) });
  try {
    return await fn(sidecar);
  } finally {
    await sidecar.stop();
  }
}

/** What `evaluate` scores: trained weights (an IP, optionally a VR), or a run folder's last checkpoint. */
export type EvaluateOptions = SessionOptions &
  ({ ip: string | ModelSpec; vr?: string | ModelSpec; run?: never } | { run: string; ip?: never; vr?: never });

/** PSNR/SSIM and recognition on clean, degraded and enhanced images, as a run's evaluation reports them. */
export async function evaluate(options: EvaluateOptions): Promise<EvalMetrics> {
  const split = options.split ?? 'test';
  let config: Config;
  if (options.run !== undefined) {
    config = await resolveConfig(join(options.run, 'config.json'));
  } else {
    const [ip] = resolveSpecs('ip', [options.ip], 'srresnet');
    const vr = options.vr === undefined ? undefined : resolveSpecs('vr', [options.vr], 'smallresnet')[0];
    // Only a spec that names an arch overrides the config's.
    const named = (spec: string | ModelSpec | undefined, archs: readonly string[]) =>
      spec === undefined ? null : typeof spec === 'string' ? parseSpec(spec, archs).arch : (spec.arch ?? null);
    const ipArch = named(options.ip, IP_ARCHS);
    const vrArch = named(options.vr, VR_ARCHS);
    const sets = [
      `ip.weights=${ip!.weights}`,
      'vr.pretrain_steps=0',
      ...(ipArch ? [`ip.arch=${ipArch}`] : []),
      ...(vr ? [`vr.weights=${vr.weights}`] : []),
      ...(vrArch ? [`vr.arch=${vrArch}`] : []),
    ];
    config = await resolveConfig(options.config ?? {}, sets);
  }
  // The sidecar builds the networks without a session; a file-based split is streamed, never decoded whole.
  const checkpoint = options.run === undefined ? null : resolve(options.run, 'checkpoints', 'last.pt');
  return withSidecar(config, options, async (sidecar) => {
    const args = { config, split, limit: config.eval.limit, checkpoint };
    const call = { timeoutMs: EVAL_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) };
    const { result } = await sidecar.call('eval.weights', args, [], call);
    return Object.fromEntries(Object.entries(result).filter(([, v]) => v !== null)) as EvalMetrics;
  });
}

/** Several processing models read by several recognizers (ESTR's transfer table), on the config's data and degradation. */
export async function transferTable(
  options: SessionOptions & { ips: readonly (string | ModelSpec)[]; vrs: readonly (string | ModelSpec)[] },
): Promise<TransferTable> {
  if (!options.vrs.length) throw new GradpromError('CONFIG', 'the transfer table needs at least one recognizer (vrs)');
  const config = await resolveConfig(options.config ?? {});
  const ips = resolveSpecs('ip', options.ips, config.ip.arch);
  const vrs = resolveSpecs('vr', options.vrs, config.vr.arch);
  return withSidecar(config, options, async (sc) => {
    const args = { config, ips, vrs, split: options.split ?? 'test', limit: config.eval.limit };
    const call = { timeoutMs: EVAL_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) };
    return (await sc.call('eval.transfer', args, [], call)).result;
  });
}

/** The files of a folder that `enhance` reads (images, DICOM files, NIfTI volumes) and its subfolders holding .dcm files (series). */
export function enhanceInputs(dir: string): string[] {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  return entries
    .filter((e) =>
      e.isDirectory() ? readdirSync(join(dir, e.name)).some((f) => /\.dcm$/i.test(f)) : /\.(png|jpe?g|dcm|nii|nii\.gz)$/i.test(e.name),
    )
    .map((e) => resolve(dir, e.name));
}

/** What `enhance` takes: IP weights, a file or folder in, a folder out; `series` reads the folder as one DICOM series. */
export interface EnhanceOptions {
  ip: string;
  input: string;
  out: string;
  series?: boolean;
  config?: ConfigSource;
  logger?: Logger;
  signal?: AbortSignal;
}

/** Enhances PNG/JPEG, DICOM files or series, or NIfTI volumes; DICOM stays DICOM with its metadata, NIfTI keeps its header. */
export async function enhance(options: EnhanceOptions): Promise<{ written: string[] }> {
  if (!existsSync(options.input)) throw new GradpromError('CONFIG', `input: ${options.input} does not exist`);
  const isDir = statSync(options.input).isDirectory();
  if (options.series && !isDir) throw new GradpromError('CONFIG', `series: ${options.input} is not a folder`);
  const inputs = options.series || !isDir ? [resolve(options.input)] : enhanceInputs(options.input);
  if (!inputs.length)
    throw new GradpromError('CONFIG', `input: no .png, .jpg, .dcm, .nii or .nii.gz files, nor DICOM series folders, in ${options.input}`);
  const [ip] = resolveSpecs('ip', [options.ip], 'srresnet');
  // Enhancing never degrades: the IP's scale comes from its weights, not from a downsampling.
  const config = await resolveConfig(options.config ?? {}, [`ip.weights=${ip!.weights}`, 'vr.pretrain_steps=0', 'degradation=[]']);
  mkdirSync(options.out, { recursive: true });
  return withSidecar(config, options, async (sidecar) => {
    const session = await RemoteSession.create(sidecar, config);
    const call = options.signal ? { signal: options.signal } : {};
    const reply = await session.sidecar.call('enhance.files', { inputs, out_dir: resolve(options.out) }, [], call);
    return { written: reply.result.written };
  });
}
