/** A run's per-image test results (per-image.json), the data a comparison bootstraps over. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { GradpromError } from '../errors.js';

/** The file name inside a run folder. */
export const PER_IMAGE_FILE = 'per-image.json';

/** Per test image, the values whose means are the evaluation's metrics (same names: psnr, fixed_enhanced_acc, ...). */
export interface PerImage {
  split: 'val' | 'test';
  step: number;
  n: number;
  /** One value per image, in image order; null where the value was not finite (a perfect image's PSNR). */
  values: Record<string, Array<number | null>>;
}

const schema = z.object({
  split: z.enum(['val', 'test']),
  step: z.number().int(),
  n: z.number().int().nonnegative(),
  values: z.record(z.string(), z.array(z.number().nullable())),
});

/** The JSON text of per-image results (9 significant digits: float32 values round-trip). */
export function perImageJson(split: 'val' | 'test', step: number, images: Record<string, Float32Array>): string {
  const values: Record<string, Array<number | null>> = {};
  let n = 0;
  for (const [name, v] of Object.entries(images)) {
    values[name] = Array.from(v, (x) => (Number.isFinite(x) ? Number(x.toPrecision(9)) : null));
    n = v.length;
  }
  return `${JSON.stringify({ split, step, n, values })}\n`;
}

/** Read a run folder's per-image results; null when the file is absent, an error naming the file when it is damaged. */
export async function readPerImage(runDir: string): Promise<PerImage | null> {
  const file = join(runDir, PER_IMAGE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new GradpromError('RUN', `${file}: invalid JSON (${(e as Error).message})`);
  }
  const r = schema.safeParse(parsed);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new GradpromError('RUN', `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  for (const [name, v] of Object.entries(r.data.values)) {
    if (v.length !== r.data.n) throw new GradpromError('RUN', `${file}: values.${name} has ${v.length} entries, n is ${r.data.n}`);
  }
  return r.data;
}
