/** Turns the bench's measurements into report sections: figures, targets, and the notes this run's numbers call for (method: docs/BENCHMARKS-METHOD.md). */
import type { Plan } from './bench-plan.js';
import { LONG_MODEL, type MemoryResult } from './bench-memory.js';
import { readGbps, type PolicyRow } from './bench-policy.js';
import { spread, type StepResult } from './bench-step.js';
import { gbps, type TransportResult } from './bench-transport.js';
import { median, quantile } from '../src/report/stats.js';
import { fmt, inconclusive, noisy, verdict, type Figure, type Section } from './bench-util.js';

const MiB = 2 ** 20;
const mb = (bytes: number) => `${bytes / 1e6} MB`;

/** Section 1: TypeScript-driven steps against the in-process reference, per size. */
export function stepSection(results: StepResult[], plan: Plan, tr: TransportResult | null): Section {
  const figures: Figure[] = [];
  const notes: string[] = [];
  for (const r of results) {
    const ref = median(r.times.ref!);
    const small = r.label === plan.small.label;
    figures.push({
      name: `${r.label}: in-process reference step (\`train.step\`, timed inside the sidecar)`,
      value: ref,
      unit: 'ms',
      detail: `${spread(r.times.ref!)}`,
    });
    figures.push({
      name: `${r.label}: the same step in a separate Python process / reference`,
      value: median(r.times.ref2!) / ref,
      unit: '×',
      detail:
        `not a target: how far two processes running the same step differ, which is why every ratio here is taken within one process; ` +
        `paired per-round median ${fmt(r.paired.ref2!)}×`,
    });
    for (const mode of ['gram', 'vectors'] as const) {
      const t = median(r.times[mode]!);
      const ratio = t / ref;
      const bound = mode === 'gram' ? 1.02 : small ? 1.05 : 1.25; // vectors at 25 M move 200 MB a step: 1.25× is the target set for that
      const v = verdict(ratio, bound, 'max', '×');
      figures.push({ name: `${r.label}: ${mode} step`, value: t, unit: 'ms', detail: `${spread(r.times[mode]!)}` });
      figures.push({
        name: `${r.label}: ${mode} / reference`,
        value: ratio,
        unit: '×',
        detail: `paired per-round median ${fmt(r.paired[mode]!)}×`,
        target: `≤ ${bound}×`,
        met: v.met,
        note: v.note,
        ...inconclusive(noisy([r.times.ref!, r.times[mode]!], ratio, 0.95)),
      });
    }
    const g = r.phases.gram!;
    const vec = r.phases.vectors!;
    const bytes = (2 * r.params * 4) / 1e6;
    notes.push(
      `${r.label} (${fmt(r.params / 1e6, 2)} M parameters), median phases of the TypeScript step — ` +
        `gram: policy ${fmt(g.policy)} ms, train.advance round trip ${fmt(g.advance)} ms; ` +
        `vectors: policy ${fmt(vec.policy)} ms, train.advance round trip ${fmt(vec.advance)} ms (carries g_IP and g_VR back, ` +
        `${fmt(bytes)} MB, and the merged vector out, ${fmt(bytes / 2)} MB). ` +
        `Vectors minus gram step (medians): ${fmt(median(r.times.vectors!) - median(r.times.gram!))} ms.`,
    );
  }
  if (figures.some((f) => f.inconclusive))
    notes.push('Some figures are inconclusive: the step times spread too widely to compare medians.');
  if (figures.some((f) => f.met === false && !f.inconclusive)) {
    const call = tr ? median(tr.empty) : Number.NaN;
    const gaps = results
      .map(
        (r) =>
          `${r.label}: gram ${fmt(median(r.times.gram!) - median(r.times.ref!))} ms, vectors ${fmt(median(r.times.vectors!) - median(r.times.ref!))} ms`,
      )
      .join('; ');
    notes.push(`A ratio target is missed. Gaps to the reference (medians): ${gaps}; an empty call costs ${fmt(call)} ms here (section 2).`);
  }
  return {
    id: '1',
    title: 'Step overhead: TypeScript-driven step vs the in-process reference',
    lead: 'One GradProm step driven from TypeScript over the bridge, against the same step run whole inside the sidecar (`train.step`).',
    figures,
    notes,
  };
}

