/** `gradprom validate`: every preset in configs/ parses and resolves; the files a config names are looked for, nothing trained. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { validateConfig } from 'gradprom';
import { root } from '../helpers.js';
import { tempDir } from '../reliability/harness.js';

const bin = join(root, 'bin', 'gradprom.js');

function gradprom(cwd: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000, cwd });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every config file under configs/, at any depth. */
function presets(): string[] {
  const dir = join(root, 'configs');
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .map((f) => relative(root, join(dir, f)))
    .sort();
}

describe('gradprom validate', () => {
  it('finds the presets: the demo, ESTR (9 training + 3 evaluation) and the paper regimes', () => {
    const files = presets();
    expect(files).toContain('configs/demo.yaml');
    expect(files.filter((f) => f.startsWith('configs/estr/'))).toHaveLength(12);
    expect(files.filter((f) => f.startsWith('configs/paper/')).length).toBeGreaterThanOrEqual(4);
  });

  // In this process, through the function the command calls (a command per preset would start Node 30 times); the
  // command itself is run by the tests below.
  it.each(presets())('%s is a valid config, and the files it names are listed', async (file) => {
    const v = await validateConfig(file);
    expect(v.ok ? [] : v.issues).toEqual([]);
    // Every data set read from files names them: its folder, or its volume (a lone NIfTI has no folder).
    if (v.resolved!.data.kind !== 'synthetic')
      expect(v.files.map((f) => f.field)).toContainEqual(expect.stringMatching(/^data\.(path|image)$/));
  });

  it('says what is missing, and with --require-files exits 2 for it', () => {
    const r = gradprom(root, 'validate', '--config', 'configs/estr/sr4-ra.yaml');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/data\.path\s+MISSING\s+\S*data\/imagenet/);
    expect(r.stdout).toMatch(/vr\.weights\s+MISSING\s+\S*resnet18-f37072fd\.pth/);
    expect(gradprom(root, 'validate', '--config', 'configs/estr/sr4-ra.yaml', '--require-files').code).toBe(2);
  });

  it('a lone NIfTI volume: its image, label volume and label table are listed (the table relative to the working folder)', () => {
    const r = gradprom(root, 'validate', '--config', 'configs/examples/brain-mri.yaml', '--json');
    const v = JSON.parse(r.stdout) as { files: { field: string; path: string; status: string }[] };
    expect(v.files.map((f) => f.field)).toEqual(['data.image', 'data.label_volume', 'data.label_map']);
    expect(v.files[2]).toMatchObject({ path: join(root, 'configs', 'examples', 'brain-mri-regions.csv'), status: 'ok' });
  });

  it('passes --require-files when everything named is there, relative to the working folder', () => {
    const tmp = tempDir('gradprom-validate-');
    try {
      mkdirSync(join(tmp.dir, 'data', 'imagenet', 'train'), { recursive: true });
      mkdirSync(join(tmp.dir, 'data', 'imagenet', 'val'));
      mkdirSync(join(tmp.dir, 'weights', 'torchvision'), { recursive: true });
      writeFileSync(join(tmp.dir, 'weights', 'torchvision', 'resnet18-f37072fd.pth'), '');
      const r = gradprom(tmp.dir, 'validate', '--config', join(root, 'configs', 'estr', 'sr4-ra.yaml'), '--require-files');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/all 4 named files and folders are there/);
      writeFileSync(join(tmp.dir, 'data', 'imagenet', 'val2'), '');
      const wrong = gradprom(
        tmp.dir,
        'validate',
        '--config',
        join(root, 'configs', 'estr', 'sr4-ra.yaml'),
        '--set',
        'data.folders.val=val2',
      );
      expect(wrong.stdout).toMatch(/data\.folders\.val\s+NOT A FOLDER/);
    } finally {
      tmp.remove();
    }
  });

  it('an invalid config: exit 2, one line per issue with its path', () => {
    const tmp = tempDir('gradprom-validate-');
    try {
      writeFileSync(join(tmp.dir, 'bad.yaml'), 'data: {kind: imagefolder, path: x, size: 224, resize: 200}\nip: {arch: estr}\n');
      const r = gradprom(tmp.dir, 'validate', '--config', 'bad.yaml');
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/data\.resize: expected at least data\.size \(224\)/);
      expect(r.stderr).toMatch(/ip\.arch: expected one of .*"estr_srresnet"/);
      expect(gradprom(tmp.dir, 'validate').code).toBe(2); // --config is required
    } finally {
      tmp.remove();
    }
  });
});
