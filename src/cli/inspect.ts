/** `gradprom inspect CKPT`: the tensors of a checkpoint, read weights-only in Python through pythonia. */
import { callPython } from '../control/pythonia.js';

export interface InspectInfo {
  path: string;
  bytes: number | null;
  format: string;
  step?: number;
  groups: Record<string, { params: number; tensors: { name: string; shape: number[]; dtype: string; numel: number }[] }>;
}

export async function inspect(file: string): Promise<InspectInfo> {
  return (await callPython('gradprom_sidecar.tools.introspect', 'inspect_checkpoint', file)) as InspectInfo;
}

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
