/**
 * The streamed evaluation, measured by hand (docs/BENCHMARKS.md, "Measured by hand"): `gradprom eval` with
 * configs/estr/eval-dn.yaml on a generated ImageNet-like val folder (flat JPEGs plus LOC_val_solution.csv, small
 * networks), against the same evaluation through a session that decodes the split into memory first.
 *
 *   npm run build && node dist/scripts/bench-eval-stream.js [--images 3000] [--dir DIR] [--streamed-only]
 *
 * `--dir` keeps the generated set there (and reuses it when it is already there); otherwise it goes to a temporary folder,
 * removed afterwards. `--streamed-only` skips the in-memory evaluation (as long again, and its memory grows with the
 * set). Peak RSS comes from GNU time (`/usr/bin/time -v`, which counts the sidecar: Node waits for it) and from the
 * sidecar's own `peak_memory_mb`; images/s from the sidecar's last progress line. Prints Markdown and one JSON line.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { resolveConfig } from '../src/config/index.js';
import { pythonEnv, resolvePython } from '../src/sidecar/python.js';

const run = promisify(execFile);
const MiB = 2 ** 20;
const root = fileURLToPath(new URL('../..', import.meta.url)); // from dist/scripts
const TIME = '/usr/bin/time';
const PRESET = join(root, 'configs', 'estr', 'eval-dn.yaml');

/** What GNU time says of one command: peak RSS (bytes) and CPU and wall seconds. */
interface Timed {
  rss_peak: number | null;
  cpu_s: number | null;
  wall_s: number;
}

/** One measured path. */
interface PathResult extends Timed {
  n: number;
  images_s: number;
  sidecar_peak_mb: number | null;
  metrics: Record<string, unknown>;
}

function option(name: string, fallback: string | null): string | null {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/** Runs `cmd args` under GNU time when the machine has it; the time report goes to its own file. */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, report: string) {
  const useTime = existsSync(TIME);
  const t0 = performance.now();
  const out = await run(useTime ? TIME : cmd, useTime ? ['-v', '-o', report, cmd, ...args] : args, {
    env,
    cwd: root,
    maxBuffer: 64 * MiB,
  });
  const wall = (performance.now() - t0) / 1000;
  const text = useTime && existsSync(report) ? readFileSync(report, 'utf8') : '';
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
  };
  const rss = num(/Maximum resident set size \(kbytes\): (\d+)/);
  const user = num(/User time \(seconds\): ([\d.]+)/);
  const sys = num(/System time \(seconds\): ([\d.]+)/);
  const t: Timed = { rss_peak: rss === null ? null : rss * 1024, cpu_s: user === null || sys === null ? null : user + sys, wall_s: wall };
  return { ...out, t };
}

