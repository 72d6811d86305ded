/**
 * parseConfig: defaults, strict keys, type and enum errors with paths and received values, range and cross-field checks.
 */
import { DEFAULTS, parseConfig, type Config, type ConfigIssue } from 'gradprom';

function issuesOf(raw: unknown, options?: Parameters<typeof parseConfig>[1]): ConfigIssue[] {
  const r = parseConfig(raw, options);
  if (r.ok) throw new Error('expected issues');
  return r.issues;
}

function configOf(raw: unknown): Config {
  const r = parseConfig(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

describe('defaults', () => {
  test('an empty config resolves to DEFAULTS', () => {
    expect(configOf({})).toEqual(DEFAULTS);
    expect(configOf(undefined)).toEqual(DEFAULTS);
  });

  test('partial sections are deep-merged; arrays replace; degradation entries get per-kind defaults', () => {
    const c = configOf({
      train: { ip_optim: { lr: 0.01 } },
      degradation: [{ kind: 'poisson' }, { kind: 'downsample', scale: 4 }],
      ip: { scale: 4 },
    });
    expect(c.train.ip_optim).toEqual({ ...DEFAULTS.train.ip_optim, lr: 0.01 });
    expect(c.train.steps).toBe(1000);
    expect(c.degradation).toEqual([
      { kind: 'poisson', peak: 30 },
      { kind: 'downsample', scale: 4, method: 'torch' },
    ]);
  });

  test('parsing does not mutate DEFAULTS', () => {
    const c = configOf({ data: { counts: { train: 5 } } });
    c.data.counts.val = 1;
    expect(DEFAULTS.data.counts).toEqual({ train: 2000, val: 200, test: 1000 });
  });
});

describe('issues name the path and the value received', () => {
  test('unknown keys, at any depth, with a hint', () => {
    const issues = issuesOf({ trian: {}, train: { ip_optim: { lrr: 1 } }, degradation: [{ kind: 'gaussian', sigmaa: 1 }] });
    expect(issues).toEqual(
      expect.arrayContaining([
        { code: 'unrecognized_key', path: 'trian', message: 'unknown key "trian" (did you mean "train"?)' },
        { code: 'unrecognized_key', path: 'train.ip_optim.lrr', message: 'unknown key "lrr" (did you mean "lr"?)' },
        expect.objectContaining({ code: 'unrecognized_key', path: 'degradation.0.sigmaa' }),
      ]),
    );
  });

  test('wrong type', () => {
    expect(issuesOf({ policy: { threshold: 'x' } })).toEqual([
      { code: 'invalid_type', path: 'policy.threshold', message: 'expected number, got "x"' },
    ]);
    expect(issuesOf({ train: { steps: 1.5 } })).toEqual([
      { code: 'invalid_type', path: 'train.steps', message: 'expected integer, got 1.5' },
    ]);
    expect(issuesOf({ data: null })[0]).toMatchObject({ path: 'data', message: 'expected object, got null' });
  });

  test('wrong enum or literal', () => {
    expect(issuesOf({ policy: { name: 'gradpro' } })[0]).toEqual({
      code: 'invalid_value',
      path: 'policy.name',
      message: 'expected one of "ip-only" | "joint" | "gradprom" | "soft" | "pcgrad" | "random-gate" | "joint-scaled", got "gradpro"',
    });
    expect(issuesOf({ data: { channels: 2 } })[0]).toMatchObject({ path: 'data.channels', message: 'expected one of 1 | 3, got 2' });
    expect(issuesOf({ degradation: [{ kind: 'blur' }] })[0]).toMatchObject({ code: 'invalid_union', path: 'degradation.0.kind' });
    expect(issuesOf({ device: 'gpu' })[0]).toMatchObject({ path: 'device', message: 'expected auto | cpu | cuda | cuda:N, got "gpu"' });
    expect(configOf({ device: 'cuda:1', ip: { arch: 'my_pkg.nets:Denoiser' } }).ip.arch).toBe('my_pkg.nets:Denoiser');
    expect(issuesOf({ vr: { arch: 'resnet19' } })[0]!.message).toMatch(/expected one of "smallresnet" .* "module:Class", got "resnet19"/);
  });

  test('data placement and cache fields: defaults, choices, types', () => {
    const d = configOf({}).data;
    expect([d.device_cache, d.rng, d.disk_cache, d.cache_dir]).toEqual(['auto', 'device', true, null]);
    expect(configOf({ data: { device_cache: 'off', rng: 'host', disk_cache: false, cache_dir: '/scratch/c' } }).data.cache_dir).toBe(
      '/scratch/c',
    );
    expect(issuesOf({ data: { device_cache: 'always' } })[0]).toMatchObject({
      path: 'data.device_cache',
      message: 'expected one of "auto" | "on" | "off", got "always"',
    });
    expect(issuesOf({ data: { rng: 'gpu' } })[0]).toMatchObject({
      path: 'data.rng',
      message: 'expected one of "device" | "host", got "gpu"',
    });
    expect(issuesOf({ data: { disk_cache: 'yes' } })[0]).toMatchObject({ path: 'data.disk_cache' });
    expect(issuesOf({ data: { cache_dir: '' } })[0]).toMatchObject({ path: 'data.cache_dir' });
  });

  test('negative or zero sizes, steps and rates', () => {
    const issues = issuesOf({
      data: { size: -32, counts: { test: 0 } },
      train: { batch_size: 0, ip_optim: { lr: -1 } },
      degradation: [{ kind: 'gaussian', sigma: 0 }],
    });
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i]));
    expect(byPath['data.size']).toEqual({ code: 'too_small', path: 'data.size', message: 'expected number > 0, got -32' });
    expect(byPath['data.counts.test']?.code).toBe('too_small');
    expect(byPath['train.batch_size']?.code).toBe('too_small');
    expect(byPath['train.ip_optim.lr']?.message).toBe('expected number > 0, got -1');
    expect(byPath['degradation.0.sigma']?.message).toBe('expected number > 0, got 0');
    expect(issuesOf({ policy: { threshold: 2 } })[0]).toMatchObject({ code: 'too_big', message: 'expected number <= 1, got 2' });
  });

  test('the top level must be a mapping', () => {
    expect(issuesOf([1, 2])[0]).toMatchObject({ code: 'invalid_type', path: '', message: 'expected object, got [1,2]' });
  });
});