/** Section 2: round-trip throughput against memcpy, and the copies per direction. */
export function transportSection(tr: TransportResult): Section {
  const figures: Figure[] = [
    {
      name: 'empty call (echo, no tensor) round trip, ipc',
      value: median(tr.empty),
      unit: 'ms',
      detail: `the fixed cost of one request; p25–p75 ${fmt(quantile(tr.empty, 0.25))}–${fmt(quantile(tr.empty, 0.75))} ms, n = ${tr.empty.length}`,
    },
  ];
  const sizes = [...tr.memcpyNode.keys()];
  for (const bytes of sizes) {
    const node = gbps(bytes, tr.memcpyNode.get(bytes)!);
    const py = gbps(bytes, tr.memcpyPython.get(bytes)!);
    const limit = limitAt(tr, bytes);
    const fresh = gbps(bytes, tr.memcpyFresh.get(bytes)!);
    figures.push({
      name: `${mb(bytes)}: memcpy in-process (the limit)`,
      value: limit,
      unit: 'GB/s',
      detail: `Node TypedArray.set ${fmt(node)} GB/s, torch copy_ ${fmt(py)} GB/s; into a freshly allocated buffer (Node) ${fmt(fresh)} GB/s`,
    });
    for (const row of tr.rows.filter((r) => r.bytes === bytes)) {
      const thr = gbps(2 * bytes, row.roundTrip);
      const pct = (100 * thr) / limit;
      const oneWay = row.oneWay ? `; TS→sidecar alone ${fmt(median(row.oneWay))} ms` : '';
      const label = {
        region: 'shared region (vectors transport, default on one machine)',
        ipc: 'ZeroMQ ipc frames (the fallback)',
        tcp: 'ZeroMQ tcp frames',
        'ipc-thp': 'ZeroMQ ipc frames, glibc.malloc.hugetlb=1',
      }[row.path];
      const fig: Figure = {
        name: `${mb(bytes)}: ${label} round trip`,
        value: thr,
        unit: 'GB/s',
        detail: `${fmt(pct, 1)} % of memcpy; round trip ${fmt(median(row.roundTrip))} ms${oneWay}`,
      };
      if (bytes === 1e8 && row.path === 'region') {
        const v = verdict(pct, 40, 'min', ' points');
        Object.assign(fig, { target: '≥ 40 % of memcpy', met: v.met, note: v.note });
      }
      figures.push(fig);
    }
  }
  const region100 = tr.rows.find((r) => r.path === 'region' && r.bytes === 1e8);
  const notes: string[] = [];
  if (!region100)
    notes.push('The shared region could not be measured on this machine (see the bench log): no figure for the 100 MB target.');
  else if (figures.some((f) => f.met === false)) {
    notes.push(
      `The 100 MB target is missed: the region round trip makes two copies of the vector (TypeScript into the merged slot, ` +
        `and out of the g_IP slot into its receive buffer); memcpy into a warm buffer runs at ` +
        `${fmt(gbps(1e8, tr.memcpyNode.get(1e8)!))} GB/s (Node) here, into a fresh one at ${fmt(gbps(1e8, tr.memcpyFresh.get(1e8)!))} GB/s.`,
    );
  }
  return {
    id: '2',
    title: 'Transport: float32 vectors TypeScript ↔ sidecar',
    lead: `Round trips of ${sizes.map(mb).join(', ')} float32 vectors through a sidecar, against an in-process memcpy of the same bytes.`,
    figures,
    notes,
  };
}

/** Section 3: pythonia against ZeroMQ for the same vector. */
export function pythoniaSection(py: { b64: number[]; list: number[] }, tr: TransportResult, bytes: number): Section {
  const zmq = tr.rows.find((r) => r.path === 'ipc' && r.bytes === bytes) ?? tr.rows.find((r) => r.path === 'ipc');
  const z = zmq ? median(zmq.roundTrip) : Number.NaN;
  const zb = zmq?.bytes ?? bytes;
  const b64 = median(py.b64);
  const list = median(py.list);
  const scale = bytes / zb; // ZeroMQ time scales with bytes: compare like sizes
  return {
    id: '3',
    title: 'pythonia vs ZeroMQ for one vector',
    lead: `The same ${mb(bytes)} float32 vector sent to Python and back, as base64 text and as a list of numbers.`,
    figures: [
      { name: `ZeroMQ ipc round trip (${mb(zb)})`, value: z, unit: 'ms', detail: 'section 2' },
      {
        name: 'pythonia, base64 string round trip',
        value: b64,
        unit: 'ms',
        detail: `${fmt(b64 / (z * scale), 1)}× ZeroMQ; ${py.b64.length} timed`,
      },
      {
        name: 'pythonia, list of numbers round trip',
        value: list,
        unit: 'ms',
        detail: `${fmt(list / (z * scale), 1)}× ZeroMQ; ${py.list.length} timed`,
      },
    ],
    notes: [],
  };
}

