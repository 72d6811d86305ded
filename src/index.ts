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
export {
  loadConfig,
  loadConfigObject,
  parseConfig,
  resolveConfig,
  DEFAULTS,
  type Config,
  type ConfigInput,
  type ConfigIssue,
  type ConfigResult,
  type ConfigSource,
  type DeepPartial,
} from './config/index.js';
export type { StepRecord, EvalRecord, MetricValue } from './report/records.js';
export { validateConfig, filesOf, type FileCheck, type Validation } from './api/validate.js';
export { inspectWeights, convertWeights, type InspectInfo, type TensorInfo, type Converted } from './api/weights.js';
export {
  evaluate,
  transferTable,
  enhance,
  enhanceInputs,
  parseSpec,
  resolveSpecs,
  type EvaluateOptions,
  type EnhanceOptions,
  type ModelSpec,
  type LabelledSpec,
  type SessionOptions,
} from './api/evaluate.js';
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
export { withPython, callPython, type PyProxy, type PythonImport } from './control/pythonia.js';
export {
  locatePython,
  probePython,
  sharedEnvLocation,
  cacheRoot,
  SETUP_COMMAND,
  type PythonChoice,
  type PythonProbe,
  type SharedEnvLocation,
} from './sidecar/python.js';
