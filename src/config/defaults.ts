/**
 * Every default of the experiment config, in one block (units in the comments); a user file is deep-merged over it.
 */

/** Default per-kind fields of a `degradation` entry, filled in when an entry leaves them out. */
export const DEGRADATION_DEFAULTS = {
  gaussian: { sigma: 0.3, clip: false, seeding: 'data-seed' }, // sigma: noise std on [0,1] intensities; clip: clamp the result to [0,1];
  //                                       seeding of evaluation noise: data-seed (from data.seed and the index) | per-index (ESTR: manual_seed(index))
  poisson: { peak: 30 }, //                 peak: expected photon count at intensity 1.0
  downsample: { scale: 2, method: 'torch' }, // scale: bicubic downsampling factor (2 or 4); method: torch (float) | pil (8-bit PIL, ESTR's)
  jpeg: { quality: 10 }, //                 quality: JPEG quality 1..100 of a PIL save-and-decode round trip (ESTR: 10)
} as const;

/** The resolved config when the user gives nothing (snake_case: Python reads the same file). */
export const DEFAULTS = {
  seed: 0, //                          training RNG seed; every rank uses the same one (all ranks draw the same global batch)
  device: 'auto', //                   auto | cpu | cuda | cuda:N (auto: CUDA when present)
  data: {
    kind: 'synthetic', //              synthetic | isic2018 | folder | dicom | imagefolder (train/<class>/*, val/<class>/*) | imagenet-val (flat val folder + ground truth) | nifti | dicom-series
    seed: 0, //                        data seed: the generated set, the split and the test degradation (fixed across training seeds)
    path: null, //                     data set root (required unless kind is synthetic)
    size: 32, //                       image side after resizing (imagefolder: the centre crop), pixels
    resize: null, //                   imagefolder, imagenet-val: shorter side resized to this before the crop, pixels (ImageNet: 256); null: largest centred square
    channels: 1, //                    1 (grayscale) | 3 (RGB)
    classes: 4, //                     number of classes (classification) or of mask labels
    counts: { train: 2000, val: 200, test: 1000 }, // images generated per split (synthetic only)
    split: { train: 0.7, val: 0.1, test: 0.2 }, //  fractions of a real data set per split; sum to 1
    labels_csv: null, //               labels file, relative to path (null: labels.csv when present, else no labels)
    image_column: 'image', //          CSV column holding the image file name (without or with extension)
    label_column: null, //             CSV column holding a class index or name (null: one-hot label_columns)
    label_columns: null, //            one-hot CSV columns, one per class (ISIC 2018 Task 3 style)
    masks_dir: null, //                folder of masks beside the images, relative to path (segmentation)
    isic_task: 'classify', //          classify (Task 3) | segment (Task 1)
    folders: { train: 'train', val: 'val', test: null }, // imagefolder: subfolder per split, relative to path (null: not read; test null: val serves as test)
    max_per_class: null, //            imagefolder, imagenet-val: the first N images (sorted) of each class per split (null: all)
    ground_truth: null, //             imagenet-val: ILSVRC2012_validation_ground_truth.txt or LOC_val_solution.csv, relative to path
    synsets: null, //                  imagenet-val: the devkit's meta.mat, or one wnid per line in ILSVRC2012_ID order, relative to path
    window: null, //                   DICOM intensity window {center, width}, in stored units (HU for CT)
    image: null, //                    nifti: one image volume (.nii/.nii.gz), relative to path, instead of images/
    label_volume: null, //             nifti: its label volume on the same grid (shape and affine checked)
    volumes_csv: null, //              nifti: CSV of subjects (columns image, labels), relative to path
    axis: 2, //                        volumes: slicing axis in RAS+ voxel order (0 sagittal, 1 coronal, 2 axial)
    drop_empty: false, //              volumes: drop slices without foreground (label > 0; without labels, intensity > 0)
    percentiles: { low: 0.5, high: 99.5 }, // nifti: per-volume intensity percentiles (%) mapped to 0 and 1
    label_map: null, //                volumes: CSV (columns id, region) grouping label ids into regions
    unmapped: 'background', //         volumes: class of label ids the label_map leaves out (background or a region)
    slab_gap: 4, //                    volumes: slices left out between the train/val/test slabs of a single subject
    augment: { flip: false, crop: false }, // flip: random horizontal flips of training images; crop: imagefolder, a random size x size crop of the resize x resize centre
    device_cache: 'auto', //           auto | on | off: splits held on the CUDA device (auto: when they and the cached val/test inputs take ≤ 25 % of free device memory); else pinned host memory, next batch copied ahead
    rng: 'device', //                  device | host: where training flips and noise are drawn on CUDA (host: the CPU generator, copied: a CUDA run sees a CPU run's numbers)
    disk_cache: true, //               keep decoded file data sets on disk (compact arrays), so the next sidecar loads instead of decoding
    cache_dir: null, //                folder of that cache (null: $XDG_CACHE_HOME/gradprom/data, else ~/.cache/gradprom/data)
  },
  degradation: [{ kind: 'gaussian', ...DEGRADATION_DEFAULTS.gaussian }], // applied in order to the clean image
  ip: {
    arch: 'srresnet', //               srresnet | dncnn | unet | estr_srresnet (ESTR's network: 64 channels, 5 blocks) | "package.module:Class"
    channels: null, //                 feature channels (null: srresnet reads them from ip.weights, else 32)
    blocks: null, //                   residual blocks (srresnet; null: from ip.weights, else 4)
    batch_norm: null, //               BatchNorm inside blocks (srresnet; null: from ip.weights, else false)
    depth: 17, //                      convolution layers (dncnn)
    levels: 3, //                      resolution levels (unet): levels − 1 poolings, each halving the size
    scale: null, //                    upscaling factor; must equal the product of downsample scales (null: the weights' upsampling blocks for srresnet and estr_srresnet, else that product)
    weights: null, //                  checkpoint, state-dict or whole pickled model file to start from
    residual: false, //                estr_srresnet: ESTR's residual variant, clamp(x - output, 0, 1)
    plugin_path: null, //              folder added to sys.path for a "module:Class" arch
    kwargs: {}, //                     extra constructor arguments
  },
  vr: {
    arch: 'smallresnet', //            smallresnet | resnet18/34/50/101 | densenet121 | vgg16_bn | unet | "package.module:Class"
    task: 'classify', //               classify | segment
    mode: 'supervised', //             supervised (labels) | unsupervised (clean-image pseudo-labels) | frozen
    weights: null, //                  state-dict file (torchvision names load unchanged)
    normalize: 'none', //              none | imagenet (mean/std normalisation of VR's input)
    weights_channels: null, //         input channels of the first conv of resnet/densenet/vgg (1 | 3); null: 3, torchvision's layout (gray images are repeated)
    pretrain_steps: 300, //            steps of VR training on clean images before IP training
    pretrain_lr: 1e-3, //              learning rate of that pre-training
    plugin_path: null, //              folder added to sys.path for a "module:Class" arch
    kwargs: {}, //                     extra constructor arguments
  },
  policy: {
    name: 'gradprom', //               ip-only | joint | gradprom | soft | pcgrad | random-gate | joint-scaled
    lambda: 0.003, //                  weight of g_VR (dimensionless); ‖g_VR‖ is 200–1000× ‖g_IP‖, hence ~0.003 plain
    lambda_mode: 'plain', //           plain (λ_eff = λ) | normalized (λ_eff = λ‖g_IP‖/‖g_VR‖)
    threshold: 0, //                   gate τ on the cosine, in [-1, 1]; the gate opens iff cos > τ
    granularity: 'global', //          global (one cosine) | layer (one decision per parameter tensor)
    open_rate: null, //                p in [0, 1]: random-gate opens with probability p, joint-scaled uses p·λ (required by those two, null for the others)
  },
  train: {
    steps: 1000, //                    IP optimisation steps
    batch_size: 16, //                 images per step
    loss: 'mse', //                    pixel loss: mse | l1
    grad_exchange: 'gram', //          gram (sidecar sends the per-block Gram) | vectors (flat gradients)
    max_skips: 10, //                  non-finite steps skipped in a row before the run stops
    max_restarts: 3, //                sidecar restarts (crash, hang) the run survives, each resuming from the last checkpoint
    precision: 'fp32', //              fp32 | bf16 | fp16: autocast forwards of IP and VR (fp16: one loss scaler for both losses; an overflow is a skipped step)
    channels_last: 'auto', //          auto | on | off: IP, VR and their inputs in channels_last memory format (auto: on with CUDA, off on the CPU)
    deterministic: false, //           true: cudnn.benchmark off, cudnn.deterministic and torch.use_deterministic_algorithms(warn_only) on
    ip_optim: {
      name: 'adam', //                 adam | sgd
      lr: 1e-3, //                     peak learning rate
      momentum: 0.9, //                sgd momentum (adam: beta1)
      weight_decay: 0, //              L2 penalty
      schedule: 'constant', //         constant | cosine | step
      step_size: 1000, //              steps between decays (step schedule)
      gamma: 0.5, //                   decay factor per step_size (step schedule)
      warmup_steps: 0, //              linear warm-up steps
    },
    vr_optim: {
      name: 'adam',
      lr: 1e-3,
      momentum: 0.9,
      weight_decay: 0,
      schedule: 'constant',
      step_size: 1000,
      gamma: 0.5,
      warmup_steps: 0,
    },
    eval_every: 250, //                steps between evaluations (0: only at the end)
    checkpoint_every: 250, //          steps between checkpoints (0: only at the end)
    tensorboard: true, //              also write TensorBoard event files to <run>/tensorboard (tensorboard --logdir runs)
  },
  eval: {
    batch_size: 200, //                images per evaluation batch
    limit: null, //                    test images used (null: all)
    ssim: 'skimage', //                SSIM convention: skimage (valid region) | pytorch_ssim (zero padding, ESTR's)
    psnr: 'image', //                  PSNR convention: image (mean over images) | batch (per eval batch, ESTR's)
  },
  output: {
    dir: 'runs', //                    parent folder of run folders
    name: null, //                     run folder name (null: generated from policy, λ and seed, e.g. gradprom-l0.003-s0)
    plots: true, //                   draw the run report's plots (plots/*.svg: about 1.5 s of CPU a run; false for sweeps of many short runs)
    progress_every_s: 30, //           seconds between status lines when stderr is not a terminal (logs, nohup, Slurm, CI)
  },
  compare: {
    primary: ['psnr', 'fixed_vr'], //  endpoints a comparison tests with Holm's correction (psnr | ssim | fixed_vr | cotrained_vr); the rest are secondary
    differences: { psnr: 0.1, ssim: 0.005, fixed_vr: 2, cotrained_vr: 2 }, // differences worth detecting (dB, SSIM, points): the report gives the seeds each needs
    primary_pairs: 'all', //           pairs whose primary differences form the Holm family: all | gradprom (gradprom against each other policy; other pairs secondary)
    data_seed: 'fixed', //             fixed: every training seed on the data set of data.seed | per-seed: seed s also draws data set data.seed + (s - seed)
  },
  distributed: {
    nproc: 1, //                       sidecar ranks on this machine under torch.distributed (1: one process); CLI --nproc
    backend: 'gloo', //                gloo (CPU, or GPUs) | nccl (GPUs: rank r uses cuda:r)
    nnodes: 1, //                      machines; beyond 1 this one is node 0 and the others join with torchrun (docs/SCALE-OUT.md)
    master_addr: '127.0.0.1', //       rendezvous address: loopback on one machine, this machine's address on several
    master_port: null, //              rendezvous TCP port (null: a free one; required with several machines)
    timeout_s: 1800, //                seconds a collective, or the start-up rendezvous, waits for a peer
  },
} as const;

