/** Sections 1 and 6 of `npm run bench`: the TypeScript-driven step against the in-process reference (and GradCosine). */
import type { Config } from '../src/config/index.js';
import { makePolicy, type Layout, type Policy } from '../src/policy/index.js';
import { Sidecar } from '../src/sidecar/sidecar.js';
import { RemoteSession } from '../src/train/remote.js';
import { median, PyWorker, quantile } from './bench-util.js';

/** ref2: the same in-process reference in a second worker process, the noise floor of the comparison. */
export type StepMode = 'ref' | 'ref2' | 'gram' | 'vectors' | 'gradcosine';

/** Per-phase times of one TypeScript-driven step (ms). */
interface Phases {
  grads: number;
  policy: number;
  apply: number;
}

/** What one size's interleaved rounds measured. */
export interface StepResult {
  label: string;
  params: number;
  /** Timed step times per mode (ms), one per round. */
  times: Partial<Record<StepMode, number[]>>;
  /** Median per-phase times of the TypeScript modes. */
  phases: Partial<Record<'gram' | 'vectors', Phases>>;
  /** Median over rounds of mode/ref within the same round. */
  paired: Partial<Record<StepMode, number>>;
  rounds: number;
  warmup: number;
  layout: Layout;
}

/** One step driven from TypeScript, exactly as the runner does it: grads → policy → apply (or skip). */
async function tsStep(session: RemoteSession, policy: Policy, transport: 'gram' | 'vectors'): Promise<{ ms: number; phases: Phases }> {
  const t0 = performance.now();
  const g = await session.grads(transport); // host-device sync: losses and Gram come back
  const t1 = performance.now();
  const decision =
    transport === 'vectors' ? policy.decideFromVectors(session.layout, g.gIp!, g.gVr!) : policy.decide({ layout: session.layout, gram: g.gram });
  const t2 = performance.now();
  if (!g.finite || decision.telemetry.skipped) await session.skip();
  else await session.apply(decision);
  const t3 = performance.now();
  return { ms: t3 - t0, phases: { grads: t1 - t0, policy: t2 - t1, apply: t3 - t2 } };
}

/**
 * Interleaved rounds of one step per mode: the reference (and GradCosine) in the Python worker, the same
 * reference again in a second worker (how far two identical runs differ here), gram and vectors each in
 * its own sidecar, all built from the same config (same seed, model, batches), the order rotated every
 * round so that load from elsewhere falls on every mode alike.
 */
export async function stepRounds(
  label: string,
  config: Config,
  opts: { rounds: number; warmup: number; pretrain: number; gradcosine: boolean; worker: PyWorker; worker2: PyWorker },
): Promise<StepResult> {
  const { worker, worker2 } = opts;
  const modes: StepMode[] = ['ref', 'ref2', 'gram', 'vectors', ...(opts.gradcosine ? (['gradcosine'] as const) : [])];
  const [scGram, scVec] = await Promise.all([Sidecar.start({ device: 'cpu' }), Sidecar.start({ device: 'cpu' })]);
  try {
    const ref = (await worker.request('create', { name: 'ref', config, pretrain: opts.pretrain })) as { params: number };
    await worker2.request('create', { name: 'ref', config, pretrain: opts.pretrain });
    if (opts.gradcosine) await worker.request('create', { name: 'gradcosine', config, pretrain: opts.pretrain });
    const [sGram, sVec] = await Promise.all([RemoteSession.create(scGram, config), RemoteSession.create(scVec, config)]);
    await Promise.all([sGram.pretrain(opts.pretrain), sVec.pretrain(opts.pretrain)]);
    if (sGram.info.layout.numel !== ref.params) throw new Error(`${label}: sidecar and worker disagree on the IP size`);
    const policy = makePolicy(config.policy);
    const times: Partial<Record<StepMode, number[]>> = {};
    const phaseLog: Record<'gram' | 'vectors', Phases[]> = { gram: [], vectors: [] };
    const ratios: Partial<Record<StepMode, number[]>> = {};
    for (let r = 0; r < opts.warmup + opts.rounds; r++) {
      const order = modes.map((_, i) => modes[(i + r) % modes.length]!);
      const round: Partial<Record<StepMode, number>> = {};
      for (const mode of order) {
        if (mode === 'ref' || mode === 'ref2' || mode === 'gradcosine') {
          const kind = mode === 'gradcosine' ? 'gradcosine' : 'ref';
          const w = mode === 'ref2' ? worker2 : worker;
          round[mode] = ((await w.request('step', { name: kind, kind })) as { ms: number }).ms;
        } else {
          const s = await tsStep(mode === 'gram' ? sGram : sVec, policy, mode);
          round[mode] = s.ms;
          if (r >= opts.warmup) phaseLog[mode].push(s.phases);
        }
      }
      if (r < opts.warmup) continue;
      for (const m of modes) {
        (times[m] ??= []).push(round[m]!);
        if (m !== 'ref') (ratios[m] ??= []).push(round[m]! / round.ref!);
      }
      process.stderr.write(`  ${label} round ${r + 1 - opts.warmup}/${opts.rounds}: ${modes.map((m) => `${m} ${round[m]!.toFixed(0)} ms`).join(', ')}\n`);
    }
    const phases: StepResult['phases'] = {};
    for (const m of ['gram', 'vectors'] as const) {
      const p = phaseLog[m];
      phases[m] = { grads: median(p.map((x) => x.grads)), policy: median(p.map((x) => x.policy)), apply: median(p.map((x) => x.apply)) };
    }
    const paired: Partial<Record<StepMode, number>> = {};
    for (const [m, rs] of Object.entries(ratios)) paired[m as StepMode] = median(rs);
    return { label, params: ref.params, times, phases, paired, rounds: opts.rounds, warmup: opts.warmup, layout: sGram.layout };
  } finally {
    await worker.request('drop', { name: 'ref' });
    await worker2.request('drop', { name: 'ref' });
    await worker.request('drop', { name: 'gradcosine' });
    await Promise.all([scGram.stop(), scVec.stop()]);
  }
}

/** "p25–p75 a–b ms, n = k" of a list of ms. */
export function spread(xs: readonly number[]): string {
  return `p25–p75 ${quantile(xs, 0.25).toFixed(1)}–${quantile(xs, 0.75).toFixed(1)} ms, n = ${xs.length}`;
}

/** The IP layout a config gives, from a sidecar session (no steps taken). */
export async function layoutOf(config: Config): Promise<Layout> {
  const sc = await Sidecar.start({ device: 'cpu' });
  try {
    return (await RemoteSession.create(sc, config)).layout;
  } finally {
    await sc.stop();
  }
}
