// A λ sweep from code: one GradProm run per λ, all on one sidecar (Python and torch start once), the gate-open rate from
// the step records, a table of its own.
import { join } from 'node:path';
import { parseConfig, runExperiment, Sidecar, type Config, type ConfigInput, type StepRecord } from 'gradprom';

export interface SweepRow {
  lambda: number;
  gateOpen: number;
  psnr: number;
  accuracy: number;
}

/** Runs `base` once per λ into `outDir/lambda-<λ>` and returns one row per λ. */
export async function sweep(outDir: string, lambdas: number[], base: ConfigInput = {}): Promise<SweepRow[]> {
  // Every config is checked before any run starts.
  const configs: Config[] = lambdas.map((lambda) => {
    const parsed = parseConfig({ ...base, policy: { ...base.policy, name: 'gradprom', lambda } });
    if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    return parsed.config;
  });
  const rows: SweepRow[] = [];
  if (!configs.length) return rows;
  const sidecar = await Sidecar.start({ device: configs[0]!.device });
  try {
    for (const config of configs) {
      const lambda = config.policy.lambda;
      const steps: StepRecord[] = [];
      const row: SweepRow = { lambda, gateOpen: NaN, psnr: NaN, accuracy: NaN };
      await runExperiment(config, {
        runDir: join(outDir, `lambda-${lambda}`),
        force: true,
        sidecar,
        onStep: (s) => steps.push(s),
        onEval: (e) => {
          if (e.split !== 'test') return;
          if (typeof e.psnr === 'number') row.psnr = e.psnr;
          const acc = e.fixed_enhanced_acc ?? e.fixed_enhanced_dice;
          if (typeof acc === 'number') row.accuracy = acc;
        },
      });
      const taken = steps.filter((s) => !s.skipped);
      row.gateOpen = taken.filter((s) => s.gate === true).length / Math.max(1, taken.length);
      rows.push(row);
    }
  } finally {
    await sidecar.stop();
  }
  return rows;
}

/** The rows as a Markdown table. */
export function table(rows: SweepRow[]): string {
  const lines = ['| λ | gate open | PSNR (dB) | fixed-VR accuracy (enhanced) |', '|---|---|---|---|'];
  for (const r of rows)
    lines.push(`| ${r.lambda} | ${(100 * r.gateOpen).toFixed(0)}% | ${r.psnr.toFixed(2)} | ${(100 * r.accuracy).toFixed(1)}% |`);
  return lines.join('\n');
}

if (process.argv[1]?.endsWith('lambda-sweep.js')) {
  const base = JSON.parse(process.argv[3] ?? '{"device":"cpu","train":{"steps":100}}') as ConfigInput;
  const lambdas = (process.argv[4] ?? '0.1,1,10').split(',').map(Number);
  console.log(table(await sweep(process.argv[2] ?? 'runs/lambda-sweep', lambdas, base)));
}
