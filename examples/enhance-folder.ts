// Enhance a folder of DICOM or NIfTI files with a trained IP: a run's IP is first written as safetensors.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { convertWeights, enhance, type ConfigInput } from 'gradprom';

/** IP weights from a run folder (its last checkpoint's `ip` part) or a weights file, applied to every file in `input`. */
export async function main(ipOrRun: string, input: string, out: string, config: ConfigInput = {}): Promise<string[]> {
  let ip = ipOrRun;
  if (!/\.(pt|pth|safetensors)$/.test(ipOrRun)) {
    mkdirSync(out, { recursive: true });
    const converted = await convertWeights(join(ipOrRun, 'checkpoints', 'last.pt'), join(out, 'ip.safetensors'), { part: 'ip' });
    console.log(`IP of ${ipOrRun}: ${converted.tensors} tensors`);
    ip = converted.path;
  }
  const { written } = await enhance({ ip, input, out, config });
  for (const file of written) console.log(`wrote ${file}`);
  return written;
}

if (process.argv[1]?.endsWith('enhance-folder.js')) {
  const [ip, input, out, config] = process.argv.slice(2);
  if (!ip || !input || !out) throw new Error('usage: enhance-folder IP_WEIGHTS_OR_RUN_DIR IN_DIR OUT_DIR [CONFIG_JSON]');
  await main(ip, input, out, JSON.parse(config ?? '{}') as ConfigInput);
}
