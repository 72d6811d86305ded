/**
 * Bad volume inputs through `gradprom train --resume`: a damaged NIfTI, a label volume moved to another grid, a DICOM series folder
 * that gained a second series. Each is refused (exit 1) with a message naming the file, and the run folder stays byte-for-byte as it was.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realPython, root, snapshot } from '../helpers.js';

const LONG = 600_000;

function gradprom(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'gradprom.js'), ...args], {
    encoding: 'utf8',
    timeout: LONG,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  return { code: r.status, stderr: r.stderr };
}

function python(script: string, ...args: string[]): void {
  const r = spawnSync(realPython, ['-c', script, ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PYTHONPATH: join(root, 'python') },
  });
  if (r.status !== 0) throw new Error(r.stderr);
}

// The inputs, and (in spare/) the bad versions the tests later copy over them: one Python process (torch, seconds of
// CPU) makes them all.
const MAKE = `
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "python/tests")
from test_data import write_dcm
from test_volumes import brain, save_nii, write_series
out = Path(sys.argv[1])
img, lab = brain((16, 16, 40))
save_nii(out / "vol" / "t1.nii.gz", img)
save_nii(out / "vol" / "seg.nii.gz", lab)
save_nii(out / "spare" / "seg.nii.gz", lab, affine=np.eye(4))
write_series(out / "series", np.random.default_rng(0).integers(0, 4000, (20, 16, 16)).astype(np.uint16), uid="1.2.3.1")
write_dcm(out / "spare" / "stray.dcm", np.zeros((16, 16)), SeriesInstanceUID="1.2.3.2")
`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-volbad-'));
  python(MAKE, dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A two-step run; `full` keeps its TensorBoard events and plots (a Python process and a second of CPU) in the folder. */
function tinyRun(name: string, data: Record<string, unknown>, vr: Record<string, unknown>, full: boolean): string {
  const cfg = join(dir, `${name}.json`);
  const config = {
    device: 'cpu',
    data: { size: 16, slab_gap: 1, ...data },
    ip: { channels: 4, blocks: 1 },
    vr: { pretrain_steps: 2, ...vr },
    train: { steps: 2, batch_size: 4, eval_every: 0, checkpoint_every: 0, tensorboard: full },
    output: { plots: full },
  };
  writeFileSync(cfg, JSON.stringify(config));
  const run = join(dir, `run-${name}`);
  const r = gradprom('train', '--config', cfg, '--out', run, '--quiet');
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return run;
}

describe('bad volumes leave the run folder untouched', () => {
  it(
    'a truncated NIfTI and a label volume on another grid',
    () => {
      const vol = join(dir, 'vol');
      const run = tinyRun(
        'nifti',
        { kind: 'nifti', image: join(vol, 't1.nii.gz'), label_volume: join(vol, 'seg.nii.gz') },
        { arch: 'unet', task: 'segment' },
        true,
      );
      const before = snapshot(run);
      expect(Object.keys(before).some((f) => f.startsWith('tensorboard/events.out.tfevents'))).toBe(true);
      expect(Object.keys(before).some((f) => f.startsWith('plots/') && f.endsWith('.svg'))).toBe(true);

      const good = readFileSync(join(vol, 't1.nii.gz'));
      writeFileSync(join(vol, 't1.nii.gz'), good.subarray(0, good.length >> 1));
      let r = gradprom('train', '--resume', run, '--quiet');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${join(vol, 't1.nii.gz')}: not a readable NIfTI volume (truncated or not NIfTI?)`);
      expect(snapshot(run)).toEqual(before);

      writeFileSync(join(vol, 't1.nii.gz'), good);
      copyFileSync(join(dir, 'spare', 'seg.nii.gz'), join(vol, 'seg.nii.gz')); // the same labels, another affine
      r = gradprom('train', '--resume', run, '--quiet');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${join(vol, 'seg.nii.gz')}: label volume is not on the grid of its image ${join(vol, 't1.nii.gz')}`);
      expect(snapshot(run)).toEqual(before);
    },
    LONG,
  );

  it(
    'a DICOM series folder that now mixes two series',
    () => {
      const series = join(dir, 'series');
      const run = tinyRun('series', { kind: 'dicom-series', path: series }, { mode: 'unsupervised' }, false);
      const before = snapshot(run);
      copyFileSync(join(dir, 'spare', 'stray.dcm'), join(series, 'stray.dcm'));
      const r = gradprom('train', '--resume', run, '--quiet');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${series}: mixes 2 series (SeriesInstanceUID '1.2.3.1' and '1.2.3.2')`);
      expect(snapshot(run)).toEqual(before);
    },
    LONG,
  );
});
