/** Reports: metrics.jsonl records, run summaries, per-run and comparison reports with SVG plots. */
export {
  isEval,
  isPretrain,
  isResume,
  isStep,
  latestRecords,
  parseRecords,
  readRecords,
  type EvalRecord,
  type MetricRecord,
  type MetricValue,
  type PretrainRecord,
  type ResumeRecord,
  type StepRecord,
} from './records.js';
export { evalsOf, metricOf, recognitionUnit, stepsOf, summarizeRun, type EvalMetrics, type RunMeta, type RunSummary } from './summary.js';
export { fmt, fmtMeanStd, fmtPercent, fmtSig, mean, median, movingAverage, proportionStderr, stat, std, type Stat } from './stats.js';
export {
  cosineHistogram,
  descentHistogram,
  gateRatePlot,
  lossPlot,
  qualityPlot,
  recognitionPlot,
  renderSvg,
  smoothingWindow,
} from './plots.js';
export { descentPlot, tradeoffPlot, type DescentSeries, type TradeoffPoint } from './compare-plots.js';
export { RUN_PLOTS, mdTable, runMarkdown, runPlotSpecs, writeRunReport } from './run-report.js';
export {
  compareMarkdown,
  frozenVr,
  writeCompareReport,
  type CompareReportOptions,
  type CompareResult,
  type FailedRunInfo,
} from './compare-report.js';
export { groupRuns, type GroupSummary } from './groups.js';
export { makeComparison, type Comparison } from './comparison.js';
export {
  DEFAULT_PRIMARY,
  ENDPOINTS,
  pairedDifferences,
  pairStats,
  type EndpointName,
  type PairedDifference,
  type PairedOptions,
  type PairMetric,
  type PairStats,
} from './paired.js';
export { designSection, type StatedDifferences } from './compare-sections.js';
export { compareFronts, dominates, frontsOf, type Front, type FrontComparison } from './fronts.js';
export { descentStats, poolDescent, runDescent, type DescentStats, type GroupDescentStats, type RunDescent } from './descent.js';
export { transferMarkdown, type TransferTable } from './transfer-table.js';
export {
  bootstrapMean,
  incompleteBeta,
  twoLevelBootstrap,
  seededRandom,
  tCdf,
  tInterval,
  tQuantile,
  type BootstrapInterval,
  type Interval,
  type TInterval,
  type TwoLevelInterval,
} from './intervals.js';
export { holm, holmFloor, pairedT, signFlip, type SignFlipTest, type TTest } from './significance.js';
export { detectableEffect, noncentralTCdf, normalCdf, pairedTPower, seedsNeeded, ALPHA, POWER } from './power.js';
export { PER_IMAGE_FILE, perImageJson, readPerImage, type PerImage } from './per-image.js';
