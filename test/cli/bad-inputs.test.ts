/**
 * Bad inputs through `gradprom train`: each refused with exit code 1 and a message naming what and where, and none
 * touching the results already in the folder (docs/ERRORS.md lists the messages).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RemoteSession, Sidecar, silentLogger } from 'gradprom';
import { realPython, root, snapshot } from '../helpers.js';
import { tempDir, tinyConfig, tinyYaml } from '../reliability/harness.js';

const bin = join(root, 'bin', 'gradprom.js');
let tmp: ReturnType<typeof tempDir>;
let yaml: string;
let goodCheckpoint: string;

function gradprom(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  return { code: r.status, stderr: r.stderr };
}

/** A folder that looks like an interrupted run of `config`, holding `checkpoint` (or none). */
function runFolder(name: string, config: object, checkpoint?: string): string {
  const dir = join(tmp.dir, name);
  mkdirSync(join(dir, 'checkpoints'), { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(
    join(dir, 'metrics.jsonl'),
    '{"type":"pretrain","loss":1,"accuracy":0.5}\n{"type":"eval","step":0,"split":"val","psnr":12}\n',
  );
  if (checkpoint) copyFileSync(checkpoint, join(dir, 'checkpoints', 'last.pt'));
  return dir;
}

beforeAll(async () => {
  tmp = tempDir('gradprom-bad-inputs-');
  yaml = join(tmp.dir, 'tiny.yaml');
  // The tiny config: without a TensorBoard writer, a run that fails on its data starts no second Python process.
  writeFileSync(yaml, tinyYaml());
  // A real checkpoint of the tiny architecture (8 IP channels), without any training.
  goodCheckpoint = join(tmp.dir, 'good.pt');
  const sc = await Sidecar.start({ device: 'cpu', logger: silentLogger });
  try {
    await (await RemoteSession.create(sc, tinyConfig())).save(goodCheckpoint, {});
  } finally {
    await sc.stop();
  }
});
afterAll(() => tmp.remove());

describe('the output folder', () => {
  it('already holding a run: refused, nothing in it touched', () => {
    const dir = runFolder('existing', tinyConfig(), goodCheckpoint);
    const before = snapshot(dir);
    const r = gradprom('train', '--config', yaml, '--out', dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(dir);
    expect(r.stderr).toMatch(/--resume|--force/);
    expect(snapshot(dir)).toEqual(before);
  });

  it('--force renames the old run aside (then a missing data folder stops the new one, naming it)', () => {
    const dir = runFolder('forced', tinyConfig(), goodCheckpoint);
    const before = snapshot(dir);
    const missing = join(tmp.dir, 'no-such-data');
    const r = gradprom('train', '--config', yaml, '--set', 'data.kind=folder', '--set', `data.path=${missing}`, '--out', dir, '--force');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(missing);
    const aside = readdirSync(tmp.dir).filter((n) => n.startsWith('forced.replaced-'));
    expect(aside).toHaveLength(1);
    expect(snapshot(join(tmp.dir, aside[0]!))).toEqual(before);
  });

  it('unwritable (a file where a folder should be; a read-only folder when not root): refused before any work', () => {
    const file = join(tmp.dir, 'a-file');
    writeFileSync(file, 'x');
    const r = gradprom('train', '--config', yaml, '--out', join(file, 'run'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(file, 'run'));
    if (process.getuid?.() !== 0) {
      const ro = join(tmp.dir, 'read-only');
      mkdirSync(ro);
      chmodSync(ro, 0o500);
      try {
        expect(gradprom('train', '--config', yaml, '--out', join(ro, 'run')).code).toBe(1);
      } finally {
        chmodSync(ro, 0o700);
      }
    }
  });

  it('--resume of a folder without a checkpoint: refused, naming the checkpoint path', () => {
    const dir = runFolder('no-checkpoint', tinyConfig());
    const before = snapshot(dir);
    const r = gradprom('train', '--resume', dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, 'checkpoints', 'last.pt'));
    expect(snapshot(dir)).toEqual(before);
  });
});

describe('the checkpoint --resume reads', () => {
  it.each([
    ['of another architecture', (p: string) => copyFileSync(goodCheckpoint, p), { ip: { ...tinyConfig().ip, channels: 16 } }],
    ['truncated', (p: string) => (copyFileSync(goodCheckpoint, p), truncateSync(p, Math.floor(statSync(goodCheckpoint).size / 2))), {}],
    [
      'holding a pickled object',
      (p: string) => {
        const py = `import argparse, pickle; pickle.dump(argparse.Namespace(evil=1), open(${JSON.stringify(p)}, "wb"), protocol=2)`;
        expect(spawnSync(realPython, ['-c', py]).status).toBe(0);
      },
      {},
    ],
  ])('%s: refused (exit 1) naming the file, the run folder untouched', (_what, make, over) => {
    const dir = runFolder(`resume-${_what.replace(/\W+/g, '-')}`, { ...tinyConfig(), ...over });
    make(join(dir, 'checkpoints', 'last.pt'));
    const before = snapshot(dir);
    const r = gradprom('train', '--resume', dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, 'checkpoints', 'last.pt'));
    expect(snapshot(dir)).toEqual(before);
    expect(existsSync(join(dir, 'report.md'))).toBe(false);
  });
});

describe('the data folder', () => {
  it('empty: refused (exit 1) naming the folder, before any checkpoint is written', () => {
    const empty = join(tmp.dir, 'empty-data');
    mkdirSync(empty);
    const out = join(tmp.dir, 'run-on-empty');
    const r = gradprom('train', '--config', yaml, '--set', 'data.kind=folder', '--set', `data.path=${empty}`, '--out', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(empty);
    expect(readdirSync(join(out, 'checkpoints'))).toEqual([]);
  });
});
