/** The Markdown table printed by `gradprom eval`. */
import type { EvalMetrics } from '../train/remote.js';

const pct = (v: number | string | undefined) => (typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : '–');
const num = (v: number | string | undefined, d: number) => (typeof v === 'number' ? v.toFixed(d) : '–');

export function evalTable(m: EvalMetrics, task: 'classify' | 'segment'): string {
  const key = task === 'classify' ? 'acc' : 'dice';
  const name = task === 'classify' ? 'accuracy' : 'Dice';
  return [
    `| images (n=${m.n ?? '?'}) | PSNR (dB) | SSIM | fixed-VR ${name} | co-trained-VR ${name} |`,
    '|---|---|---|---|---|',
    `| clean | – | – | ${pct(m[`fixed_clean_${key}`])} | ${pct(m[`cotrained_clean_${key}`])} |`,
    `| degraded | ${num(m.psnr_degraded, 2)} | ${num(m.ssim_degraded, 4)} | ${pct(m[`fixed_degraded_${key}`])} | – |`,
    `| enhanced | ${num(m.psnr, 2)} | ${num(m.ssim, 4)} | ${pct(m[`fixed_enhanced_${key}`])} | ${pct(m[`cotrained_enhanced_${key}`])} |`,
    '',
    `SSIM: ${String(m.ssim_convention ?? 'Wang et al. 2004')}`,
  ].join('\n');
}
