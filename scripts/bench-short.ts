/** Section 7 of `npm run bench`: GPU-like short steps, against a lean plain-PyTorch loop in the same process (method: docs/BENCHMARKS-METHOD.md). */
import type { Config } from '../src/config/index.js';
import { makePolicy } from '../src/policy/index.js';
import { median } from '../src/report/stats.js';
import { Sidecar } from '../src/sidecar/sidecar.js';
import { RemoteSession } from '../src/train/remote.js';
import { spread, tsSteps } from './bench-step.js';
import { fmt, noisy, procCpuMs, threadCpuMs, verdict, type Figure, type Section } from './bench-util.js';

/** lean: the plain-PyTorch floor (`bench.lean`); step: the sidecar's own step in-process (`train.step`); ts: driven from TypeScript. */
export type ShortMode = 'lean' | 'step' | 'ts';
const MODES: ShortMode[] = ['lean', 'step', 'ts'];
const TARGET = 1.03;

/** The sizes of the section's run. */
export interface ShortPlan {
  label: string;
  channels: number;
  blocks: number;
  vrWidths: number[];
  size: number;
  batch: number;
  /** Steps per mode per round (the mode's time in a round is their mean). */
  burst: number;
  rounds: number;
  warmup: number;
}

export interface ShortResult {
  plan: ShortPlan;
  params: number;
  /** ms per step per mode, one value per round (the mean over its burst). */
  times: Record<ShortMode, number[]>;
  /** Per round: step / lean and ts / lean. */
  ratios: Record<'step' | 'ts', number[]>;
  /** Median `train.advance` round trip and policy time of the TypeScript steps (ms). */
  advance: number;
  policy: number;
  /** Median CPU time per step (ms) per mode, over rounds: the sidecar's process and Node's; null off Linux. */
  cpu: Record<ShortMode, { sidecar: number; node: number }> | null;
  /**
   * Mean CPU time per step (ms) per mode per thread group (`THREADS`), as `side: group` (e.g. `Node: main thread`), over
   * all timed rounds: /proc counts in 10 ms ticks, too coarse for one round's median; null off Linux.
   */
  threads: Record<ShortMode, Record<string, number>> | null;
}

/** Thread groups for the per-thread CPU: ZeroMQ's own threads on either side, Node's main thread apart from V8's and libuv's. */
const THREADS = {
  Node: (name: string, main: boolean) => (main ? 'main thread' : name.startsWith('ZMQbg') ? 'ZeroMQ' : 'V8 and libuv'),
  sidecar: (name: string) => (name.startsWith('ZMQbg') ? 'ZeroMQ' : 'Python and torch'),
};

/** Per-thread-group CPU of both processes now (`side: group` → ms), or null off Linux. */
function threadsNow(sidecarPid: number): Record<string, number> | null {
  const node = threadCpuMs(process.pid, THREADS.Node);
  const side = threadCpuMs(sidecarPid, THREADS.sidecar);
  if (!node || !side) return null;
  const out: Record<string, number> = {};
  for (const [g, ms] of Object.entries(node)) out[`Node: ${g}`] = ms;
  for (const [g, ms] of Object.entries(side)) out[`sidecar: ${g}`] = ms;
  return out;
}

