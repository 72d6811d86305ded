/** Section 8 of `npm run bench`, "Data path": building a generated ISIC-layout set, loading it from the disk cache, batches per second (method: docs/BENCHMARKS-METHOD.md). */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { median, quantile } from '../src/report/stats.js';
import { pythonEnv, resolvePython } from '../src/sidecar/python.js';
import { fmt, inconclusive, noisy, verdict, type Figure, type Section } from './bench-util.js';

const run = promisify(execFile);
const MiB = 2 ** 20;

/** The sizes of the data-path measurements. */
export interface DataPlan {
  /** ISIC-layout JPEGs (600×450) in the generated fixture. */
  images: number;
  /** Image side after resizing. */
  size: number;
  /** Timed training batches from each storage: `rounds × perRound`, one of each in turn. */
  rounds: number;
  perRound: number;
  /** Timed generations of the synthetic set (2000 images at 32 px). */
  syntheticReps: number;
}

/** One `build` measurement (python -m gradprom_sidecar.data.bench build), in a process of its own. */
interface Build {
  seconds: number;
  source: string;
  dtype: string;
  n: number;
  image_bytes: number;
  bytes: number;
  rss_before: number;
  rss_peak: number;
}

export interface DataPathResult {
  fixture: { seconds: number; bytes: number; n: number };
  float32: Build;
  first: Build;
  disk: Build;
  batches: {
    /** Seconds per batch, and per batch before its noise (gather, flip, convert). */
    batch_s: { uint8: number[]; float32: number[] };
    images_s: { uint8: number[]; float32: number[] };
    eval_first_s: number;
    eval_cached_s: number;
    test_images: number;
    threads: number;
  };
  synthetic: { seconds: number[] };
}

