/** The record types of a run's metrics.jsonl, and a tolerant reader for them. */
import { readFile } from 'node:fs/promises';
import { GradpromError } from '../errors.js';

/** One training step: losses, the gradient statistics and what the policy decided. */
export interface StepRecord {
  type: 'step';
  step: number;
  loss_ip: number;
  loss_vr: number;
  cos: number;
  gate: boolean | null;
  gate_rate: number;
  ip_norm: number;
  vr_norm: number;
  lambda_eff: number;
  lr_ip: number;
  lr_vr: number;
  skipped: boolean;
  time_ms: number;
  /** cos(g_IP, g) of the merged update handed to the optimizer (absent on skipped steps and in older runs). */
  ip_descent?: number;
  /** cos(−g_IP, Δθ) of the parameter change the optimizer made (absent on skipped steps and in older runs). */
  ip_descent_actual?: number;
}

/** A metric value as it appears in an evaluation record. */
export type MetricValue = number | string | boolean;

/** One evaluation on the val or test split; metric names depend on the task. */
export interface EvalRecord {
  type: 'eval';
  step: number;
  split: 'val' | 'test';
  [metric: string]: MetricValue;
}

/** VR pre-training on clean images, before the main loop. */
export interface PretrainRecord {
  type: 'pretrain';
  loss: number;
  accuracy: number;
}

/** The run resumed from a checkpoint at `step`; later records of that step replace earlier ones. */
export interface ResumeRecord {
  type: 'resume';
  step: number;
}

/** Any line of metrics.jsonl. */
export type MetricRecord = StepRecord | EvalRecord | PretrainRecord | ResumeRecord;

const KNOWN = new Set(['step', 'eval', 'pretrain', 'resume']);

/** True for a step record. */
export function isStep(r: MetricRecord): r is StepRecord {
  return r.type === 'step';
}

/** True for an evaluation record. */
export function isEval(r: MetricRecord): r is EvalRecord {
  return r.type === 'eval';
}

/** True for a resume record. */
export function isResume(r: MetricRecord): r is ResumeRecord {
  return r.type === 'resume';
}

/** True for a pre-training record. */
export function isPretrain(r: MetricRecord): r is PretrainRecord {
  return r.type === 'pretrain';
}

/** Parse metrics.jsonl text; an unparsable last line (a write cut short) is ignored, any other throws naming the line. */
export function parseRecords(text: string, file = 'metrics.jsonl'): MetricRecord[] {
  const lines = text.split('\n');
  let last = lines.length - 1;
  while (last >= 0 && (lines[last] as string).trim() === '') last--;
  const out: MetricRecord[] = [];
  for (let i = 0; i <= last; i++) {
    const line = (lines[i] as string).trim();
    if (line === '') continue;
    let value: unknown;
    let problem: string | null = null;
    try {
      value = JSON.parse(line);
      problem = recordProblem(value);
    } catch (e) {
      problem = `invalid JSON (${(e as Error).message})`;
    }
    if (problem !== null) {
      if (i === last) break; // a crash mid-write leaves a partial last line
      throw new GradpromError('RUN', `${file}:${i + 1}: malformed record: ${problem}`);
    }
    const rec = value as { type: string };
    if (KNOWN.has(rec.type)) out.push(rec as MetricRecord); // unknown types: written by a newer version
  }
  return out;
}

/** Why a parsed line is not a record, or null when it is one. */
function recordProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const r = v as Record<string, unknown>;
  if (typeof r.type !== 'string') return 'missing string field "type"';
  if ((r.type === 'step' || r.type === 'eval' || r.type === 'resume') && typeof r.step !== 'number') {
    return `"${r.type}" record without a numeric "step"`;
  }
  if (r.type === 'eval' && r.split !== 'val' && r.split !== 'test') return 'eval record with split not "val" or "test"';
  return null;
}

/** Read a run's metrics.jsonl (see `parseRecords` for the tolerance rules). */
export async function readRecords(file: string): Promise<MetricRecord[]> {
  return parseRecords(await readFile(file, 'utf8'), file);
}

/** The records still in force after resumes: per (type, split, step) the last written wins, and steps past a resume point written before it are dropped. */
export function latestRecords(records: readonly MetricRecord[]): MetricRecord[] {
  // Walk backwards: a later resume at step S invalidates everything earlier with step > S (that trajectory was abandoned).
  const seen = new Set<string>();
  const kept: MetricRecord[] = [];
  let cutoff = Infinity;
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i] as MetricRecord;
    if (r.type === 'resume') {
      kept.push(r);
      cutoff = Math.min(cutoff, r.step);
      continue;
    }
    if (r.type === 'pretrain') {
      kept.push(r);
      continue;
    }
    if (r.type === 'step' && r.skipped) {
      // A skip at step S is an attempt at S + 1 after S's checkpoint: each one counts, unless a resume at S abandoned it.
      if (r.step < cutoff) kept.push(r);
      continue;
    }
    if (r.step > cutoff) continue;
    const key = r.type === 'eval' ? `eval/${r.split}/${r.step}` : `step/${r.step}`;
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(r);
  }
  return kept.reverse();
}