describe('cross-field checks', () => {
  test('split fractions must sum to 1 (±1e-6)', () => {
    expect(issuesOf({ data: { split: { train: 0.7, val: 0.1, test: 0.1 } } })).toEqual([
      expect.objectContaining({ code: 'split_sum', path: 'data.split' }),
    ]);
    expect(parseConfig({ data: { split: { train: 0.6, val: 0.2, test: 0.2000005 } } }).ok).toBe(true);
  });

  test('data.path is required unless the data set is synthetic', () => {
    expect(issuesOf({ data: { kind: 'isic2018' } })).toEqual([
      { code: 'required', path: 'data.path', message: 'required when data.kind is "isic2018"' },
    ]);
    expect(parseConfig({ data: { kind: 'folder', path: '/data/x' } }).ok).toBe(true);
  });

  test('label_column and label_columns exclude each other', () => {
    expect(issuesOf({ data: { label_column: 'dx', label_columns: ['MEL', 'NV'] } })[0]).toMatchObject({
      code: 'conflict',
      path: 'data.label_columns',
    });
  });

  test('ip.scale must equal the product of the downsample scales', () => {
    const issue = issuesOf({
      degradation: [
        { kind: 'downsample', scale: 2 },
        { kind: 'downsample', scale: 2 },
      ],
    })[0];
    expect(issue).toEqual({
      code: 'scale_mismatch',
      path: 'ip.scale',
      message: 'expected 4 (the product of the downsample scales in degradation), got 1',
    });
    expect(parseConfig({ degradation: [{ kind: 'downsample', scale: 2 }, { kind: 'gaussian' }], ip: { scale: 2 } }).ok).toBe(true);
  });

  test('transport gram with a policy that needs vectors is an error naming train.transport', () => {
    const options = { policyInput: () => 'vectors' as const };
    expect(issuesOf({}, options)).toEqual([expect.objectContaining({ code: 'transport_policy', path: 'train.transport' })]);
    expect(parseConfig({ train: { transport: 'vectors' } }, options).ok).toBe(true);
  });

  test('issues in several sections are all reported at once', () => {
    const paths = issuesOf({ data: { split: { train: 1, val: 1, test: 1 } }, train: { steps: 0 }, bogus: 1 }).map((i) => i.path);
    expect(paths.sort()).toEqual(['bogus', 'data.split', 'train.steps']);
  });
});

describe('ESTR protocol fields', () => {
  const folder = { kind: 'imagefolder', path: 'data/imagenet', size: 224 };

  test('imagefolder: resize at least the crop, and the train crop needs resize', () => {
    expect(issuesOf({ data: { ...folder, resize: 200 } })).toEqual([
      {
        code: 'resize_size',
        path: 'data.resize',
        message: 'expected at least data.size (224): the 224 px crop is taken from the resized image, got 200',
      },
    ]);
    expect(issuesOf({ data: { ...folder, augment: { flip: true, crop: true } } })).toEqual([
      expect.objectContaining({ code: 'crop_resize', path: 'data.augment.crop' }),
    ]);
    expect(configOf({ data: { ...folder, resize: 256, augment: { crop: true } } }).data.folders).toEqual({
      train: 'train',
      val: 'val',
      test: null,
    });
  });

  test('resize and the train crop belong to the imagefolder kind', () => {
    expect(issuesOf({ data: { resize: 40, augment: { crop: true } } })).toEqual([
      { code: 'kind_field', path: 'data.resize', message: 'set, but only the imagefolder kind reads it (data.kind is "synthetic")' },
      { code: 'kind_field', path: 'data.augment.crop', message: 'true, but only the imagefolder kind reads it (data.kind is "synthetic")' },
    ]);
  });

  test('jpeg quality 1..100, downsample method torch | pil, eval conventions', () => {
    expect(configOf({ degradation: [{ kind: 'jpeg' }] }).degradation).toEqual([{ kind: 'jpeg', quality: 10 }]);
    expect(issuesOf({ degradation: [{ kind: 'jpeg', quality: 0 }] })[0]).toMatchObject({ path: 'degradation.0.quality' });
    expect(issuesOf({ degradation: [{ kind: 'jpeg', quality: 101 }] })[0]).toMatchObject({ path: 'degradation.0.quality' });
    expect(issuesOf({ degradation: [{ kind: 'downsample', scale: 4, method: 'cv2' }], ip: { scale: 4 } })[0]).toMatchObject({
      path: 'degradation.0.method',
    });
    expect(issuesOf({ eval: { ssim: 'matlab' } })[0]).toMatchObject({ path: 'eval.ssim' });
    expect(configOf({ eval: { ssim: 'pytorch_ssim', psnr: 'batch' } }).eval).toMatchObject({ ssim: 'pytorch_ssim', psnr: 'batch' });
  });

  test('the ESTR and transfer-table architectures are known', () => {
    expect(configOf({ ip: { arch: 'estr_srresnet' }, vr: { arch: 'vgg16_bn' } }).ip.residual).toBe(false);
    for (const arch of ['resnet101', 'densenet121']) expect(parseConfig({ vr: { arch } }).ok).toBe(true);
  });
});
