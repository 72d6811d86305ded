/**
 * gradprom as a user meets it: the packed tarball installed into an empty project (with install scripts, and without
 * them followed by `npx gradprom setup`), the examples type-checked with `tsc --strict` against it, and tiny runs
 * on the shared environment whose final PSNR equals the same run from the clone. The registry serves the
 * dependencies (from npm's cache when it can).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from '../helpers.js';
import { TINY as RELIABILITY_TINY, tempDir } from '../reliability/harness.js';

const LONG = 30 * 60_000; // a first install makes the shared environment (pip: minutes)

/** The reliability tests' tiny config, 6 steps with an evaluation and a checkpoint every 3, as the examples' JSON argument. */
const TINY = JSON.stringify({ ...RELIABILITY_TINY, train: { ...RELIABILITY_TINY.train, steps: 6, eval_every: 3, checkpoint_every: 3 } });

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

/** An empty project with gradprom from the tarball and the `extra` packages. */
function project(name: string, scripts: boolean, extra: string[] = []): string {
  const dir = join(tmp.dir, name);
  const allow = { gradprom: true, zeromq: true, koffi: true, 'msgpackr-extract': true };
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', allowScripts: allow }));
  const flags = ['--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', ...(scripts ? [] : ['--ignore-scripts'])];
  const out = ok(run('npm', ['install', ...flags, tarball, ...extra], dir), `npm install in ${name}`);
  if (scripts) expect(out).toMatch(/gradprom: environment ready/);
  return dir;
}

/**
 * The installed `gradprom` command, run as npx runs it (npx itself costs half a second of CPU a call; the documented
 * `npx gradprom setup` still goes through it).
 */
function gradprom(dir: string, ...args: string[]): SpawnSyncReturns<string> {
  return run(join(dir, 'node_modules', '.bin', 'gradprom'), args, dir);
}

/**
 * Copies the examples and type-checks them with `tsc --strict` against the installed package (TypeScript and Node's
 * types installed there), emitting their JavaScript into out/. `extra` files join the examples in src/; the
 * compiler's output is returned, whatever its status.
 */
function compileExamples(dir: string, extra: Record<string, string> = {}): SpawnSyncReturns<string> {
  cpSync(join(root, 'examples'), join(dir, 'src'), { recursive: true });
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, 'src', name), text);
  const tsconfig = {
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'out', types: ['node'] },
    include: ['src'],
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
  return run(join(dir, 'node_modules', '.bin', 'tsc'), ['-p', '.'], dir);
}

/**
 * The examples' JavaScript as the clone built it (dist/examples; the test above type-checks them against the installed
 * package), copied into out/: each imports only `gradprom`, which resolves to the project's own install.
 */
function copyBuiltExamples(dir: string): void {
  mkdirSync(join(dir, 'out'));
  for (const f of readdirSync(join(root, 'dist', 'examples')).filter((n) => n.endsWith('.js')))
    cpSync(join(root, 'dist', 'examples', f), join(dir, 'out', f));
}

/** The final PSNR in a run folder's summary.json: its last test evaluation, at full precision. */
function summaryPsnr(runDir: string): number {
  return (JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8')) as { final: { psnr: number } }).final.psnr;
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
      const dir = project('with-scripts', true, ['typescript@^5', '@types/node@^20']);
      // The examples type-check with `tsc --strict`, and a wrong field in a typed config is a compile error naming it:
      // one compile, whose only errors are the wrong file's (tsc still emits the examples' JavaScript).
      const tsc = compileExamples(dir, {
        'wrong.ts': "import { parseConfig } from 'gradprom';\nparseConfig({ train: { stpes: 3 } });\n",
      });
      expect(tsc.status).not.toBe(0);
      const errors = tsc.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.filter((l) => !l.startsWith('src/wrong.ts'))).toEqual([]);
      expect(tsc.stdout).toContain('stpes');
      const r = ok(run(process.execPath, [join('out', 'quickstart.js'), 'runs/q', TINY], dir), 'the quickstart example');
      expect(psnrOf(r)).toBeCloseTo(clonePsnr, 6);
    },
    LONG,
  );

  it(
    'installs without scripts; `npx gradprom setup` then makes it run the same',
    () => {
      const dir = project('no-scripts', false);
      copyBuiltExamples(dir);
      ok(run('npx', ['gradprom', 'setup'], dir), 'gradprom setup');

      // Every example runs at a tiny size from the project: a λ sweep, enhancing NIfTI files, the transfer table. The
      // sweep's λ = 1 run is the quickstart's run (the same config: gradprom, λ = 1), so its final PSNR is the clone's.
      const sweep = ok(run(process.execPath, [join('out', 'lambda-sweep.js'), 'runs/sweep', TINY, '1,2'], dir), 'the λ sweep');
      expect(sweep).toMatch(/\| 1 \| \d+% \| \d+\.\d\d \|/);
      expect(sweep).toMatch(/\| 2 \| \d+% \| \d+\.\d\d \|/);
      const q = 'runs/sweep/lambda-1';
      expect(summaryPsnr(join(dir, q))).toBeCloseTo(clonePsnr, 6);

      // The environment the runs used is the shared one, as the install with scripts left it.
      const doctor = JSON.parse(ok(gradprom(dir, 'doctor', '--json'), 'doctor')) as { environment: { source: string; python: string } };
      expect(doctor.environment.source).toBe('shared');
      const nifti =
        'import numpy as np, nibabel as nib, os\nos.makedirs("nii")\nfor i in range(2): nib.save(nib.Nifti1Image(np.random.default_rng(i).random((16, 16, 3)).astype(np.float32), np.eye(4)), f"nii/v{i}.nii.gz")';
      ok(run(doctor.environment.python, ['-c', nifti], dir), 'writing NIfTI volumes');
      const enhanced = ok(run(process.execPath, [join('out', 'enhance-folder.js'), q, 'nii', 'enhanced', TINY], dir), 'enhance-folder');
      expect(enhanced).toContain('wrote ');
      expect(
        readdirSync(join(dir, 'enhanced'))
          .filter((f) => f.endsWith('.nii.gz'))
          .sort(),
      ).toEqual(['v0.nii.gz', 'v1.nii.gz']);

      ok(gradprom(dir, 'convert', join(q, 'checkpoints', 'last.pt'), 'vr.safetensors', '--part', 'vr'), 'convert');
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
      const junk = gradprom(dir, 'inspect', 'junk.pt');
      expect(junk.status).toBe(1);
      expect(junk.stderr).toMatch(/gradprom: sidecar op .*inspect_checkpoint.* failed: \w+Error: .*junk\.pt/);
    },
    LONG,
  );
});
