/** Sections 1 and 6 of `npm run bench`: the TypeScript-driven step against the in-process reference (and GradCosine). */
import type { Config } from '../src/config/index.js';
import { makePolicy, type Layout, type Policy } from '../src/policy/index.js';
import { Sidecar } from '../src/sidecar/sidecar.js';
import { RemoteSession, type StepGradsReply } from '../src/train/remote.js';
import { median, quantile } from '../src/report/stats.js';
import { PyWorker } from './bench-util.js';

/** ref: the in-process step inside the sidecar (`train.step`); ref2: the same step in the separate Python worker. */
export type StepMode = 'ref' | 'ref2' | 'gram' | 'vectors' | 'gradcosine';

/** Per-phase times of one TypeScript-driven step (ms). */
interface Phases {
  /** The `train.advance` round trip: apply step t, compute step t+1's gradients. */
  advance: number;
  policy: number;
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

/**
 * `steps` steps driven from TypeScript exactly as the runner drives them: one `train.advance` per step, which applies
 * step t's decision and returns step t+1's gradients. Each step is timed from the reply that brought its gradients to
 * the reply of its own advance (policy, then apply t and the gradients of t+1: one step's work in steady state); the
 * call that fills the pipeline and the one that drains it (so that nothing is pending afterwards) are not timed.
 */
export async function tsSteps(
  session: RemoteSession,
  policy: Policy,
  transport: 'gram' | 'vectors',
  steps: number,
): Promise<{ ms: number[]; phases: Phases[] }> {
  const decide = (g: StepGradsReply) => {
    const d =
      transport === 'vectors'
        ? policy.decideFromVectors(session.layout, g.gIp!, g.gVr!)
        : policy.decide({ layout: session.layout, gram: g.gram });
    return !g.finite || d.telemetry.skipped ? ('skip' as const) : d;
  };
  let g = (await session.advance(null, true, transport)).next!;
  const ms: number[] = [];
  const phases: Phases[] = [];
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    const d = decide(g);
    const t1 = performance.now();
    const r = await session.advance(d, i < steps, transport); // host-device sync: losses and Gram come back
    const t2 = performance.now();
    if (i === steps) break; // the drain
    ms.push(t2 - t0);
    phases.push({ policy: t1 - t0, advance: t2 - t1 });
    g = r.next!;
  }
  return { ms, phases };
}

/**
 * Interleaved rounds of one step per mode, the order rotated every round so that load from elsewhere falls
 * on every mode alike. The reference (`train.step`: the whole step inside the sidecar, timed there), gram
 * and vectors all step ONE session in ONE sidecar, so the ratios compare the bridge and nothing else: two
 * processes running the same step can differ by several per cent (memory placement, page sizes), which
 * the worker's reference (ref2, a separate `python -m gradprom_sidecar.tools.bench` process) shows. GradCosine
 * runs in that worker too, beside its own reference.
 */
export async function stepRounds(
  label: string,
  config: Config,
  opts: { rounds: number; warmup: number; pretrain: number; gradcosine: boolean; worker: PyWorker },
): Promise<StepResult> {
  const { worker } = opts;
  const modes: StepMode[] = ['ref', 'gram', 'vectors', 'ref2', ...(opts.gradcosine ? (['gradcosine'] as const) : [])];
  // `train.step` is a bench-only op: the sidecar registers it when started with GRADPROM_BENCH_OPS=1 (read at start).
  process.env.GRADPROM_BENCH_OPS = '1';
  const sc = await Sidecar.start({ device: 'cpu' });
  try {
    const ref = (await worker.request('create', { name: 'ref', config, pretrain: opts.pretrain })) as { params: number };
    if (opts.gradcosine) await worker.request('create', { name: 'gradcosine', config, pretrain: opts.pretrain });
    const session = await RemoteSession.create(sc, config);
    await session.pretrain(opts.pretrain);
    if (session.info.layout.numel !== ref.params) throw new Error(`${label}: sidecar and worker disagree on the IP size`);
    const policy = makePolicy(config.policy);
    const times: Partial<Record<StepMode, number[]>> = {};
    const phaseLog: Record<'gram' | 'vectors', Phases[]> = { gram: [], vectors: [] };
    const ratios: Partial<Record<StepMode, number[]>> = {};
    for (let r = 0; r < opts.warmup + opts.rounds; r++) {
      const order = modes.map((_, i) => modes[(i + r) % modes.length]!);
      const round: Partial<Record<StepMode, number>> = {};
      for (const mode of order) {
        if (mode === 'ref') {
          round.ref = (await sc.call('train.step')).result.ms;
        } else if (mode === 'ref2' || mode === 'gradcosine') {
          const kind = mode === 'gradcosine' ? 'gradcosine' : 'ref';
          round[mode] = ((await worker.request('step', { name: kind, kind })) as { ms: number }).ms;
        } else {
          const s = await tsSteps(session, policy, mode, 1);
          round[mode] = s.ms[0]!;
          if (r >= opts.warmup) phaseLog[mode].push(s.phases[0]!);
        }
      }
      if (r < opts.warmup) continue;
      for (const m of modes) {
        (times[m] ??= []).push(round[m]!);
        // Each ratio against the reference in the same process: GradCosine against the worker's.
        if (m !== 'ref') (ratios[m] ??= []).push(round[m]! / (m === 'gradcosine' ? round.ref2! : round.ref!));
      }
      process.stderr.write(
        `  ${label} round ${r + 1 - opts.warmup}/${opts.rounds}: ${modes.map((m) => `${m} ${round[m]!.toFixed(0)} ms`).join(', ')}\n`,
      );
    }
    const phases: StepResult['phases'] = {};
    for (const m of ['gram', 'vectors'] as const) {
      const p = phaseLog[m];
      phases[m] = { advance: median(p.map((x) => x.advance)), policy: median(p.map((x) => x.policy)) };
    }
    const paired: Partial<Record<StepMode, number>> = {};
    for (const [m, rs] of Object.entries(ratios)) paired[m as StepMode] = median(rs);
    return { label, params: ref.params, times, phases, paired, rounds: opts.rounds, warmup: opts.warmup, layout: session.layout };
  } finally {
    await worker.request('drop', { name: 'ref' });
    await worker.request('drop', { name: 'gradcosine' });
    await sc.stop();
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
