/**
 * gradprom as a user meets it: the packed tarball installed into an empty project (with install scripts, and without
 * them followed by `npx gradprom setup`), the examples type-checked with `tsc --strict` against it, and one tiny run
 * on the shared environment whose final PSNR equals the same run from the clone. The registry serves the
 * dependencies (from npm's cache when it can).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from '../helpers.js';
import { tempDir } from '../reliability/harness.js';

const LONG = 30 * 60_000; // a first install makes the shared environment (pip: minutes)

const TINY = JSON.stringify({
  device: 'cpu',
  data: { size: 16, classes: 3, counts: { train: 64, val: 16, test: 32 } },
  ip: { channels: 8, blocks: 1 },
  vr: { pretrain_steps: 5, kwargs: { widths: [4, 8] } },
  train: { steps: 6, batch_size: 8, eval_every: 3, checkpoint_every: 3 },
  eval: { limit: 16, batch_size: 16 },
  output: { plots: false }, // runner.test.ts draws them; here they would cost 1.5 s of CPU a run
});

// What a user's shell has: no GRADPROM_PYTHON (the shared environment is the one looked up), one thread.
const userEnv: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1' };
delete userEnv.GRADPROM_PYTHON;
delete userEnv.npm_config_ignore_scripts;

let tmp: ReturnType<typeof tempDir>;
let tarball: string;
let clonePsnr: number;

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = userEnv): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 20 * 60_000 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The final test PSNR the quickstart example printed as its last line. */
function psnrOf(stdout: string): number {
  const last = stdout.trim().split('\n').pop() ?? '';
  return (JSON.parse(last) as { psnr: number }).psnr;
}

/** An empty project with gradprom from the tarball, TypeScript and Node's types. */
function project(name: string, scripts: boolean): string {
  const dir = join(tmp.dir, name);
  const allow = { gradprom: true, zeromq: true, koffi: true, 'msgpackr-extract': true };
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', allowScripts: allow }));
  const flags = ['--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', ...(scripts ? [] : ['--ignore-scripts'])];
  const out = ok(run('npm', ['install', ...flags, tarball, 'typescript@^5', '@types/node@^20'], dir), `npm install in ${name}`);
  if (scripts) expect(out).toMatch(/gradprom: environment ready/);
  return dir;
}

/**
 * Copies the examples and compiles them against the installed package: type-checked with `tsc --strict`, or, where a
 * test has checked them already and only needs their JavaScript, emitted without the check (`--noCheck`: a quarter
 * of the time). `extra` files join the examples in src/; the compiler's output is returned, whatever its status.
 */
function compileExamples(dir: string, check: boolean, extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  cpSync(join(root, 'examples'), join(dir, 'src'), { recursive: true });
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, 'src', name), text);
  const tsconfig = {
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'out', types: ['node'] },
    include: ['src'],
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
  return run('npx', ['tsc', '-p', '.', ...(check ? [] : ['--noCheck'])], dir);
}

