/** The `data` section of the config schema: the data set's kind, files, sizes, splits and placement, with its cross-field checks. */
import * as z from 'zod';
import { fraction, nonNegInt, nullableName, posInt, posNum } from './fields.js';

export const data = z
  .strictObject({
    kind: z.enum(['synthetic', 'isic2018', 'folder', 'dicom', 'imagefolder', 'imagenet-val', 'nifti', 'dicom-series']),
    seed: z.number().int().nonnegative(),
    path: nullableName,
    size: posInt,
    resize: posInt.nullable(),
    channels: z.literal([1, 3]),
    classes: posInt,
    counts: z.strictObject({ train: posInt, val: posInt, test: posInt }),
    split: z.strictObject({ train: fraction, val: fraction, test: fraction }),
    labels_csv: nullableName,
    image_column: z.string().min(1),
    label_column: nullableName,
    label_columns: z.array(z.string().min(1)).min(1).nullable(),
    masks_dir: nullableName,
    isic_task: z.enum(['classify', 'segment']),
    folders: z.strictObject({ train: nullableName, val: nullableName, test: nullableName }),
    max_per_class: posInt.nullable(),
    ground_truth: nullableName,
    synsets: nullableName,
    window: z.strictObject({ center: z.number(), width: posNum }).nullable(),
    image: nullableName,
    label_volume: nullableName,
    volumes_csv: nullableName,
    axis: z.literal([0, 1, 2]),
    drop_empty: z.boolean(),
    percentiles: z.strictObject({ low: z.number().min(0).max(100), high: z.number().min(0).max(100) }),
    label_map: nullableName,
    unmapped: z.string().min(1),
    slab_gap: nonNegInt,
    augment: z.strictObject({ flip: z.boolean(), crop: z.boolean() }),
    device_cache: z.enum(['auto', 'on', 'off']),
    rng: z.enum(['device', 'host']),
    disk_cache: z.boolean(),
    cache_dir: nullableName,
  })
  .superRefine((d, ctx) => {
    if (d.kind !== 'synthetic' && d.path === null && !(d.kind === 'nifti' && d.image !== null)) {
      ctx.addIssue({ code: 'custom', path: ['path'], params: { code: 'required' }, message: `required when data.kind is "${d.kind}"` });
    }
    const sum = d.split.train + d.split.val + d.split.test;
    if (Math.abs(sum - 1) > 1e-6) {
      ctx.addIssue({
        code: 'custom',
        path: ['split'],
        params: { code: 'split_sum' },
        message: `train + val + test must sum to 1, got ${sum}`,
      });
    }
    imagefolderIssues(d, ctx);
    if (d.percentiles.low >= d.percentiles.high) {
      ctx.addIssue({
        code: 'custom',
        path: ['percentiles'],
        params: { code: 'percentiles_order' },
        message: `low must be below high, got ${d.percentiles.low} and ${d.percentiles.high}`,
      });
    }
    if (d.label_volume !== null && d.image === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['label_volume'],
        params: { code: 'required' },
        message: 'data.label_volume needs data.image (one subject)',
      });
    }
    if (d.label_column !== null && d.label_columns !== null) {
      ctx.addIssue({
        code: 'custom',
        path: ['label_columns'],
        params: { code: 'conflict' },
        message: 'set label_column or label_columns, not both',
      });
    }
  });

/** The imagefolder and imagenet-val kinds' own fields: resize (both), the train crop (imagefolder), the ground truth (imagenet-val). */
function imagefolderIssues(
  d: {
    kind: string;
    size: number;
    resize: number | null;
    augment: { crop: boolean };
    ground_truth: string | null;
    synsets: string | null;
  },
  ctx: { addIssue(issue: { code: 'custom'; path: string[]; params: { code: string }; message: string }): void },
): void {
  const only = (path: string[], what: string) =>
    ctx.addIssue({
      code: 'custom',
      path,
      params: { code: 'kind_field' },
      message: `${what} only the imagefolder kind reads it (data.kind is "${d.kind}")`,
    });
  if (d.kind === 'imagenet-val' && d.ground_truth === null) {
    ctx.addIssue({
      code: 'custom',
      path: ['ground_truth'],
      params: { code: 'required' },
      message: 'required when data.kind is "imagenet-val" (ILSVRC2012_validation_ground_truth.txt or LOC_val_solution.csv)',
    });
  }
  if (d.kind !== 'imagenet-val' && (d.ground_truth !== null || d.synsets !== null)) {
    const field = d.ground_truth !== null ? 'ground_truth' : 'synsets';
    ctx.addIssue({
      code: 'custom',
      path: [field],
      params: { code: 'kind_field' },
      message: `set, but only the imagenet-val kind reads it (data.kind is "${d.kind}")`,
    });
  }
  if (d.kind === 'imagenet-val' && d.augment.crop) only(['augment', 'crop'], 'true, but');
  if (d.kind !== 'imagefolder' && d.kind !== 'imagenet-val') {
    if (d.resize !== null) only(['resize'], 'set, but');
    if (d.augment.crop) only(['augment', 'crop'], 'true, but');
    return;
  }
  if (d.resize !== null && d.resize < d.size) {
    ctx.addIssue({
      code: 'custom',
      path: ['resize'],
      params: { code: 'resize_size' },
      message: `expected at least data.size (${d.size}): the ${d.size} px crop is taken from the resized image, got ${d.resize}`,
    });
  }
  if (d.augment.crop && d.resize === null) {
    ctx.addIssue({
      code: 'custom',
      path: ['augment', 'crop'],
      params: { code: 'crop_resize' },
      message: 'needs data.resize (the random crop is taken from the resize x resize centre)',
    });
  }
}
