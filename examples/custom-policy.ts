// A user-defined merge policy: promote the VR gradient only when it agrees clearly (cos > 0.1).
import { definePolicy, loadConfig, runExperiment, weighBlocks } from 'gradprom';

export const strictGate = definePolicy({
  name: 'strict-gate',
  input: 'gram', // needs only the per-block Gram, so the gradients stay in the sidecar
  granularity: 'global',
  decide: ({ gram }) =>
    weighBlocks(gram, { lambda: 0.003, lambdaMode: 'plain', granularity: 'global' }, (u) =>
      u.cos > 0.1 ? { ip: 1, vr: u.lambdaEff, open: true } : { ip: 1, vr: 0, open: false },
    ),
});

/** Train a short run with the custom policy; `sets` overrides config fields. */
export async function main(runDir: string, sets: string[] = []) {
  const loaded = await loadConfig(null, ['train.steps=100', ...sets]);
  if (!loaded.ok) throw new Error(loaded.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  const { summary } = await runExperiment(loaded.config, { runDir, policy: strictGate });
  console.log(`gate open on ${(100 * (summary.gateOpenRate ?? 0)).toFixed(0)}% of steps`);
  return summary;
}

if (process.argv[1]?.endsWith('custom-policy.js')) await main(process.argv[2] ?? 'runs/custom-policy');
