/** Vega-Lite plots of a comparison: the trade-off fronts with interval bars, and the descent cosines per policy. */
import type { TopLevelSpec } from 'vega-lite';
import { HIST_BINS } from './descent.js';

const WIDTH = 390;
const HEIGHT = 310;

/** One point of the trade-off plot: a group mean (with its 95 % intervals over seeds) or a single seed. */
export interface TradeoffPoint {
  policy: string;
  /** False for a reference without a VR term (ip-only): no λ label, drawn as dashed lines. */
  usesVr: boolean;
  /** The front the point belongs to (its policy); one line per λ mode. */
  front: string;
  lambdaMode: string;
  lambda: number;
  reader: string;
  psnr: number;
  recognition: number;
  kind: 'mean' | 'seed';
  /** 95 % Student t interval of the group mean over seeds (means of two or more seeds only). */
  psnrLo?: number;
  psnrHi?: number;
  recognitionLo?: number;
  recognitionHi?: number;
}

/**
 * PSNR against recognition, one panel per VR reader: each front's means joined across λ with interval bars,
 * seeds faint, and dashed lines through ip-only, the reference point; null without points.
 */
export function tradeoffPlot(points: readonly TradeoffPoint[], recognitionTitle: string): TopLevelSpec | null {
  const readers = [...new Set(points.map((p) => p.reader))];
  const pct = (x: number | undefined): number | null => (x === undefined ? null : x * 100);
  const rows = points
    .filter((p) => Number.isFinite(p.psnr) && Number.isFinite(p.recognition))
    .map((p) => ({
      ...p,
      recognition: p.recognition * 100,
      recognitionLo: pct(p.recognitionLo),
      recognitionHi: pct(p.recognitionHi),
      label: !p.usesVr ? '' : `λ=${p.lambda}${p.lambdaMode === 'normalized' ? 'n' : ''}`,
    }));
  if (rows.length === 0) return null;
  // The axes span the points, not the bars: with two seeds a t interval is 12.7 standard errors wide and would
  // squeeze every point into a corner; bars that reach past the points are clipped at the plot's edge.
  const span = (vs: number[]): [number, number] => {
    const lo = Math.min(...vs);
    const hi = Math.max(...vs);
    const pad = Math.max((hi - lo) * 0.15, Math.abs(hi) * 0.002, 1e-3);
    return [lo - pad, hi + pad];
  };
  const x = { field: 'psnr', type: 'quantitative', scale: { domain: span(rows.map((r) => r.psnr)) }, title: 'PSNR (dB)' } as const;
  const y = {
    field: 'recognition',
    type: 'quantitative',
    scale: { domain: span(rows.map((r) => r.recognition)) },
    title: `${recognitionTitle} (%)`,
  } as const;
  const color = { field: 'front', type: 'nominal', title: 'policy', legend: { symbolOpacity: 1 } } as const;
  const means = { filter: "datum.kind === 'mean'" };
  const withBars = { filter: "datum.kind === 'mean' && datum.psnrLo != null" };
  const reference = { filter: "datum.kind === 'mean' && !datum.usesVr" };
  const dashed = { type: 'rule', strokeDash: [5, 4], color: 'gray', opacity: 0.8 } as const;
  return {
    title: {
      text: 'Trade-off fronts: image quality against recognition',
      subtitle:
        'large points: mean over seeds with 95 % t intervals (clipped at the edges); faint: single seeds; lines join λ values (n: normalized); dashed: the reference (ip-only)',
    },
    data: { values: rows },
    facet: { column: { field: 'reader', type: 'nominal', title: null, sort: readers } },
    spec: {
      width: WIDTH,
      height: HEIGHT,
      layer: [
        { transform: [reference], mark: dashed, encoding: { x } },
        { transform: [reference], mark: dashed, encoding: { y } },
        {
          transform: [{ filter: "datum.kind === 'seed'" }],
          mark: { type: 'point', filled: true, opacity: 0.25, size: 25 },
          encoding: { x, y, color },
        },
        {
          transform: [means],
          mark: { type: 'line', strokeWidth: 1.2 },
          encoding: { x, y, color, detail: { field: 'lambdaMode', type: 'nominal' }, order: { field: 'lambda', type: 'quantitative' } },
        },
        {
          transform: [withBars],
          mark: { type: 'rule', strokeWidth: 1, clip: true },
          encoding: { x: { ...x, field: 'psnrLo' }, x2: { field: 'psnrHi' }, y, color },
        },
        {
          transform: [withBars],
          mark: { type: 'rule', strokeWidth: 1, clip: true },
          encoding: { x, y: { ...y, field: 'recognitionLo' }, y2: { field: 'recognitionHi' }, color },
        },
        { transform: [means], mark: { type: 'point', filled: true, size: 80 }, encoding: { x, y, color } },
        {
          transform: [means],
          mark: { type: 'text', dx: 6, dy: -6, align: 'left', fontSize: 9 },
          encoding: { x, y, text: { field: 'label', type: 'nominal' }, color },
        },
      ],
    },
  } as TopLevelSpec;
}

/** One group's pooled histogram of a descent cosine. */
export interface DescentSeries {
  label: string;
  kind: 'planned: cos(g_IP, g)' | 'taken: cos(−g_IP, Δθ)';
  hist: readonly number[];
}

/** The share of steps per cosine bin, one line per group, one panel per cosine; null without data. */
export function descentPlot(series: readonly DescentSeries[]): TopLevelSpec | null {
  const rows: object[] = [];
  for (const s of series) {
    const total = s.hist.reduce((a, b) => a + b, 0);
    if (total === 0) continue;
    s.hist.forEach((c, i) => rows.push({ group: s.label, kind: s.kind, cos: -1 + (2 * (i + 0.5)) / HIST_BINS, share: (100 * c) / total }));
  }
  if (rows.length === 0) return null;
  return {
    title: {
      text: 'Does the update descend IP’s own loss? (all steps of all seeds)',
      subtitle: 'left of the dashed line: the update points uphill for IP',
    },
    data: { values: rows },
    facet: { column: { field: 'kind', type: 'nominal', title: null } },
    spec: {
      width: WIDTH,
      height: HEIGHT * 0.8,
      layer: [
        {
          mark: { type: 'line', interpolate: 'step', strokeWidth: 1.3 },
          encoding: {
            x: { field: 'cos', type: 'quantitative', scale: { domain: [-1, 1] }, title: 'cosine (unitless, −1 to 1)' },
            y: { field: 'share', type: 'quantitative', title: 'steps (%)' },
            color: { field: 'group', type: 'nominal', title: null, legend: { labelLimit: 300 } },
          },
        },
        { mark: { type: 'rule', strokeDash: [4, 3], color: 'black' }, encoding: { x: { datum: 0 } } },
      ],
    },
  } as TopLevelSpec;
}
