/** `gradprom inspect CKPT`: the tensors of a checkpoint, read weights-only in Python (src/api/weights.ts). */
import { inspectWeights, type InspectInfo } from '../api/weights.js';

export type { InspectInfo };

/** The tensors of a checkpoint or weights file. */
export const inspect = inspectWeights;

export function formatInspect(info: InspectInfo): string {
  const lines = [
    `${info.path}: ${info.format}${info.step !== undefined && info.step !== null ? `, step ${info.step}` : ''}, ${info.bytes ?? '?'} bytes`,
  ];
  for (const [group, g] of Object.entries(info.groups)) {
    lines.push('', `${group}: ${g.tensors.length} tensors, ${g.params.toLocaleString('en-US')} elements`);
    for (const t of g.tensors) lines.push(`  ${t.name.padEnd(48)} ${t.dtype.padEnd(9)} [${t.shape.join(', ')}]`);
  }
  return lines.join('\n');
}
