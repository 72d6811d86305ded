/**
 * Jest runs the tests as `npm run build` compiled them (dist/test, ES modules; tsc type-checks them on the way), with
 * Node's source maps so that a failure points at the TypeScript line. No transform: compiling again in every worker
 * cost CPU on each fresh clone. Run `npm run build` before `npm run test:jest` (`npm run test:ts` does both).
 */

// Two test files run at once (maxWorkers) beside pytest and lint, and every test process runs one torch thread, so
// that they share a 2-core machine without fighting over it (the workers, and every sidecar they start, inherit the
// thread count; a test that needs another sets it for its own child processes). A third worker filled more of the
// tests' waits (a heartbeat to time out, npm) but cost more CPU in contention than it saved.
process.env.OMP_NUM_THREADS ??= '1';

export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  moduleNameMapper: { '^gradprom$': '<rootDir>/dist/src/index.js' },
  transform: {},
  testTimeout: 60000,
  maxWorkers: 2,
  testSequencer: '<rootDir>/test/sequencer.mjs',
};
