/** Jest runs the TypeScript tests as ES modules through ts-jest (type checking is `npm run build`). */

// Three test files run at once (maxWorkers) beside pytest and lint: many tests wait on a process (a training run to
// reach a step, a heartbeat to time out, npm), and a third file fills those waits on a 2-core machine. One torch
// thread per process keeps them from fighting over the cores (the workers, and every sidecar they start, inherit
// this). A test that needs another count sets it for its own child processes.
process.env.OMP_NUM_THREADS ??= '1';

export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^gradprom$': '<rootDir>/src/index.ts', '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, diagnostics: false }],
  },
  testTimeout: 60000,
  maxWorkers: 3,
  testSequencer: '<rootDir>/test/sequencer.mjs',
};
