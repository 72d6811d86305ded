/** Shared pieces of `npm run bench`: timing, the Python bench worker, figures and configs (statistics: src/report/stats.ts). */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { parseConfig, type Config } from '../src/config/index.js';
import { median, quantile } from '../src/report/stats.js';
import { pythonEnv, resolvePython } from '../src/sidecar/python.js';

/** Times `fn` `reps` times after `warmup` untimed calls; ms per call. */
export async function timeIt(fn: () => unknown, reps: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

/** One reported number, with its target when the issue sets one. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** Human-readable target, e.g. "≤ 1.05×". */
  target?: string;
  met?: boolean;
  /** Set when the timings are too noisy for `met` to mean anything: why (shown instead of met/missed). */
  inconclusive?: string;
  /** Extra columns (spread, sample count, ...). */
  detail?: string;
  note?: string;
}

/** A report section: a heading, a lead paragraph, figures, and notes below the table. */
export interface Section {
  id: string;
  title: string;
  lead: string;
  figures: Figure[];
  notes: string[];
}

/** "missed by x (y %)" or "met" for a figure compared with a bound. */
export function verdict(value: number, bound: number, kind: 'max' | 'min', unit = ''): { met: boolean; note?: string } {
  const met = kind === 'max' ? value <= bound : value >= bound;
  if (met) return { met };
  const gap = Math.abs(value - bound);
  return { met, note: `missed by ${fmt(gap)}${unit} (${fmt((100 * gap) / bound, 1)} % of the target)` };
}

/**
 * Why a step-time ratio cannot be judged, or null: its inputs' p25–p75 spread exceeds 25 % of their median, or the
 * ratio is below `floor` (a step that does strictly more work cannot be faster except by noise).
 */
export function noisy(samples: readonly (readonly number[])[], ratio: number, floor = 0): string | null {
  const spread = Math.max(...samples.map((xs) => (quantile(xs, 0.75) - quantile(xs, 0.25)) / median(xs)));
  if (spread > 0.25) return `timings spread ${fmt(100 * spread, 0)} % (p25–p75 over the median; judged only under 25 %)`;
  if (ratio < floor) return `ratio below ${floor}×, which only noise can give`;
  return null;
}

/** `{ inconclusive }` when there is a reason, else nothing (for spreading into a Figure). */
export function inconclusive(reason: string | null): { inconclusive?: string } {
  return reason ? { inconclusive: reason } : {};
}

/** A number with `digits` significant-looking decimals, without trailing noise. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  const d = a >= 100 ? Math.min(digits, 1) : a >= 10 ? Math.min(digits, 2) : digits;
  return x.toFixed(d);
}

type Json = Record<string, unknown>;

/** The Python bench worker (`python -m gradprom_sidecar.tools.bench serve`): JSON lines, one request at a time. */
export class PyWorker {
  private readonly proc: ChildProcessByStdio<Writable, Readable, null>;
  private readonly waiting: ((line: string) => void)[] = [];
  private exited: Error | null = null;

  constructor() {
    this.proc = spawn(resolvePython(), ['-m', 'gradprom_sidecar.tools.bench', 'serve'], {
      env: pythonEnv(),
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    this.proc.on('exit', (code, signal) => {
      this.exited = new Error(`bench worker exited (${code ?? signal})`);
      for (const w of this.waiting.splice(0)) w(JSON.stringify({ ok: false, error: this.exited.message }));
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** Send one command and wait for its reply; rejects with the worker's error text. */
  request(cmd: string, args: Json = {}): Promise<Json> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiting.push((line) => {
        const reply = JSON.parse(line) as Json;
        if (reply.ok === true) resolve(reply);
        else reject(new Error(`bench worker ${cmd}: ${String(reply.error)}`));
      });
      this.proc.stdin.write(`${JSON.stringify({ cmd, ...args })}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    await done;
  }
}

/** Resident set size of a process in bytes, and its peak (VmHWM), from /proc; null off Linux. */
export function procMemory(pid: number): { rss: number; peak: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** User + system CPU time (ms) in a /proc stat line (a process's or a thread's). */
function statCpuMs(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // the name may hold spaces; fields after it are fixed
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ, 100 on Linux)
}

/** CPU time (user + system, ms) a process has used so far, all its threads, from /proc; null off Linux. */
export function procCpuMs(pid: number): number | null {
  try {
    return statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * CPU time (ms) a process's live threads have used so far, summed by group: `group` names a thread's group from its
 * name (as /proc shows it) and whether it is the main thread. Null off Linux.
 */
export function threadCpuMs(pid: number, group: (name: string, main: boolean) => string): Record<string, number> | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const out: Record<string, number> = {};
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const g = group(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), Number(tid) === pid);
    out[g] = (out[g] ?? 0) + statCpuMs(stat);
  }
  return out;
}

/** A bench config: the defaults with `over` merged in (reported as the failing field when invalid). */
export function benchConfig(over: Record<string, unknown>): Config {
  const r = parseConfig({ device: 'cpu', ...over });
  if (!r.ok) throw new Error(`bench config: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return r.config;
}

/** Deterministic pseudo-random float32 values in [-1, 1) (xorshift32), for vectors that are not all equal. */
export function randomVector(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}
