/** Data kinds through the front door: a config file read by loadConfig, then session.create in a real sidecar. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGradpromError, loadConfig, RemoteSession, Sidecar, silentLogger } from 'gradprom';
import { realPython, root } from '../helpers.js';

const LONG = 300_000;

/** Writes the data sets with the Python test helpers (PNG, DICOM, NIfTI), none of them with a labels.csv. */
const MAKE = `
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "python/tests")
from test_data import save, rand_img, write_dcm
from test_volumes import subjects, write_series
out = Path(sys.argv[1])
for i in range(10):
    save(out / "folder" / f"im{i}.png", rand_img(20, 20, rgb=False, seed=i))
    write_dcm(out / "dicom" / f"s{i}.dcm", (rand_img(16, 16, rgb=False, seed=i) * 16).astype(np.uint16))
subjects(out / "nifti", 5)
write_series(out / "series", np.random.default_rng(0).integers(0, 4000, (12, 10, 10)).astype(np.uint16))
`;

let dir: string;
let sidecar: Sidecar;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-kinds-'));
  const r = spawnSync(realPython, ['-c', MAKE, dir], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PYTHONPATH: join(root, 'python') },
  });
  if (r.status !== 0) throw new Error(r.stderr);
  sidecar = await Sidecar.start({ device: 'cpu', logger: silentLogger });
}, LONG);
afterAll(async () => {
  await sidecar?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function create(data: Record<string, unknown>, vr: Record<string, unknown> = { mode: 'unsupervised' }) {
  const file = join(dir, `${String(data.kind)}.json`);
  writeFileSync(
    file,
    JSON.stringify({ device: 'cpu', data: { size: 16, ...data }, vr: { pretrain_steps: 0, ...vr }, ip: { channels: 4, blocks: 1 } }),
  );
  const loaded = await loadConfig(file);
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  expect(loaded.config.data.labels_csv).toBeNull();
  return RemoteSession.create(sidecar, loaded.config);
}

describe('data sets without a labels.csv (labels_csv null: labels.csv when present)', () => {
  it.each([
    ['folder', 10],
    ['dicom', 10],
  ])(
    'a %s set is read as unlabelled',
    async (kind, n) => {
      const s = await create({ kind, path: join(dir, String(kind)) });
      expect(s.info.data.train + s.info.data.val + s.info.data.test).toBe(n);
    },
    LONG,
  );

  it(
    'a named labels_csv that does not exist is still an error naming the file',
    async () => {
      const file = join(dir, 'named.json');
      writeFileSync(
        file,
        JSON.stringify({ device: 'cpu', data: { kind: 'folder', path: join(dir, 'folder'), labels_csv: 'nope.csv', size: 16 } }),
      );
      const loaded = await loadConfig(file);
      if (!loaded.ok) throw new Error('config refused');
      const err = await RemoteSession.create(sidecar, loaded.config).catch((e: unknown) => e);
      expect(isGradpromError(err, 'SIDECAR_ERROR')).toBe(true);
      expect((err as Error).message).toContain('nope.csv: cannot read labels CSV');
    },
    LONG,
  );
});

describe('volume kinds', () => {
  it(
    'nifti: images/ + labels/ become slices split by subject, segmentable by a UNet VR',
    async () => {
      const s = await create({ kind: 'nifti', path: join(dir, 'nifti'), drop_empty: true }, { arch: 'unet', task: 'segment' });
      const d = s.info.data;
      expect(d.train).toBeGreaterThan(0);
      expect(d.val).toBeGreaterThan(0);
      expect(d.test).toBeGreaterThan(0);
      expect(d.num_classes).toBe(10); // label ids 5 and 9 kept as they are, background 0
    },
    LONG,
  );

  it(
    'dicom-series: one series folder becomes slabs of slices',
    async () => {
      const s = await create({ kind: 'dicom-series', path: join(dir, 'series'), slab_gap: 1 });
      expect(s.info.data.train + s.info.data.val + s.info.data.test).toBe(12 - 2);
    },
    LONG,
  );
});
