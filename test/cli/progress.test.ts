/** Progress as a user running under nohup, Slurm or CI sees it: stderr piped to a file, so not a terminal. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from '../helpers.js';

const LONG = 600_000;
const TINY =
  'device: cpu\ndata: {counts: {train: 64, val: 16, test: 16}}\nip: {channels: 8, blocks: 1}\nvr: {pretrain_steps: 200}\n' +
  'train: {steps: 12, batch_size: 8, eval_every: 6, checkpoint_every: 6, tensorboard: false}\noutput: {progress_every_s: 0.2, plots: false}\n';

function gradprom(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'gradprom.js'), ...args], { encoding: 'utf8', timeout: LONG });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gradprom-progress-'));
  writeFileSync(join(dir, 'tiny.yaml'), TINY);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('progress when stderr is not a terminal', () => {
  it(
    'train prints every phase and periodic status lines; --quiet prints none',
    () => {
      const r = gradprom('train', '--config', join(dir, 'tiny.yaml'), '--out', join(dir, 'run'));
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      const lines = r.stderr.split('\n');
      expect(lines).toContain('[gradprom] loading data: synthetic ...');
      expect(lines).toContain('[gradprom] loading data: 96 images (train 64, val 16, test 16)');
      expect(lines).toContain('[gradprom] pretraining VR: 200 steps ...');
      expect(r.stderr).toMatch(/\[gradprom\] pretraining VR: \d+\/200\n/); // asked from the sidecar while it pretrains (200 steps take seconds)
      expect(lines.filter((l) => l === '[gradprom] evaluating: val')).toHaveLength(2); // step 0 and step 6
      expect(lines).toContain('[gradprom] evaluating: test');
      expect(lines.filter((l) => l.startsWith('[gradprom] checkpoint written: ')).length).toBeGreaterThanOrEqual(3);
      const status = lines.filter((l) =>
        /^\[gradprom\] run: step \d+\/12 \| L_IP \S+ \| cos -?\d\.\d{3} \| gate \d+% \| \d+ ms\/step \| ETA /.test(l),
      );
      expect(status.length).toBeGreaterThanOrEqual(2);
      expect(status.at(-1)).toContain('step 12/12');

      const quiet = gradprom(
        'train',
        '--config',
        join(dir, 'tiny.yaml'),
        '--out',
        join(dir, 'quiet'),
        '--quiet',
        '--set',
        'vr.pretrain_steps=5',
      );
      expect(quiet.code).toBe(0);
      expect(quiet.stderr).toBe('');
      expect(quiet.stdout).toBe('');
    },
    LONG,
  );

  it(
    'compare says which run of how many it is on',
    () => {
      const r = gradprom(
        'compare',
        '--config',
        join(dir, 'tiny.yaml'),
        '--policies',
        'ip-only,gradprom',
        '--out',
        join(dir, 'cmp'),
        '--set',
        'train.steps=4',
        '--set',
        'vr.pretrain_steps=5',
      );
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stderr).toContain('[gradprom] compare: run 1 of 2: ip-only-s0\n');
      expect(r.stderr).toContain('[gradprom] compare: run 2 of 2: gradprom-l0.003-s0\n');
    },
    LONG,
  );
});
