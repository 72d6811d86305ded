/**
 * `gradprom eval` with configs/estr/eval-dn.yaml on ImageNet's val split as downloaded (a flat folder of JPEGs and
 * LOC_val_solution.csv, here generated and small): the split is streamed with progress lines, and one --ip with one --vr
 * gives the numbers the transfer table gives for the same networks.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TransferTable } from 'gradprom';
import { root, runGradprom, writeFixtures } from '../helpers.js';
import { tempDir } from '../reliability/harness.js';

const PRESET = join(root, 'configs', 'estr', 'eval-dn.yaml');
let tmp: ReturnType<typeof tempDir>;

const gradprom = (...args: string[]) => runGradprom(tmp.dir, ...args);

// data/imagenet/val/ILSVRC2012_val_<k>.JPEG (7 images, 3 wnids) and data/imagenet/LOC_val_solution.csv, where the preset
// looks for them; a small srresnet and smallresnet (the preset's own networks are too slow for a test at 224 px).
const WRITER = `
import sys
from pathlib import Path
import numpy as np, torch
from PIL import Image
from gradprom_sidecar.training.config import resolve
from gradprom_sidecar.models import build_ip, build_vr

out = Path(sys.argv[1])
val = out / "data" / "imagenet" / "val"
val.mkdir(parents=True)
rng = np.random.default_rng(5)
wnids = ["n01440764", "n01443537", "n01484850"]
rows = []
for k in range(1, 8):
    w, h = (300, 240) if k % 2 else (240, 300)
    small = rng.integers(0, 256, (h // 6, w // 6, 3), dtype=np.uint8)
    Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BICUBIC).save(val / f"ILSVRC2012_val_{k:08d}.JPEG", quality=90)
    rows.append(f"ILSVRC2012_val_{k:08d},{wnids[k % 3]} 10 20 200 220")
(out / "data" / "imagenet" / "LOC_val_solution.csv").write_text("ImageId,PredictionString\\n" + "\\n".join(rows) + "\\n")
torch.manual_seed(0)
d = resolve({})
torch.save(build_ip({**d["ip"], "arch": "srresnet", "channels": 4, "blocks": 1, "scale": 1, "in_channels": 3}).state_dict(), out / "ip.pt")
vr = {**d["vr"], "arch": "smallresnet", "normalize": "imagenet", "kwargs": {"widths": [4, 8, 8]}}
torch.save(build_vr(vr, 3, 3).state_dict(), out / "vr.pt")
`;

const SMALL = ['--set', 'vr.kwargs.widths=[4, 8, 8]', '--set', 'eval.batch_size=3'];

beforeAll(() => {
  tmp = tempDir('gradprom-eval-stream-');
  writeFixtures(tmp.dir, WRITER);
}, 120_000);
afterAll(() => tmp.remove());

describe('gradprom eval on ImageNet val as downloaded', () => {
  it('streams the split with progress lines and gives the transfer table numbers', () => {
    const args = ['--config', PRESET, '--split', 'val', '--ip', 'srresnet:ip.pt', '--vr', 'smallresnet:vr.pt', ...SMALL];
    const single = gradprom('eval', ...args, '--verbose', '--out', 'single');
    expect(single.code).toBe(0);
    expect(single.stderr).toMatch(/eval val: 7\/7 images, [\d.]+ images\/s, peak memory \d+ MB/);
    const m = JSON.parse(readFileSync(join(tmp.dir, 'single', 'eval.json'), 'utf8')) as Record<string, number>;
    expect(m.n).toBe(7);
    expect(single.stdout).toContain('| images (n=7) |');
    const table = gradprom('eval', ...args, '--table', '--json');
    expect(table.code).toBe(0);
    const t = JSON.parse(table.stdout) as TransferTable;
    const [clean, degraded, enhanced] = t.rows;
    expect(t.n).toBe(7);
    expect(m.psnr).toBe(enhanced!.psnr);
    expect(m.ssim).toBe(enhanced!.ssim);
    expect(m.psnr_degraded).toBe(degraded!.psnr);
    expect(m.ssim_degraded).toBe(degraded!.ssim);
    expect(m.fixed_clean_acc).toBeCloseTo(clean!.top1.smallresnet!, 6);
    expect(m.fixed_enhanced_acc).toBeCloseTo(enhanced!.top1.smallresnet!, 6);
  }, 600_000);

  it('names an image that cannot be read', () => {
    writeFileSync(join(tmp.dir, 'data', 'imagenet', 'val', 'ILSVRC2012_val_00000004.JPEG'), 'not a jpeg');
    const r = gradprom('eval', '--config', PRESET, '--split', 'val', '--ip', 'srresnet:ip.pt', '--vr', 'smallresnet:vr.pt', ...SMALL);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ILSVRC2012_val_00000004\.JPEG: unreadable or corrupt image/);
  }, 240_000);
});
