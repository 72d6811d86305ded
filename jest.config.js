/**
 * Jest runs the tests as `npm run build` compiled them (dist/test, ES modules; tsc type-checks them on the way), with
 * Node's source maps so that a failure points at the TypeScript line. No transform: compiling again in every worker
 * cost CPU on each fresh clone. Run `npm run build` before `npm run test:jest` (`npm run test:ts` does both).
 */

// Three test files run at once (maxWorkers) beside pytest and lint: many tests wait on a process (a training run to
// reach a step, a heartbeat to time out, npm), and a third file fills those waits on a 2-core machine. One torch
// thread per process keeps them from fighting over the cores (the workers, and every sidecar they start, inherit
// this). A test that needs another count sets it for its own child processes.
process.env.OMP_NUM_THREADS ??= '1';

export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  moduleNameMapper: { '^gradprom$': '<rootDir>/dist/src/index.js' },
  transform: {},
  testTimeout: 60000,
  maxWorkers: 3,
  testSequencer: '<rootDir>/test/sequencer.mjs',
};
