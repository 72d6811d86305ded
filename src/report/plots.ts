/** Vega-Lite plot specifications for run and comparison reports, rendered headlessly to SVG. */
import type { TopLevelSpec } from 'vega-lite';
import type { EvalRecord, StepRecord } from './records.js';
import { movingAverage } from './stats.js';

/** Most points drawn per series; longer series are thinned evenly. */
const MAX_POINTS = 800;
const WIDTH = 520;
const HEIGHT = 260;

let vega: Promise<[typeof import('vega'), typeof import('vega-lite')]> | undefined;
/** Vega, then Vega-Lite, once per process (one after the other: they share modules, and Jest's ESM loader fails two at once). */
const loadVega = () => (vega ??= import('vega').then(async (v) => [v, await import('vega-lite')]));

/**
 * Render a Vega-Lite specification to an SVG document string. Vega and Vega-Lite are loaded on the first plot: they
 * take most of the package's import time (~0.5 s of CPU), which every command that draws nothing would pay.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [{ View, parse }, { compile }] = await loadVega();
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The moving-average window used for per-step curves: about 2% of the steps, at least one. */
export function smoothingWindow(n: number): number {
  return Math.max(1, Math.round(n * 0.02));
}

/** Every k-th item so that at most `max` remain (the last is always kept). */
function thin<T>(xs: readonly T[], max = MAX_POINTS): T[] {
  if (xs.length <= max) return [...xs];
  const k = Math.ceil(xs.length / max);
  const out = xs.filter((_, i) => i % k === 0);
  if ((xs.length - 1) % k !== 0) out.push(xs[xs.length - 1] as T);
  return out;
}

/** Smoothed, thinned rows `{step, value, series}` of one per-step quantity. */
function smoothedSeries(steps: readonly StepRecord[], pick: (s: StepRecord) => number, series: string): object[] {
  const rows = steps.map((s) => ({ step: s.step, v: pick(s) })).filter((r) => Number.isFinite(r.v));
  const sm = movingAverage(
    rows.map((r) => r.v),
    smoothingWindow(rows.length),
  );
  return thin(rows.map((r, i) => ({ step: r.step, value: sm[i], series })));
}

/** L_IP and L_VR over steps on a log axis, smoothed; null without step records. */
export function lossPlot(steps: readonly StepRecord[]): TopLevelSpec | null {
  const live = steps.filter((s) => !s.skipped);
  const rows = [
    ...smoothedSeries(live, (s) => s.loss_ip, 'L_IP (pixel loss)'),
    ...smoothedSeries(live, (s) => s.loss_vr, 'L_VR (task loss)'),
  ].filter((r) => (r as { value: number }).value > 0);
  if (rows.length === 0) return null;
  return {
    title: { text: 'Training losses', subtitle: `moving average over ${smoothingWindow(live.length)} steps` },
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training step' },
      y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: 'loss (log scale)' },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}

/** Rows `{step, value, series}` for the eval metrics in `keys` (labelled), scaled by `scale`. */
function evalRows(evals: readonly EvalRecord[], keys: Array<[string, string]>, scale = 1): object[] {
  const rows: object[] = [];
  for (const e of evals) {
    for (const [key, series] of keys) {
      const v = e[key];
      if (typeof v === 'number' && Number.isFinite(v)) rows.push({ step: e.step, value: v * scale, series });
    }
  }
  return rows;
}

/** One panel of a per-evaluation line chart. */
function evalPanel(rows: object[], yTitle: string, title: string, domain?: [number, number], order?: string[]): object {
  return {
    title,
    width: WIDTH,
    height: HEIGHT * 0.7,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training step' },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: domain ? { domain } : { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 300 }, ...(order ? { sort: order } : {}) },
    },
  };
}

/** PSNR and SSIM of enhanced and degraded images per evaluation; null without evaluations. */
export function qualityPlot(evals: readonly EvalRecord[]): TopLevelSpec | null {
  const psnr = evalRows(evals, [
    ['psnr', 'enhanced'],
    ['psnr_degraded', 'degraded'],
  ]);
  const ssim = evalRows(evals, [
    ['ssim', 'enhanced'],
    ['ssim_degraded', 'degraded'],
  ]);
  const panels = [];
  if (psnr.length) panels.push(evalPanel(psnr, 'PSNR (dB)', 'PSNR'));
  if (ssim.length) panels.push(evalPanel(ssim, 'SSIM (unitless, 1 = identical)', 'SSIM'));
  if (panels.length === 0) return null;
  const split = evals[0]?.split ?? 'val';
  return { title: `Image quality per evaluation (${split} split)`, vconcat: panels } as TopLevelSpec;
}