/** Runs one data-bench command in a fresh Python process and returns its JSON line. */
async function py<T>(cmd: string, args: Record<string, unknown>): Promise<T> {
  const { stdout } = await run(resolvePython(), ['-m', 'gradprom_sidecar.data.bench', cmd, JSON.stringify(args)], {
    env: pythonEnv(),
    maxBuffer: 16 * MiB,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

/** Generates the fixture in a temporary folder, measures every build and the batches, then removes the folder. */
export async function dataPath(plan: DataPlan): Promise<DataPathResult> {
  const dir = mkdtempSync(join(tmpdir(), 'gradprom-bench-data-'));
  try {
    const path = join(dir, 'isic');
    const cacheDir = join(dir, 'cache');
    const at = { path, size: plan.size };
    const fixture = await py<DataPathResult['fixture']>('fixture', { out: path, n: plan.images });
    const float32 = await py<Build>('build', { ...at, cache_dir: join(dir, 'unused'), float32: true });
    const first = await py<Build>('build', { ...at, cache_dir: cacheDir });
    const disk = await py<Build>('build', { ...at, cache_dir: cacheDir });
    if (first.source !== 'decoded' || disk.source !== 'disk')
      throw new Error(`data bench: expected a decode, then a disk load; got ${first.source}, ${disk.source}`);
    const batches = await py<DataPathResult['batches']>('batches', {
      ...at,
      cache_dir: cacheDir,
      rounds: plan.rounds,
      per_round: plan.perRound,
    });
    const synthetic = await py<DataPathResult['synthetic']>('synthetic', { n: 2000, size: 32, reps: plan.syntheticReps });
    return { fixture, float32, first, disk, batches, synthetic };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ISIC_TASK3 = 10015;

/** Section 8: the figures, with the ISIC 2018 Task 3 memory computed from the measured bytes per image. */
export function dataSection(r: DataPathResult, plan: DataPlan): Section {
  const grown = (b: Build) => (b.rss_peak - b.rss_before) / MiB;
  const build = (b: Build, what: string): Figure => ({
    name: what,
    value: b.seconds,
    unit: 's',
    detail:
      `${b.n} images, ${b.dtype}: data ${fmt(b.bytes / MiB, 1)} MiB; peak RSS ${fmt(b.rss_peak / MiB, 0)} MiB, ` +
      `${fmt(grown(b), 0)} MiB above the process before the build`,
  });
  const perImage = (b: Build) => b.image_bytes / b.n;
  const [u8, f32] = [r.batches.batch_s.uint8, r.batches.batch_s.float32];
  const speed = median(f32) / median(u8); // batches per second, uint8 over float32
  const notSlower = verdict(speed, 1, 'min', '×');
  const paired = median(u8.map((x, i) => f32[i]! / x));
  const syn = median(r.synthetic.seconds) * 1000;
  const synV = verdict(syn, 1000, 'max', ' ms');
  const spread = (xs: number[]) =>
    `${fmt(median(xs) * 1000)} ms per batch; p25–p75 ${fmt(quantile(xs, 0.25) * 1000)}–${fmt(quantile(xs, 0.75) * 1000)} ms, ${xs.length} batches`;
  const figures: Figure[] = [
    build(r.first, 'first decode, compact storage (this version)'),
    build(r.float32, 'first decode, float32 storage (as before)'),
    {
      name: 'data held, compact / float32',
      value: r.first.bytes / r.float32.bytes,
      unit: '×',
      detail: `${fmt(r.first.bytes / MiB, 1)} MiB against ${fmt(r.float32.bytes / MiB, 1)} MiB`,
    },
    {
      name: 'peak RSS added by the build, compact / float32',
      value: grown(r.first) / grown(r.float32),
      unit: '×',
      detail: `${fmt(grown(r.first), 0)} MiB against ${fmt(grown(r.float32), 0)} MiB (decode buffers, the stacked set and its splits)`,
    },
    build(r.disk, 'load from the disk cache in a new process (every image read once)'),
    {
      name: `ISIC 2018 Task 3 at ${plan.size} px (${ISIC_TASK3} RGB images), images held`,
      value: (ISIC_TASK3 * perImage(r.first)) / 1e9,
      unit: 'GB',
      detail: `computed from the bytes per image measured here: ${r.first.dtype}; float32 (as before) ${fmt((ISIC_TASK3 * perImage(r.float32)) / 1e9, 2)} GB`,
    },
    { name: 'training batches per second, uint8 storage (this version)', value: 1 / median(u8), unit: '1/s', detail: spread(u8) },
    { name: 'training batches per second, float32 storage (as before)', value: 1 / median(f32), unit: '1/s', detail: spread(f32) },
    {
      name: 'batches per second, uint8 / float32',
      value: speed,
      unit: '×',
      detail: `paired per-batch median ${fmt(paired)}×`,
      target: '≥ 1× (not slower)',
      met: notSlower.met,
      ...(notSlower.note ? { note: notSlower.note } : {}),
      ...inconclusive(noisy([u8, f32], speed)),
    },
    {
      name: 'of which gathering, flipping and converting the images, uint8 / float32 time',
      value: median(r.batches.images_s.uint8) / median(r.batches.images_s.float32),
      unit: '×',
      detail:
        `${fmt(median(r.batches.images_s.uint8) * 1000)} ms against ${fmt(median(r.batches.images_s.float32) * 1000)} ms per batch ` +
        '(the part compact storage changes; the noise, drawn the same way in both, takes the rest)',
    },
    {
      name: `evaluation inputs of the ${r.batches.test_images} test images, first evaluation (seeded per sample)`,
      value: r.batches.eval_first_s,
      unit: 's',
    },
    { name: 'the same, every later evaluation (kept by the session)', value: r.batches.eval_cached_s, unit: 's' },
    {
      name: 'synthetic set: 2000 images at 32 px, generated',
      value: syn,
      unit: 'ms',
      detail: `median of ${r.synthetic.seconds.length}`,
      target: '≤ 1000 ms',
      met: synV.met,
      ...(synV.note ? { note: synV.note } : {}),
    },
  ];
  return {
    id: '8',
    title: 'Data path',
    lead:
      `A generated ISIC 2018 Task 3 layout (${r.fixture.n} JPEGs of 600×450, ${fmt(r.fixture.bytes / 1e6, 0)} MB, made in ${fmt(r.fixture.seconds, 1)} s) ` +
      `read at ${plan.size}×${plan.size} RGB, each build in a fresh process; training batches of 16 with flips and Gaussian noise σ = 0.3 ` +
      `on the CPU (${r.batches.threads} threads), as this version makes them from uint8 storage and as the code before did from float32 storage, one of each in turn.`,
    figures,
    notes: [],
  };
}