/** The section's config: a model small enough that a CPU step takes milliseconds, GradProm, gram transport. */
export function shortConfig(p: ShortPlan, benchConfig: (over: Record<string, unknown>) => Config): Config {
  return benchConfig({
    data: { size: p.size, counts: { train: 256, val: 16, test: 16 } },
    ip: { arch: 'srresnet', channels: p.channels, blocks: p.blocks, batch_norm: false },
    vr: { pretrain_steps: 5, kwargs: { widths: p.vrWidths } },
    train: { batch_size: p.batch, steps: 1_000_000, grad_exchange: 'gram' },
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Interleaved rounds, the mode order rotated each round, all three in ONE sidecar process: `bench.lean` (the floor,
 * its own copies of the networks), `train.step` (the sidecar's step, timed inside) and the TypeScript-driven step
 * (`train.advance`, timed in Node from reply to reply), each `burst` steps a round.
 */
export async function shortRounds(plan: ShortPlan, config: Config): Promise<ShortResult> {
  process.env.GRADPROM_BENCH_OPS = '1';
  const sc = await Sidecar.start({ device: 'cpu' });
  try {
    const session = await RemoteSession.create(sc, config);
    await session.pretrain(config.vr.pretrain_steps);
    const policy = makePolicy(config.policy);
    const times: Record<ShortMode, number[]> = { lean: [], step: [], ts: [] };
    const ratios: Record<'step' | 'ts', number[]> = { step: [], ts: [] };
    const advance: number[] = [];
    const policyMs: number[] = [];
    const cpu: Record<ShortMode, { sidecar: number[]; node: number[] }> = {
      lean: { sidecar: [], node: [] },
      step: { sidecar: [], node: [] },
      ts: { sidecar: [], node: [] },
    };
    const threadMs: Record<ShortMode, Record<string, number>> = { lean: {}, step: {}, ts: {} };
    let linux = true;
    for (let r = 0; r < plan.warmup + plan.rounds; r++) {
      const round = {} as Record<ShortMode, number>;
      for (const mode of MODES.map((_, i) => MODES[(i + r) % MODES.length]!)) {
        const threads0 = threadsNow(sc.pid); // first and last: reading /proc costs Node a little, outside the other windows
        const side0 = procCpuMs(sc.pid);
        const node0 = process.cpuUsage();
        if (mode === 'lean') {
          round.lean = mean((await sc.call('bench.lean', { steps: plan.burst })).result.ms);
        } else if (mode === 'step') {
          const ms: number[] = [];
          for (let i = 0; i < plan.burst; i++) ms.push((await sc.call('train.step')).result.ms);
          round.step = mean(ms);
        } else {
          const s = await tsSteps(session, policy, 'gram', plan.burst);
          round.ts = mean(s.ms);
          if (r >= plan.warmup) {
            advance.push(...s.phases.map((p) => p.advance));
            policyMs.push(...s.phases.map((p) => p.policy));
          }
        }
        const side1 = procCpuMs(sc.pid);
        const node = process.cpuUsage(node0);
        const threads1 = threadsNow(sc.pid);
        if (side0 === null || side1 === null || !threads0 || !threads1) linux = false;
        else if (r >= plan.warmup) {
          cpu[mode].sidecar.push((side1 - side0) / plan.burst);
          cpu[mode].node.push((node.user + node.system) / 1000 / plan.burst);
          for (const [g, ms] of Object.entries(threads1)) threadMs[mode][g] = (threadMs[mode][g] ?? 0) + ms - (threads0[g] ?? 0);
        }
      }
      if (r < plan.warmup) continue;
      for (const m of MODES) times[m].push(round[m]);
      ratios.step.push(round.step / round.lean);
      ratios.ts.push(round.ts / round.lean);
      process.stderr.write(
        `  short steps round ${r + 1 - plan.warmup}/${plan.rounds}: ${MODES.map((m) => `${m} ${fmt(round[m])} ms`).join(', ')}\n`,
      );
    }
    const perStep = (m: ShortMode) => ({ sidecar: median(cpu[m].sidecar), node: median(cpu[m].node) });
    return {
      plan,
      params: session.info.layout.numel,
      times,
      ratios,
      advance: median(advance),
      policy: median(policyMs),
      cpu: linux ? { lean: perStep('lean'), step: perStep('step'), ts: perStep('ts') } : null,
      threads: linux ? perThreadStep(threadMs, plan.rounds * plan.burst) : null,
    };
  } finally {
    await sc.stop();
  }
}

/** Each mode's per-thread-group CPU over its timed rounds, per step. */
function perThreadStep(total: Record<ShortMode, Record<string, number>>, steps: number): Record<ShortMode, Record<string, number>> {
  const per = (m: ShortMode) => Object.fromEntries(Object.entries(total[m]).map(([g, ms]) => [g, ms / steps]));
  return { lean: per('lean'), step: per('step'), ts: per('ts') };
}

/** Section 7's figures and notes. */
export function shortSection(r: ShortResult): Section {
  const lean = median(r.times.lean);
  const figures: Figure[] = [
    { name: 'lean plain-PyTorch loop (`bench.lean`, the floor)', value: lean, unit: 'ms', detail: spread(r.times.lean) },
  ];
  const names = { step: 'the sidecar’s own step in-process (`train.step`)', ts: 'TypeScript-driven gram step (`train.advance`)' };
  for (const m of ['step', 'ts'] as const) {
    const ratio = median(r.times[m]) / lean;
    const v = verdict(ratio, TARGET, 'max', '×');
    const unclear = noisy([r.times.lean, r.times[m]], ratio);
    figures.push({ name: names[m], value: median(r.times[m]), unit: 'ms', detail: spread(r.times[m]) });
    figures.push({
      name: `${names[m]} / lean loop`,
      value: ratio,
      unit: '×',
      detail: `paired per-round median ${fmt(median(r.ratios[m]))}×`,
      target: `≤ ${TARGET}×`,
      met: v.met,
      ...(v.note ? { note: v.note } : {}),
      ...(unclear ? { inconclusive: unclear } : {}),
    });
  }
  const p = r.plan;
  const notes = [
    `${p.label}: SRResNet ${p.channels}×${p.blocks} (${fmt(r.params / 1e3, 1)} k IP parameters) + small ResNet ${p.vrWidths.join('/')}, ` +
      `${p.size}×${p.size} grayscale, batch ${p.batch}, GradProm (λ = 0.003, global), Adam, CPU; ${p.warmup} warm-up + ${p.rounds} rounds ` +
      `of ${p.burst} steps per mode.`,
    `TypeScript step phases (medians): policy ${fmt(r.policy)} ms, \`train.advance\` round trip ${fmt(r.advance)} ms ` +
      `(apply step t, gradients of step t+1; VR's update and the next inputs follow the reply).`,
  ];
  if (r.cpu) {
    const c = r.cpu;
    notes.push(
      `CPU time per step (medians over rounds; /proc and \`process.cpuUsage\`): the sidecar's process ${fmt(c.lean.sidecar)} ms lean, ` +
        `${fmt(c.step.sidecar)} ms \`train.step\`, ${fmt(c.ts.sidecar)} ms TypeScript-driven; Node ${fmt(c.ts.node)} ms a step ` +
        `TypeScript-driven (${fmt(c.step.node)} ms a \`train.step\` call, ${fmt(c.lean.node)} ms while it waits on the lean loop). ` +
        `With as many torch threads as cores (the default), the bridge's CPU (Node, ZeroMQ's threads, the sidecar's I/O thread) is wall time ` +
        `taken from the step; where cores are spare, as beside a GPU, it overlaps the step instead.`,
    );
  }
  if (r.threads) {
    const t = r.threads;
    const groups = Object.keys(t.ts).sort();
    const row = (m: ShortMode) => groups.map((g) => `${g} ${fmt(t[m][g] ?? 0)}`).join(', ');
    notes.push(
      `CPU time per step by thread (ms, means over the timed rounds; /proc/<pid>/task): TypeScript-driven: ${row('ts')}; ` +
        `\`train.step\`: ${row('step')}; lean: ${row('lean')}.`,
    );
  }
  if (lean < 5 || lean > 15) notes.push(`The floor's step took ${fmt(lean)} ms here, outside the 5–15 ms this section is sized for.`);
  return {
    id: '7',
    title: 'GPU-like short steps: the step machinery against a lean plain-PyTorch loop',
    lead: 'Steps of a few milliseconds, where fixed costs show: the sidecar’s step and the TypeScript-driven step against what a user would write in plain PyTorch, in one process.',
    figures,
    notes,
  };
}
