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
  gateRatePlot,
  lossPlot,
  qualityPlot,
  recognitionPlot,
  renderSvg,
  smoothingWindow,
  tradeoffPlot,
  type TradeoffPoint,
} from './plots.js';
export { RUN_PLOTS, mdTable, runMarkdown, runPlotSpecs, writeRunReport } from './run-report.js';
export { transferMarkdown, type TransferTable } from './transfer-table.js';
export {
  compareMarkdown,
  groupRuns,
  readPairs,
  writeCompareReport,
  type CompareResult,
  type GroupSummary,
  type PairReading,
} from './compare-report.js';