async function main(): Promise<void> {
  const images = Number(option('--images', '3000'));
  if (!Number.isInteger(images) || images < 1) throw new Error(`--images: expected a positive integer, got ${option('--images', '')}`);
  const given = option('--dir', null);
  const dir = given ?? mkdtempSync(join(tmpdir(), 'gradprom-eval-stream-'));
  const env = { ...pythonEnv(), OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1' };
  try {
    const csv = join(dir, 'LOC_val_solution.csv');
    const have = existsSync(csv) ? readFileSync(csv, 'utf8').trim().split('\n').length - 1 : 0;
    if (have !== images) {
      const fx = await run(
        resolvePython(),
        ['-m', 'gradprom_sidecar.evaluation.bench', 'fixture', JSON.stringify({ out: dir, n: images })],
        {
          env,
        },
      );
      console.error(`generated: ${fx.stdout.trim()}`);
    }
    const sets = [`data.path=${join(dir, 'val')}`, 'vr.kwargs.widths=[2, 4, 4]']; // the fixture's smallresnet (evaluation/bench.py)
    const weights = { ip: join(dir, 'ip.pt'), vr: join(dir, 'vr.pt') };

    // Streamed: the command a user runs.
    const cli = [join(root, 'bin', 'gradprom.js'), 'eval', '--config', PRESET, '--split', 'val', '--json', '--verbose'];
    const args = [...cli, ...sets.flatMap((s) => ['--set', s]), '--ip', `srresnet:${weights.ip}`, '--vr', `smallresnet:${weights.vr}`];
    const s = await timed(process.execPath, args, env, join(dir, 'time-streamed.txt'));
    const streamedMetrics = JSON.parse(s.stdout) as Record<string, unknown>;
    const lines = [...s.stderr.matchAll(/eval val: (\d+)\/(\d+) images, ([\d.]+) images\/s, peak memory (\d+) MB/g)];
    const last = lines.at(-1);
    if (!last) throw new Error(`no progress line from the streamed evaluation:\n${s.stderr.slice(-2000)}`);
    const streamed: PathResult = {
      ...s.t,
      n: Number(streamedMetrics.n),
      images_s: Number(last[3]),
      sidecar_peak_mb: Number(streamedMetrics.peak_memory_mb),
      metrics: streamedMetrics,
    };

    console.error(`streamed: ${JSON.stringify({ ...streamed, metrics: undefined })}`);
    if (process.argv.includes('--streamed-only')) {
      console.log(JSON.stringify({ images, streamed: { ...streamed, metrics: undefined } }));
      return;
    }

    // In memory: the same evaluation through a session holding the split (what `gradprom eval` did before it streamed).
    const config = await resolveConfig(PRESET, [
      ...sets,
      'ip.arch=srresnet',
      `ip.weights=${weights.ip}`,
      'vr.arch=smallresnet',
      `vr.weights=${weights.vr}`,
      'device=cpu',
    ]);
    const m = await timed(
      resolvePython(),
      ['-m', 'gradprom_sidecar.evaluation.bench', 'in_memory', JSON.stringify({ config, split: 'val' })],
      env,
      join(dir, 'time-in-memory.txt'),
    );
    const mem = JSON.parse(m.stdout.trim().split('\n').pop()!) as { seconds: number; rss_peak: number; metrics: Record<string, unknown> };
    const inMemory: PathResult = {
      ...m.t,
      n: Number(mem.metrics.n),
      images_s: Number(mem.metrics.n) / mem.seconds,
      sidecar_peak_mb: mem.rss_peak / MiB,
      metrics: mem.metrics,
    };
    const keys = Object.keys(streamedMetrics).filter((k) => k !== 'peak_memory_mb');
    const value = (v: unknown) => v ?? null; // a metric that does not apply: null in one record, absent from the other
    const same = keys.every((k) => value(streamedMetrics[k]) === value(inMemory.metrics[k]));

    const mb = (b: number | null) => (b === null ? '–' : `${(b / MiB).toFixed(0)} MiB`);
    const row = (name: string, r: PathResult) =>
      `| ${name} | ${r.n} | ${r.images_s.toFixed(1)} | ${r.wall_s.toFixed(1)} s | ${r.cpu_s === null ? '–' : `${r.cpu_s.toFixed(1)} s`} | ${mb(r.rss_peak)} | ${r.sidecar_peak_mb === null ? '–' : `${r.sidecar_peak_mb.toFixed(0)} MiB`} |`;
    console.log(
      [
        `| path | images | images/s | wall | CPU (user+sys) | peak RSS (time -v) | sidecar peak |`,
        '|---|---:|---:|---:|---:|---:|---:|',
        row('streamed (`gradprom eval`)', streamed),
        row('decoded into memory first (a session)', inMemory),
        '',
        `same metrics: ${same ? 'yes' : 'NO'}; OMP_NUM_THREADS=${env.OMP_NUM_THREADS}; ${images} images in ${dir}`,
      ].join('\n'),
    );
    console.log(JSON.stringify({ images, streamed, in_memory: inMemory, same }));
    if (!same) process.exitCode = 1;
  } finally {
    if (given === null) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
