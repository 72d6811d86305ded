// The transfer table: several processing models (IPs) read by several recognizers (VRs), printed as Markdown.
import { transferMarkdown, transferTable, type ConfigInput, type ModelSpec, type TransferTable } from 'gradprom';

/** Scores every IP under every VR on the config's test split. */
export async function main(ips: ModelSpec[], vrs: ModelSpec[], config: ConfigInput = {}): Promise<TransferTable> {
  const table = await transferTable({ ips, vrs, config, split: 'test' });
  console.log(transferMarkdown(table));
  return table;
}

if (process.argv[1]?.endsWith('transfer-table.js')) {
  // transfer-table LABEL=IP.safetensors,... LABEL=VR.safetensors,... [CONFIG_JSON]
  const specs = (list: string | undefined) =>
    (list ?? '')
      .split(',')
      .filter(Boolean)
      .map((s): ModelSpec => {
        const [label, weights] = s.includes('=') ? s.split('=', 2) : [undefined, s];
        return { weights: weights!, ...(label ? { label } : {}) };
      });
  await main(specs(process.argv[2]), specs(process.argv[3]), JSON.parse(process.argv[4] ?? '{}') as ConfigInput);
}