beforeAll(() => {
  tmp = tempDir('gradprom-pkg-');
  // dist/ is already built (`npm test` builds first); packing again would rebuild it under the other tests' feet.
  ok(run('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp.dir], root), 'npm pack');
  tarball = join(
    tmp.dir,
    readdirSync(tmp.dir).find((f) => f.endsWith('.tgz'))!,
  );
  clonePsnr = psnrOf(
    ok(run(process.execPath, [join(root, 'dist', 'examples', 'quickstart.js'), join(tmp.dir, 'clone-run'), TINY], root), 'the clone run'),
  );
}, LONG);
afterAll(() => tmp.remove());

describe('the packed package', () => {
  it(
    'ships built JavaScript, types, the sidecar and configs, and no tests or environments',
    () => {
      const files = ok(run('tar', ['tzf', tarball], tmp.dir), 'tar').split('\n');
      for (const f of ['package/dist/src/index.js', 'package/dist/src/index.d.ts', 'package/bin/gradprom.js', 'package/LICENSE'])
        expect(files).toContain(f);
      expect(files).toContain('package/python/gradprom_sidecar/__main__.py');
      expect(files).toContain('package/python/requirements.txt');
      expect(files.some((f) => f.startsWith('package/configs/'))).toBe(true);
      expect(files.filter((f) => /python\/tests|\.venv|__pycache__|requirements-dev|\.test\.|\.map$/.test(f))).toEqual([]);
    },
    LONG,
  );

  it(
    'installs with its scripts, type-checks the examples, and runs as the clone does',
    () => {
      const dir = project('with-scripts', true);
      // The examples type-check with `tsc --strict`, and a wrong field in a typed config is a compile error naming it:
      // one compile, whose only errors are the wrong file's (tsc still emits the examples' JavaScript).
      const tsc = compileExamples(dir, true, {
        'wrong.ts': "import { parseConfig } from 'gradprom';\nparseConfig({ train: { stpes: 3 } });\n",
      });
      expect(tsc.status).not.toBe(0);
      const errors = tsc.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.filter((l) => !l.startsWith('src/wrong.ts'))).toEqual([]);
      expect(tsc.stdout).toContain('stpes');
      const r = ok(run(process.execPath, [join('out', 'quickstart.js'), 'runs/q', TINY], dir), 'the quickstart example');
      expect(psnrOf(r)).toBeCloseTo(clonePsnr, 6);
      const doctor = ok(run('npx', ['gradprom', 'doctor'], dir), 'gradprom doctor');
      expect(doctor).toMatch(/env +shared: /);
    },
    LONG,
  );

  it(
    'installs without scripts; `npx gradprom setup` then makes it run the same',
    () => {
      const dir = project('no-scripts', false);
      ok(compileExamples(dir, false), 'tsc --noCheck on the examples'); // type-checked in the test above
      ok(run('npx', ['gradprom', 'setup'], dir), 'gradprom setup');
      const r = ok(run(process.execPath, [join('out', 'quickstart.js'), 'runs/q', TINY], dir), 'the quickstart example');
      expect(psnrOf(r)).toBeCloseTo(clonePsnr, 6);

      // Every example runs at a tiny size from the project: a λ sweep, enhancing NIfTI files, the transfer table.
      const sweep = ok(run(process.execPath, [join('out', 'lambda-sweep.js'), 'runs/sweep', TINY, '0.5,2'], dir), 'the λ sweep');
      expect(sweep).toMatch(/\| 0\.5 \| \d+% \| \d+\.\d\d \|/);
      expect(sweep).toMatch(/\| 2 \| \d+% \| \d+\.\d\d \|/);

      const doctor = JSON.parse(ok(run('npx', ['gradprom', 'doctor', '--json'], dir), 'doctor')) as { environment: { python: string } };
      const nifti =
        'import numpy as np, nibabel as nib, os\nos.makedirs("nii")\nfor i in range(2): nib.save(nib.Nifti1Image(np.random.default_rng(i).random((16, 16, 3)).astype(np.float32), np.eye(4)), f"nii/v{i}.nii.gz")';
      ok(run(doctor.environment.python, ['-c', nifti], dir), 'writing NIfTI volumes');
      const enhanced = ok(
        run(process.execPath, [join('out', 'enhance-folder.js'), 'runs/q', 'nii', 'enhanced', TINY], dir),
        'enhance-folder',
      );
      expect(enhanced).toContain('wrote ');
      expect(
        readdirSync(join(dir, 'enhanced'))
          .filter((f) => f.endsWith('.nii.gz'))
          .sort(),
      ).toEqual(['v0.nii.gz', 'v1.nii.gz']);

      ok(run('npx', ['gradprom', 'convert', 'runs/q/checkpoints/last.pt', 'vr.safetensors', '--part', 'vr'], dir), 'convert');
      const table = ok(
        run(
          process.execPath,
          [join('out', 'transfer-table.js'), 'a=enhanced/ip.safetensors,b=enhanced/ip.safetensors', 'v=vr.safetensors', TINY],
          dir,
        ),
        'transfer-table',
      );
      expect(table).toMatch(/\| a \(srresnet\) \| \d+\.\d\d \|/);
      // The run's own final PSNR is the IP's row: the same weights on the same test split.
      const row = /\| a \(srresnet\) \| (\d+\.\d\d) \|/.exec(table)!;
      expect(Number(row[1])).toBeCloseTo(clonePsnr, 1);

      // A corrupt weights file: the reason reaches the user whole, not an empty `gradprom: `.
      writeFileSync(join(dir, 'junk.pt'), 'not a checkpoint');
      const junk = run('npx', ['gradprom', 'inspect', 'junk.pt'], dir);
      expect(junk.status).toBe(1);
      expect(junk.stderr).toMatch(/gradprom: sidecar op .*inspect_checkpoint.* failed: \w+Error: .*junk\.pt/);
    },
    LONG,
  );
});