/** Section 4: policy compute in TypeScript. */
export function policySection(rows: PolicyRow[], plan: Plan): Section {
  const figures = rows.map((r): Figure => {
    const g = readGbps(r);
    const gated = r.what.includes('decideFromVectors');
    const v = verdict(g, 2, 'min', ' GB/s');
    return {
      name: r.what,
      value: g,
      unit: 'GB/s',
      detail: `${fmt(median(r.ms))} ms for ${fmt(r.bytes / 1e6)} MB read`,
      ...(gated ? { target: '≥ 2 GB/s', met: v.met, note: v.note } : {}),
    };
  });
  const n = rows[0] ? rows[0].bytes / 8 : 0;
  return {
    id: '4',
    title: 'Policy compute in TypeScript',
    lead:
      `Policies deciding from two flat float32 vectors of ${fmt(n / 1e6, 2)} M elements (the large IP's layout${plan.quick ? ', reduced in --quick' : ''}), ` +
      'single-threaded in Node; GB/s of gradient data read (both vectors).',
    figures,
    notes: [],
  };
}

/**
 * Section 5: peak RSS over the demo-sized runs, and whether Node grows after warm-up, judged on the long
 * runs of a tiny model (the demo-sized runs are too short for V8's heap to finish sizing itself).
 */
export function memorySection(runs: MemoryResult[], long: MemoryResult[], plan: Plan): Section {
  const figures: Figure[] = [];
  const notes: string[] = [];
  for (const r of runs) {
    const g = growthOf(r);
    const sEarly = r.sidecarRss.slice(Math.floor(r.warmupSteps / 10), Math.floor(r.warmupSteps / 10) + 10);
    const sGrowth = (median(r.sidecarRss.slice(-10)) - median(sEarly)) / MiB;
    figures.push(
      {
        name: `${r.transport}: Node peak RSS during the steps`,
        value: r.nodePeak / MiB,
        unit: 'MiB',
        detail:
          `process high-water mark ${fmt(r.nodeHwm / MiB, 1)} MiB: ${fmt(r.nodeHwmFirstStep / MiB, 1)} MiB by the first step (start, ` +
          `pre-training, first evaluation), ${fmt(r.nodeHwmLastStep / MiB, 1)} MiB by the last, the rest in the final evaluation and report; ` +
          `heap in use ${fmt(median(r.nodeHeap) / MiB, 1)} MiB (median)`,
      },
      {
        name: `${r.transport}: Node RSS change, steps ${r.warmupSteps}–${r.warmupSteps + 100} → last 100`,
        value: g.rss,
        unit: 'MiB',
        detail: g.detail,
      },
      {
        name: `${r.transport}: sidecar peak RSS`,
        value: r.sidecarPeak / MiB,
        unit: 'MiB',
        detail: `high-water mark (data set, models, pre-training included); growth after warm-up ${fmt(sGrowth, 1)} MiB (every 10th step sampled)`,
      },
    );
    notes.push(`${r.transport}: ${r.steps} steps in ${fmt(r.seconds, 1)} s, evaluations and checkpoints included.`);
  }
  for (const r of long) {
    const g = growthOf(r);
    // RSS is a sawtooth (V8 grows its heap, then its memory reducer hands pages back), so compare peaks:
    // a leak raises the highest RSS of the later half above that of the earlier one.
    const after = r.nodeRss.slice(r.warmupSteps);
    const mid = Math.floor(after.length / 2);
    const [p1, p2] = [Math.max(...after.slice(0, mid)) / MiB, Math.max(...after.slice(mid)) / MiB];
    const rise = p2 - p1;
    const flat = rise <= 2;
    const perStep = (g.retained * MiB) / (r.steps - Math.floor(r.warmupSteps / 2));
    figures.push({
      name: `long run, ${r.transport}: rise of Node's peak RSS after warm-up`,
      value: rise,
      unit: 'MiB',
      detail:
        `highest RSS over steps ${r.warmupSteps}–${r.warmupSteps + mid} ${fmt(p1, 1)} MiB, over steps ${r.warmupSteps + mid}–${r.steps} ` +
        `${fmt(p2, 1)} MiB; median change ${fmt(g.rss, 1)} MiB; ${g.detail}`,
      target: 'flat (≤ 2 MiB)',
      met: flat,
      ...(flat ? {} : { note: `peak rose ${fmt(rise, 1)} MiB over ${r.steps - r.warmupSteps} steps` }),
    });
    notes.push(
      `long run, ${r.transport}: ${r.steps} steps in ${fmt(r.seconds, 1)} s; sidecar peak RSS ${fmt(r.sidecarPeak / MiB, 1)} MiB. ` +
        `What stays reachable after a full collection grew ${fmt(g.retained, 2)} MiB, about ${fmt(perStep, 0)} bytes per step.`,
    );
    if (!flat) {
      notes.push(
        `${r.transport} misses "flat" by a rise of ${fmt(rise, 1)} MiB; ` +
          (g.retained < rise / 4
            ? 'little of it stays reachable (not live objects).'
            : 'live objects account for much of it: something is retained per step.'),
      );
    }
  }
  const demo = runs.map((r) => `${r.transport} ${fmt(growthOf(r).rss, 1)} MiB`).join(', ');
  if (runs.length && long.length) {
    notes.push(
      `Warm-up: in the ${plan.memorySteps}-step runs Node's RSS moves after step ${plan.memoryWarmup} by ${demo}; ` +
        `the long runs (${plan.longSteps} steps, the first ${plan.longWarmup} counted as warm-up) carry the target.`,
    );
  }
  return {
    id: '5',
    title: 'Memory over a training run',
    lead:
      `The default configuration trained for ${plan.memorySteps} steps with \`runExperiment\`, once per transport; then a long run per transport ` +
      `with a tiny model (SRResNet ${LONG_MODEL.channels} channels × ${LONG_MODEL.blocks} block, ${LONG_MODEL.size}×${LONG_MODEL.size}, ` +
      `batch ${LONG_MODEL.batch}, no evaluation) for ${plan.longSteps} steps.`,
    figures,
    notes,
  };
}

