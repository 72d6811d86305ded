/** The `distributed` config section, `--nproc`, and the rank error, without starting any rank. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { distributedOptions, isGradpromError, parseConfig, RankExitedError, SidecarExitedError, type ConfigIssue } from 'gradprom';
import { root } from '../helpers.js';

function issues(raw: unknown): ConfigIssue[] {
  const r = parseConfig(raw);
  return r.ok ? [] : r.issues;
}

describe('distributed config', () => {
  it('defaults to one process, which needs no ranks', () => {
    const r = parseConfig({});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.distributed).toEqual({
      nproc: 1,
      backend: 'gloo',
      nnodes: 1,
      master_addr: '127.0.0.1',
      master_port: null,
      timeout_s: 1800,
    });
    expect(distributedOptions(r.config.distributed)).toBeUndefined();
    expect(distributedOptions({ ...r.config.distributed, nproc: 2 })).toMatchObject({ nproc: 2, backend: 'gloo', masterPort: null });
  });

  it('needs a batch the ranks can share equally', () => {
    expect(issues({ distributed: { nproc: 3 }, train: { batch_size: 16 } })).toEqual([
      expect.objectContaining({ code: 'batch_ranks', path: 'train.batch_size', message: expect.stringMatching(/multiple of 3/) }),
    ]);
    expect(issues({ distributed: { nproc: 2, nnodes: 2, master_port: 29500 }, train: { batch_size: 16 } })).toEqual([]);
  });

  it('refuses one pinned GPU for several ranks, nccl on the CPU, and several machines without a port', () => {
    expect(issues({ distributed: { nproc: 2 }, device: 'cuda:1' }).map((i) => i.path)).toEqual(['device']);
    expect(issues({ distributed: { backend: 'nccl' }, device: 'cpu' }).map((i) => i.path)).toEqual(['distributed.backend']);
    expect(issues({ distributed: { nnodes: 2 } }).map((i) => i.path)).toEqual(['distributed.master_port']);
    expect(
      issues({ distributed: { nproc: 0, backend: 'mpi', ranks: 2 } })
        .map((i) => i.path)
        .sort(),
    ).toEqual(['distributed.backend', 'distributed.nproc', 'distributed.ranks']);
  });

  it('--nproc takes a positive integer (exit 2 otherwise)', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'gradprom.js'), 'train', '--nproc', 'two'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--nproc: expected a positive integer/);
    const odd = spawnSync(process.execPath, [join(root, 'bin', 'gradprom.js'), 'train', '--nproc', '3'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(odd.status).toBe(2);
    expect(odd.stderr).toMatch(/train\.batch_size: expected a multiple of 3/);
  });
});

describe('RankExitedError', () => {
  it('names the rank and its last stderr lines, with a code recovery does not restart', () => {
    const e = new RankExitedError(1, 2, null, 'SIGKILL', ['INFO rank 1 of 2 joined']);
    expect(e).toBeInstanceOf(SidecarExitedError);
    expect(isGradpromError(e, 'SIDECAR_RANK_EXITED')).toBe(true);
    expect(isGradpromError(e, 'SIDECAR_EXITED')).toBe(false);
    expect(e.message).toBe('sidecar rank 1 of 2 exited (signal SIGKILL)\n--- last stderr of rank 1 ---\nINFO rank 1 of 2 joined');
    const failed = new RankExitedError(1, 4, 3, null, [], {
      op: 'train.apply',
      type: 'ValueError',
      message: 'args.weights.ip: expected 3 blocks\nmore',
    });
    expect(failed.message).toBe(
      "sidecar rank 1 of 4 failed in 'train.apply': ValueError: args.weights.ip: expected 3 blocks (exit code 3)",
    );
  });
});
