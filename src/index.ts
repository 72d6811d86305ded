/** gradprom: GradProm task-driven image enhancement, orchestrated from TypeScript. */
export * from './errors.js';
export { PROTOCOL_VERSION } from './protocol/version.js';
export { OPS, type OpArgs, type OpName, type OpResult, type OpSpec } from './protocol/ops.js';
export { tensor, numel, DTYPE_NAMES, type DType, type Tensor, type TypedArray } from './protocol/dtypes.js';
export { Sidecar, type CallRest, type SidecarOptions, type HelloInfo, type StoppedBy } from './sidecar/sidecar.js';
export { distributedOptions, type DistributedOptions } from './sidecar/ranks.js';
export type { CallOptions, Reply } from './sidecar/client.js';
export { stderrLogger, silentLogger, type Logger, type LogLevel } from './sidecar/logger.js';
export * from './policy/index.js';
export { assertLive, StepViews } from './protocol/views.js';
export { loadConfig, parseConfig, DEFAULTS, type Config, type ConfigIssue, type ConfigResult } from './config/index.js';
export { runExperiment, defaultRunName, type RunOptions, type RunResult } from './train/runner.js';
export {
  runCompare,
  resumeCompare,
  reportCompare,
  comparePlan,
  makePlan,
  parseLambdas,
  shardRuns,
  type CompareOptions,
  type CompareOutcome,
  type SweepOptions,
  type LambdaSetting,
  type Plan,
  type PlannedRun,
} from './train/compare.js';
export { ipDescent, ipDescentFromGram, ipDescentFromVectors } from './train/descent.js';
export { RemoteSession, type SessionInfo, type EvalMetrics } from './train/remote.js';
export { transferMarkdown, type TransferTable } from './report/transfer-table.js';
export {
  barProgress,
  formatDuration,
  logProgress,
  noProgress,
  progressFor,
  type Progress,
  type ProgressStream,
  type StepView,
} from './train/progress.js';
export { withPython, callPython } from './control/pythonia.js';