/** How Node's memory moved after a run's warm-up (MiB), with the detail line that explains it. */
function growthOf(r: MemoryResult): { rss: number; retained: number; detail: string } {
  const w = r.warmupSteps;
  const grow = (xs: number[]) => (median(xs.slice(-100)) - median(xs.slice(w, w + 100))) / MiB;
  const slope = (lineSlope(r.nodeRss.slice(w)) * 100) / MiB;
  const half = (lineSlope(r.nodeRss.slice(-Math.floor((r.steps - w) / 2))) * 100) / MiB;
  return {
    rss: grow(r.nodeRss),
    retained: (r.liveAfterGc.end - r.liveAfterGc.warm) / MiB,
    detail:
      `fitted slope ${fmt(slope)} MiB / 100 steps (second half ${fmt(half)}); heap in use ${fmt(grow(r.nodeHeap))} MiB, ` +
      `V8 reserved heap ${fmt(grow(r.nodeHeapTotal))} MiB; live heap after a full GC ${fmt(r.liveAfterGc.warm / MiB, 2)} MiB ` +
      `(step ${Math.floor(w / 2)}) → ${fmt(r.liveAfterGc.end / MiB, 2)} MiB (step ${r.steps})`,
  };
}

/** Section 6: the two-pass in-process step against the GradCosine-style three-pass step. */
export function peerSection(r: StepResult): Section {
  // Both in the Python worker: the two-pass step there (ref2) against GradCosine, one process.
  const ref = median(r.times.ref2!);
  const gc = median(r.times.gradcosine!);
  const v = verdict(ref / gc, 0.75, 'max', '×');
  const noise = noisy([r.times.ref2!, r.times.gradcosine!], ref / gc);
  return {
    id: '6',
    title: 'Peer: two backward passes vs the GradCosine way (three)',
    lead: `The in-process two-pass step against the GradCosine-style three-pass step (${r.label}), both in one Python worker process.`,
    figures: [
      { name: 'in-process two-pass step', value: ref, unit: 'ms', detail: `${spread(r.times.ref2!)}` },
      { name: 'GradCosine-style three-pass step', value: gc, unit: 'ms', detail: `${spread(r.times.gradcosine!)}` },
      {
        name: 'two-pass / three-pass',
        value: ref / gc,
        unit: '×',
        detail: `paired per-round median ${fmt(1 / r.paired.gradcosine!)}×`,
        target: '≤ 0.75×',
        met: v.met,
        note: v.note,
        ...inconclusive(noise),
      },
    ],
    notes: [],
  };
}

/** Least-squares slope of ys against their index (per sample). */
function lineSlope(ys: readonly number[]): number {
  const n = ys.length;
  if (n < 2) return 0;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, i) => {
    num += (i - mx) * (y - my);
    den += (i - mx) ** 2;
  });
  return num / den;
}

/** The memcpy limit for a size: the faster of Node's and torch's in-process copy (GB/s). */
function limitAt(tr: TransportResult, bytes: number): number {
  return Math.max(gbps(bytes, tr.memcpyNode.get(bytes)!), gbps(bytes, tr.memcpyPython.get(bytes)!));
}
