/** The command line as a user meets it: help, config errors, exit codes (runs the built bin/gradprom.js). */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root } from '../helpers.js';

function gradprom(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'gradprom.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('gradprom CLI', () => {
  it.each(['train', 'compare', 'eval', 'enhance', 'doctor', 'inspect', 'convert', 'validate'])('%s --help describes the command', (cmd) => {
    const r = gradprom(cmd, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`Usage: gradprom ${cmd}`));
  });

  it('lists the commands and exit codes in the top-level help', () => {
    const r = gradprom('--help');
    expect(r.code).toBe(0);
    for (const cmd of ['train', 'compare', 'eval', 'enhance', 'doctor', 'inspect', 'convert', 'validate']) expect(r.stdout).toContain(cmd);
    expect(r.stdout).toMatch(/Exit codes/);
  });

  it('reports a bad config value with its path and exits 2 before any work starts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gradprom-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'train:\n  batch_size: "x"\npolicy:\n  name: magic\n');
    const r = gradprom('train', '--config', file, '--out', join(dir, 'run'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/train\.batch_size/);
    expect(r.stderr).toMatch(/policy\.name/);
  });

  it('reports a bad --set with its path', () => {
    const r = gradprom('train', '--set', 'train.steps=-3');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/train\.steps/);
  });

  it('refuses an unknown flag with exit 2', () => {
    expect(gradprom('train', '--no-such-flag').code).toBe(2);
  });

  it('refuses unknown policies in compare', () => {
    const r = gradprom('compare', '--policies', 'gradprom,magic');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/magic/);
  });

  it("eval reproduces a run's test metrics from its checkpoint given as --ip and --vr weights", () => {
    const dir = mkdtempSync(join(tmpdir(), 'gradprom-cli-'));
    try {
      const config = join(dir, 'tiny.yaml');
      writeFileSync(
        config,
        'device: cpu\ndata: {counts: {train: 64, val: 16, test: 32}}\nip: {channels: 8, blocks: 1}\nvr: {pretrain_steps: 5}\n' +
          'train: {steps: 4, batch_size: 8, tensorboard: false}\noutput: {plots: false}\n', // runner.test.ts checks the plots
      );
      const run = join(dir, 'run');
      expect(gradprom('train', '--config', config, '--out', run, '--quiet').code).toBe(0);
      const ckpt = join(run, 'checkpoints', 'last.pt');
      const r = gradprom('eval', '--config', config, '--ip', ckpt, '--vr', ckpt, '--json');
      expect(r.code).toBe(0);
      const metrics = JSON.parse(r.stdout) as { psnr: number; n: number };
      const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8')) as { final: { psnr: number } };
      expect(metrics.n).toBe(32);
      expect(metrics.psnr).toBeCloseTo(summary.final.psnr, 6);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('doctor reports torch and the protocol', () => {
    const r = gradprom('doctor', '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { python: { torch: string; protocol: number }; node: { protocol: number } };
    expect(report.python.torch).toMatch(/^\d+\.\d+/);
    expect(report.python.protocol).toBe(report.node.protocol);
  });
});
