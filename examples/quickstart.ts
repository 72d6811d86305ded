// The smallest script: a typed config, one training run, each evaluation as it happens, the final PSNR.
import { parseConfig, runExperiment, type ConfigInput } from 'gradprom';

/** Train one short GradProm run into `runDir` and resolve with its final test PSNR (dB). */
export async function main(runDir: string, input: ConfigInput = { train: { steps: 50 } }): Promise<number> {
  const parsed = parseConfig({ device: 'cpu', policy: { name: 'gradprom', lambda: 1 }, ...input });
  if (!parsed.ok) throw new Error(parsed.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  let psnr = NaN;
  await runExperiment(parsed.config, {
    runDir,
    force: true,
    onStep: (s) => {
      if (s.step % 10 === 0) console.log(`step ${s.step}: loss ${s.loss_ip.toFixed(4)}, cos ${s.cos.toFixed(3)}, gate ${String(s.gate)}`);
    },
    onEval: (e) => {
      if (typeof e.psnr === 'number') psnr = e.psnr;
      console.log(`eval (${e.split}) at step ${e.step}: PSNR ${String(e.psnr)}`);
    },
  });
  return psnr;
}

if (process.argv[1]?.endsWith('quickstart.js')) {
  const psnr = await main(process.argv[2] ?? 'runs/quickstart', JSON.parse(process.argv[3] ?? '{"train":{"steps":50}}') as ConfigInput);
  console.log(JSON.stringify({ psnr }));
}