/** Recognition by the fixed and the co-trained VR per evaluation, in percent; null without such metrics. */
export function recognitionPlot(evals: readonly EvalRecord[], task: 'classify' | 'segment'): TopLevelSpec | null {
  const u = task === 'segment' ? 'dice' : 'acc';
  const name = task === 'segment' ? 'Dice' : 'accuracy';
  const keys: Array<[string, string]> = [
    [`fixed_clean_${u}`, 'fixed VR · clean'],
    [`fixed_degraded_${u}`, 'fixed VR · degraded'],
    [`fixed_enhanced_${u}`, 'fixed VR · enhanced'],
    [`cotrained_clean_${u}`, 'co-trained VR · clean'],
    [`cotrained_enhanced_${u}`, 'co-trained VR · enhanced'],
  ];
  const rows = evalRows(evals, keys, 100);
  if (rows.length === 0) return null;
  const split = evals[0]?.split ?? 'val';
  return {
    ...evalPanel(
      rows,
      `${name} (%)`,
      `Recognition per evaluation (${split} split)`,
      [0, 100],
      keys.map((k) => k[1]),
    ),
    height: HEIGHT,
  } as TopLevelSpec;
}

/** Histogram of the per-step global cosine between g_IP and g_VR, with the gate threshold marked; null without cosines. */
export function cosineHistogram(steps: readonly StepRecord[]): TopLevelSpec | null {
  const rows = steps.filter((s) => !s.skipped && Number.isFinite(s.cos)).map((s) => ({ cos: s.cos }));
  if (rows.length === 0) return null;
  return {
    title: { text: 'Cosine between g_IP and g_VR', subtitle: `${rows.length} steps; dashed line: threshold τ = 0` },
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    layer: [
      {
        mark: 'bar',
        encoding: {
          x: { field: 'cos', type: 'quantitative', bin: { maxbins: 40, anchor: 0 }, title: 'cosine (unitless, −1 to 1)' },
          y: { aggregate: 'count', type: 'quantitative', title: 'steps' },
        },
      },
      { mark: { type: 'rule', strokeDash: [4, 3], color: 'black' }, encoding: { x: { datum: 0 } } },
    ],
  };
}

/** Gate-open rate over training, as a moving average in percent; null without step records. */
export function gateRatePlot(steps: readonly StepRecord[]): TopLevelSpec | null {
  const live = steps.filter((s) => !s.skipped);
  const rows = smoothedSeries(live, (s) => s.gate_rate * 100, 'gate open');
  if (rows.length === 0) return null;
  return {
    title: { text: 'Gate-open rate', subtitle: `moving average over ${smoothingWindow(live.length)} steps` },
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training step' },
      y: { field: 'value', type: 'quantitative', scale: { domain: [0, 100] }, title: 'gate open (% of steps)' },
    },
  };
}

/** Histogram of the two descent cosines of a run (planned: cos(g_IP, g); taken: cos(−g_IP, Δθ)); null without them. */
export function descentHistogram(steps: readonly StepRecord[]): TopLevelSpec | null {
  const rows: object[] = [];
  for (const s of steps) {
    if (s.skipped) continue;
    if (Number.isFinite(s.ip_descent)) rows.push({ cos: s.ip_descent, series: 'planned: cos(g_IP, g)' });
    if (Number.isFinite(s.ip_descent_actual)) rows.push({ cos: s.ip_descent_actual, series: 'taken: cos(−g_IP, Δθ)' });
  }
  if (rows.length === 0) return null;
  return {
    title: { text: 'Does the update descend IP’s own loss?', subtitle: 'per step; left of the dashed line: uphill for IP' },
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    layer: [
      {
        mark: { type: 'bar', opacity: 0.6 },
        encoding: {
          x: { field: 'cos', type: 'quantitative', bin: { maxbins: 40, extent: [-1, 1] }, title: 'cosine (unitless, −1 to 1)' },
          y: { aggregate: 'count', type: 'quantitative', title: 'steps', stack: null },
          color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 300 } },
        },
      },
      { mark: { type: 'rule', strokeDash: [4, 3], color: 'black' }, encoding: { x: { datum: 0 } } },
    ],
  };
}
