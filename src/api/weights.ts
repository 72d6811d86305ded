/** Weights files from code: list a checkpoint's tensors, convert any weights file gradprom reads to safetensors. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { callPython } from '../control/pythonia.js';
import { GradpromError } from '../errors.js';

/** One tensor of a checkpoint. */
export interface TensorInfo {
  name: string;
  shape: number[];
  dtype: string;
  numel: number;
}

/** What `inspectWeights` finds in a checkpoint or weights file (read weights-only: nothing in it runs). */
export interface InspectInfo {
  path: string;
  bytes: number | null;
  format: string;
  step?: number;
  groups: Record<string, { params: number; tensors: TensorInfo[] }>;
}

/** What `convertWeights` wrote. */
export interface Converted {
  path: string;
  tensors: number;
  elements: number;
  bytes: number;
  notes: string[];
}

function mustExist(file: string): string {
  if (!existsSync(file)) throw new GradpromError('CONFIG', `${file} does not exist`);
  return resolve(file);
}

/** The tensors of a checkpoint or weights file; a corrupt or refused file throws a SidecarError with the reason. */
export async function inspectWeights(file: string): Promise<InspectInfo> {
  return (await callPython('gradprom_sidecar.tools.introspect', 'inspect_checkpoint', mustExist(file))) as InspectInfo;
}

/** Writes `src` (state dict, run checkpoint part `ip`/`vr`, whole pickled model read without running it) as `.safetensors`. */
export async function convertWeights(src: string, dst: string, options: { part?: 'ip' | 'vr' } = {}): Promise<Converted> {
  const from = mustExist(src);
  if (!dst.endsWith('.safetensors')) throw new GradpromError('CONFIG', `${dst}: the output must end in .safetensors`);
  const part: unknown = options.part;
  if (part !== undefined && part !== 'ip' && part !== 'vr')
    throw new GradpromError('CONFIG', `part: expected ip or vr, got "${String(part)}"`);
  return (await callPython('gradprom_sidecar.tools.introspect', 'convert_weights', from, resolve(dst), options.part ?? null)) as Converted;
}
