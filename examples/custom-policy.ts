// A user-defined merge policy: promote the VR gradient only when it agrees clearly (cos > 0.1).
import { definePolicy, loadConfig, runExperiment, weighBlocks } from 'gradprom';

export const strictGate = definePolicy({
  name: 'strict-gate',
  input: 'gram', // needs only the per-block Gram, so the gradients stay in the sidecar
  granularities: ['global', 'layer'], // the config's policy.granularity picks one
  doc: 'θ.grad = g_IP + λ_eff·g_VR if cos(g_IP, g_VR) > 0.1, else g_IP',
  // opts: λ, its mode and the granularity from the config's policy section
  decide: ({ gram }, opts) =>
    weighBlocks(gram, opts, (u) => (u.cos > 0.1 ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false })),
});

/** Train a short run with the custom policy; `sets` overrides config fields (policy.lambda among them). */
export async function main(runDir: string, sets: string[] = []) {
  const loaded = await loadConfig(null, ['train.steps=100', ...sets]);
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  const { summary } = await runExperiment(loaded.config, { runDir, policy: strictGate });
  console.log(`gate open on ${(100 * (summary.gateOpenRate ?? 0)).toFixed(0)}% of steps`);
  return summary;
}

if (process.argv[1]?.endsWith('custom-policy.js')) await main(process.argv[2] ?? 'runs/custom-policy');
