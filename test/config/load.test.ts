/**
 * loadConfig: JSON and YAML files, `--set` overrides, and file problems reported as issues (never thrown).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config, type ConfigResult } from 'gradprom';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradprom-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function ok(r: ConfigResult): Config {
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

function issues(r: ConfigResult) {
  if (r.ok) throw new Error('expected issues');
  return r.issues;
}

describe('files', () => {
  test('YAML', async () => {
    const path = await file('a.yaml', 'seed: 3\npolicy:\n  name: joint\n  lambda: 1e-3\ndegradation:\n  - {kind: poisson, peak: 10}\n');
    const c = ok(await loadConfig(path, []));
    expect(c.seed).toBe(3);
    expect(c.policy).toMatchObject({ name: 'joint', lambda: 0.001, granularity: 'global' });
    expect(c.degradation).toEqual([{ kind: 'poisson', peak: 10 }]);
  });

  test('JSON (.json) and an empty YAML file', async () => {
    expect(ok(await loadConfig(await file('b.json', '{"train": {"steps": 5}}'), [])).train.steps).toBe(5);
    expect(ok(await loadConfig(await file('empty.yml', ''), [])).seed).toBe(0);
    expect(ok(await loadConfig(null, [])).policy.name).toBe('gradprom');
  });

  test('bad YAML is a file issue with the line', async () => {
    const path = await file('bad.yaml', 'seed: 1\ntrain:\n  steps: [1, 2\n  lr: 3\n');
    const [issue] = issues(await loadConfig(path, []));
    expect(issue).toMatchObject({ code: 'file', path: '' });
    expect(issue!.message).toContain(path);
    expect(issue!.message).toMatch(/line [34]/);
  });

  test('duplicate YAML keys and bad JSON are file issues', async () => {
    expect(issues(await loadConfig(await file('dup.yaml', 'seed: 1\nseed: 2\n'), []))[0]!.message).toMatch(/line 2/);
    expect(issues(await loadConfig(await file('bad.json', '{"seed": 1,\n "x": }'), []))[0]).toMatchObject({ code: 'file' });
    expect(issues(await loadConfig(await file('bad2.json', '{"seed": 1,\n "x" 2}'), []))[0]!.message).toMatch(/line 2/);
  });

  test('a missing file, an unknown extension, a non-mapping top level', async () => {
    const missing = issues(await loadConfig(join(dir, 'nope.yaml'), []))[0]!;
    expect(missing).toMatchObject({ code: 'file' });
    expect(missing.message).toMatch(/nope\.yaml: file not found/);
    expect(issues(await loadConfig(await file('c.toml', 'a = 1'), []))[0]!.message).toMatch(/unsupported extension/);
    expect(issues(await loadConfig(await file('list.yaml', '- 1\n- 2\n'), []))[0]!.message).toMatch(/must be a mapping, got a list/);
  });

  test('schema issues from a file carry their paths', async () => {
    const path = await file('typo.yaml', 'train:\n  policy:\n    threshold: x\n');
    expect(issues(await loadConfig(path, []))).toEqual([expect.objectContaining({ code: 'unrecognized_key', path: 'train.policy' })]);
  });
});

describe('--set overrides', () => {
  test('number, string, boolean, null, nested and array values', async () => {
    const c = ok(
      await loadConfig(null, [
        'train.steps=50',
        'policy.name=soft',
        'data.augment.flip=true',
        'output.name=run-1',
        'eval.limit=null',
        'data.label_columns=[MEL, NV, BCC]',
        'train.ip_optim.lr=2e-4',
        'device=cuda:0',
      ]),
    );
    expect(c.train.steps).toBe(50);
    expect(c.policy.name).toBe('soft');
    expect(c.data.augment.flip).toBe(true);
    expect(c.output.name).toBe('run-1');
    expect(c.eval.limit).toBeNull();
    expect(c.data.label_columns).toEqual(['MEL', 'NV', 'BCC']);
    expect(c.train.ip_optim.lr).toBe(2e-4);
    expect(c.device).toBe('cuda:0');
  });

  test('sets apply over the file, into array entries, into null sections, and replace arrays', async () => {
    const path = await file('base.yaml', 'train: {steps: 10}\n');
    const c = ok(
      await loadConfig(path, [
        'train.batch_size=4',
        'degradation.0.sigma=0.1',
        'degradation.1.kind=poisson',
        'data.window.center=40',
        'data.window.width=400',
      ]),
    );
    expect(c.train).toMatchObject({ steps: 10, batch_size: 4 });
    expect(c.degradation).toEqual([
      { kind: 'gaussian', sigma: 0.1, clip: false, seeding: 'data-seed' },
      { kind: 'poisson', peak: 30 },
    ]);
    expect(c.data.window).toEqual({ center: 40, width: 400 });
    const replaced = ok(await loadConfig(null, ['degradation=[{kind: downsample, scale: 4}]', 'ip.scale=4']));
    expect(replaced.degradation).toEqual([{ kind: 'downsample', scale: 4, method: 'torch' }]);
  });

  test('a set value of the wrong type is reported at its path', async () => {
    expect(issues(await loadConfig(null, ['policy.threshold=x']))).toEqual([
      { code: 'invalid_type', path: 'policy.threshold', message: 'expected number, got "x"' },
    ]);
  });

  test('a renamed key is refused naming its new key, from a file and from a set', async () => {
    const path = await file('old.yaml', 'train:\n  transport: vectors\n');
    expect(issues(await loadConfig(path, []))).toEqual([expect.objectContaining({ code: 'renamed_key', path: 'train.transport' })]);
    const set = issues(await loadConfig(null, ['data.labels=seg.nii.gz']));
    expect(set).toEqual([
      expect.objectContaining({ code: 'renamed_key', path: 'data.labels', message: expect.stringContaining('data.label_volume') }),
    ]);
  });

  test("malformed sets are 'set' issues", async () => {
    const found = issues(await loadConfig(null, ['train.steps', 'seed.x=1', 'degradation.5.sigma=1', 'a..b=1', '__proto__.x=1', 'x=[1,']));
    expect(found.map((i) => [i.code, i.path])).toEqual([
      ['set', 'train.steps'],
      ['set', 'seed.x'],
      ['set', 'degradation.5.sigma'],
      ['set', 'a..b'],
      ['set', '__proto__.x'],
      ['set', 'x'],
    ]);
    expect(found[1]!.message).toBe('--set seed.x=1: seed is 0, not a mapping or list');
  });
});
