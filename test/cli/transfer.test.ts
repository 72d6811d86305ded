/**
 * The transfer table end to end, as a user reproducing ESTR meets it: a class-folder data set, ESTR-style whole pickled
 * processing models (legacy and zip formats, written from a class that exists only in the writing script), their
 * safetensors conversion, and torchvision-style recognizers, through `gradprom convert` and `gradprom eval`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TransferTable } from 'gradprom';
import { runGradprom, writeFixtures } from '../helpers.js';
import { tempDir } from '../reliability/harness.js';

let tmp: ReturnType<typeof tempDir>;

const gradprom = (...args: string[]) => runGradprom(tmp.dir, ...args);

// Writes the fixture: 6 classes (2 val and 1 train image each), ESTR-like processing models and recognizers.
const WRITER = `
import math, sys, types
import numpy as np, torch
from torch import nn
from PIL import Image
from gradprom_sidecar.training.config import resolve
from gradprom_sidecar.models import build_ip, build_vr

out = sys.argv[1]
rng = np.random.default_rng(2)
for split, count in (("train", 1), ("val", 2)):
    for c in range(6):
        d = f"{out}/data/{split}/class{c}"
        __import__("os").makedirs(d)
        for k in range(count):
            Image.fromarray(rng.integers(0, 256, (40, 44, 3), dtype=np.uint8), "RGB").save(f"{d}/{k}.png")

# ESTR's network as its own module (model_sr) defines it; the module exists only in this script.
SRC = '''
import math, torch
from torch import nn
class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1, self.prelu = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.PReLU()
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
class ResNet(nn.Module):
    def __init__(self, upscale_factor, channel):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(channel, 64, 9, padding=4), nn.PReLU())
        self.block2, self.block3, self.block4, self.block5, self.block6 = (ResidualBlock(64) for _ in range(5))
        self.block7 = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.PReLU())
        self.block8 = nn.Sequential(nn.Conv2d(64, 3, 9, padding=4))
'''
mod = types.ModuleType("model_sr")
exec(SRC, mod.__dict__)
sys.modules["model_sr"] = mod
torch.manual_seed(0)
net = mod.ResNet(1, 3)
torch.save(nn.DataParallel(net), f"{out}/ip_legacy.pth", _use_new_zipfile_serialization=False)
torch.save(nn.DataParallel(net), f"{out}/ip_zip.pth")
other = build_ip({**resolve({})["ip"], "arch": "estr_srresnet", "in_channels": 3, "scale": 1})
torch.save(other.state_dict(), f"{out}/plain.pt")
vr = {**resolve({})["vr"], "normalize": "imagenet"}
torch.save(build_vr({**vr, "arch": "resnet18"}, 3, 6).state_dict(), f"{out}/resnet18.pth")
torch.save(build_vr({**vr, "arch": "densenet121"}, 3, 6).state_dict(), f"{out}/densenet121.pth")
`;

const CONFIG = `
device: cpu
data: {kind: imagefolder, path: data, size: 32, resize: 36, channels: 3}
degradation: [{kind: gaussian, sigma: 0.1, clip: true}]
ip: {arch: estr_srresnet}
vr: {arch: resnet18, normalize: imagenet}
eval: {batch_size: 5, psnr: batch, ssim: pytorch_ssim}
`;

beforeAll(() => {
  tmp = tempDir('gradprom-transfer-');
  writeFileSync(join(tmp.dir, 'estr-eval.yaml'), CONFIG);
  writeFixtures(tmp.dir, WRITER);
}, 120_000);
afterAll(() => tmp.remove());

describe('reproducing with existing weights', () => {
  it('convert writes a whole pickled legacy model as safetensors, saying how it was read', () => {
    const r = gradprom('convert', 'ip_legacy.pth', 'ip_converted.safetensors', '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { tensors: number; notes: string[] };
    expect(info.tensors).toBe(83);
    expect(info.notes.join(' ')).toMatch(/whole pickled model.*nothing the file names was imported or run/);
    expect(gradprom('convert', 'ip_legacy.pth', 'ip.pt').code).toBe(2);
    expect(gradprom('convert', 'absent.pth', 'x.safetensors').code).toBe(2);
  }, 120_000);

  it('eval with several --ip and --vr writes the transfer table (markdown and JSON)', () => {
    const r = gradprom(
      'eval',
      '--config',
      'estr-eval.yaml',
      '--ip',
      'legacy=estr_srresnet:ip_legacy.pth',
      '--ip',
      'zip=ip_zip.pth',
      '--ip',
      'converted=estr_srresnet:ip_converted.safetensors',
      '--ip',
      'plain.pt',
      '--vr',
      'resnet18:resnet18.pth',
      '--vr',
      'densenet121:densenet121.pth',
      '--split',
      'val',
      '--out',
      'table',
      '--reference',
      'dn',
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/ip_legacy\.pth: a whole pickled model/); // the note in the log
    const t = JSON.parse(readFileSync(join(tmp.dir, 'table', 'transfer.json'), 'utf8')) as TransferTable;
    expect(t.n).toBe(12);
    expect(t.topk).toEqual([1, 5]);
    expect(t.recognizers.map((v) => v.label)).toEqual(['resnet18', 'densenet121']);
    expect(t.rows.map((row) => row.label)).toEqual(['clean', 'degraded input', 'legacy', 'zip', 'converted', 'plain']);
    const [clean, degraded, legacy, zip, converted, plain] = t.rows;
    expect(clean!.psnr).toBeNull();
    expect(degraded!.psnr).toBeGreaterThan(15);
    // One model in three files: the same row, to the bit.
    for (const row of [zip!, converted!]) {
      expect(row.psnr).toBe(legacy!.psnr);
      expect(row.ssim).toBe(legacy!.ssim);
      expect(row.top1).toEqual(legacy!.top1);
      expect(row.top5).toEqual(legacy!.top5);
    }
    expect(plain!.psnr).not.toBe(legacy!.psnr);
    for (const row of t.rows) {
      for (const v of ['resnet18', 'densenet121']) {
        expect(row.top1[v]).toBeGreaterThanOrEqual(0);
        expect(row.top5![v]).toBeGreaterThanOrEqual(row.top1[v]!);
      }
    }
    const md = readFileSync(join(tmp.dir, 'table', 'transfer.md'), 'utf8');
    expect(md).toMatch(/\| processing model \| PSNR \(dB\) \| SSIM \| resnet18 \| densenet121 \|/);
    expect(md).toMatch(/\| degraded input \| \d+\.\d\d \| 0\.\d{4} \| \d+\.\d \/ \d+\.\d \|/);
    expect(md).toMatch(/\| legacy \(estr_srresnet\) \|/);
    expect(md).toContain('zero padding');
    // ESTR's published denoising figures beside the row labelled plain (ResNet-18 61.9, DenseNet-121 66.4).
    expect(md).toMatch(/\| plain \| \d+\.\d \(61\.9\) \| \d+\.\d \(66\.4\) \|/);
    expect(r.stdout.trim()).toBe(md.trim());
  }, 240_000);

  it('eval refuses a missing weights file and a table without a recognizer, before starting anything', () => {
    const missing = gradprom(
      'eval',
      '--config',
      'estr-eval.yaml',
      '--ip',
      'estr_srresnet:nope.pth',
      '--ip',
      'plain.pt',
      '--vr',
      'resnet18.pth',
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.pth');
    const noVr = gradprom('eval', '--config', 'estr-eval.yaml', '--ip', 'plain.pt', '--ip', 'ip_zip.pth');
    expect(noVr.code).toBe(2);
    expect(noVr.stderr).toMatch(/--vr/);
  }, 60_000);
});