/** A plain JSON-like object. */
export type Obj = Record<string, unknown>;

/** True for a non-null, non-array object. */
export function isPlainObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets an own property even for names like "__proto__" (so the schema reports them as unknown keys). */
export function setOwn(obj: Obj, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Deep copy of plain objects and arrays; other values are shared (no structuredClone: it throws on functions). */
function copy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copy);
  if (!isPlainObject(v)) return v;
  const out: Obj = {};
  for (const k of Object.keys(v)) setOwn(out, k, copy(v[k]));
  return out;
}

/** Deep-merges `over` onto a copy of `base`: objects merge key by key, anything else (arrays included) replaces. */
function merge(base: unknown, over: unknown): unknown {
  if (over === undefined) return copy(base);
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Obj = {};
    for (const k of Object.keys(base)) setOwn(out, k, copy(base[k]));
    for (const k of Object.keys(over)) setOwn(out, k, merge(base[k], over[k]));
    return out;
  }
  return copy(over);
}

/** Merges a user config over DEFAULTS and fills each degradation entry's per-kind defaults (idempotent). */
export function withDefaults(raw: unknown): unknown {
  const merged = merge(DEFAULTS, raw);
  if (isPlainObject(merged) && Array.isArray(merged.degradation)) {
    const table: Obj = DEGRADATION_DEFAULTS;
    merged.degradation = merged.degradation.map((d: unknown) => {
      const kind = isPlainObject(d) && typeof d.kind === 'string' && Object.hasOwn(table, d.kind) ? d.kind : null;
      return kind ? merge(table[kind], d) : d;
    });
  }
  return merged;
}
