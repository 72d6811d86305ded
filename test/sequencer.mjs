/**
 * Jest's file order: the known-slow files first, longest first, so that neither worker is left with a long file
 * at the end while the other idles. Jest orders by its cache of past durations, and without one (a fresh clone, CI)
 * by file size, which puts these files late: the slowest of them are small files that start many processes.
 * The weights are rough seconds from a fresh-clone CI run (2 cores, loaded; only their order matters); a file that is
 * not listed keeps Jest's own order, after the listed ones.
 */
import Sequencer from '@jest/test-sequencer';

const SLOW = {
  'test/package/install.test.ts': 200,
  'test/train/compare.test.ts': 175,
  'test/reliability/faults.test.ts': 110,
  'test/train/runner.test.ts': 90,
  'test/reliability/cycles.test.ts': 80,
  'test/distributed/ddp.test.ts': 80,
  'test/reliability/signals.test.ts': 68,
  'test/sidecar/lifecycle.test.ts': 62,
  'test/cli/bad-inputs.test.ts': 52,
  'test/cli/volume-inputs.test.ts': 44,
  'test/cli/eval-stream.test.ts': 37,
  'test/cli/progress.test.ts': 35,
  'test/sidecar/vectors.test.ts': 35,
  'test/cli/cli.test.ts': 35,
};

export default class SlowFirst extends Sequencer {
  sort(tests) {
    // Jest runs the compiled files (dist/test/**/*.test.js); the weights name their sources.
    const source = (t) =>
      t.path
        .slice(t.context.config.rootDir.length + 1)
        .replaceAll('\\', '/')
        .replace(/^dist\//, '')
        .replace(/\.js$/, '.ts');
    const weight = (t) => SLOW[source(t)] ?? 0;
    const ordered = super.sort([...tests]);
    const rank = new Map(ordered.map((t, i) => [t, i]));
    return ordered.sort((a, b) => weight(b) - weight(a) || rank.get(a) - rank.get(b));
  }
}
