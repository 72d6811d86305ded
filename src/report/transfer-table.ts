/** The transfer table of `gradprom eval` with several processing models and recognizers, as Markdown (ESTR's layout). */
import type { OpResult } from '../protocol/ops.js';
import { mdTable } from './run-report.js';
import { fmt } from './stats.js';

/** What the sidecar's `eval.transfer` op returns (also the table's JSON form). */
export type TransferTable = OpResult<'eval.transfer'>;

/** A fraction as a percentage with one decimal and no sign, as ESTR's tables print accuracy. */
const pct = (x: number | undefined) => fmt(typeof x === 'number' ? 100 * x : x, 1);

/** Rows = processing models (with "clean" and "degraded input"), columns = recognizers, cells = top-1 (/ top-5) %. */
export function transferMarkdown(t: TransferTable): string {
  const top5 = t.topk.includes(5);
  const header = ['processing model', 'PSNR (dB)', 'SSIM', ...t.recognizers.map((r) => r.label)];
  const rows = t.rows.map((row) => [
    row.kind === 'ip' ? `${row.label} (${row.arch ?? '?'})` : row.label,
    fmt(row.psnr, 2),
    fmt(row.ssim, 4),
    ...t.recognizers.map((r) => (top5 ? `${pct(row.top1[r.label])} / ${pct(row.top5?.[r.label])}` : pct(row.top1[r.label]))),
  ]);
  const lines = [
    `Accuracy (%) of each recognizer reading each image (${top5 ? 'top-1 / top-5' : 'top-1'}), ${t.split} split, ${t.n} images, ${t.num_classes} classes.`,
    '',
    mdTable(header, rows),
    '',
    `- recognizers: ${t.recognizers.map((r) => `${r.label} = ${r.arch}:${r.weights}`).join('; ')}`,
    ...t.rows.filter((r) => r.kind === 'ip').map((r) => `- ${r.label}: ${r.arch ?? '?'}:${r.weights ?? '?'}`),
    `- PSNR: ${t.psnr_convention}`,
    `- SSIM: ${t.ssim_convention}`,
  ];
  for (const r of t.recognizers.filter((v) => v.left_at_init.length)) {
    lines.push(
      `- WARNING: ${r.label}'s ${r.left_at_init.join(', ')} kept at initialisation (its weights have another class count): its column is not meaningful`,
    );
  }
  return lines.join('\n');
}
