/** The sizes of one `npm run bench` run, shared by the script and its sections. */
import type { DataPlan } from './bench-data.js';
import type { ShortPlan } from './bench-short.js';

/** The sizes of one run; the full plan is sized to stay inside 15 minutes on 2 cores. */
export interface Plan {
  quick: boolean;
  small: StepSize;
  large: StepSize;
  transportBytes: number[];
  pythoniaBytes: number;
  pythoniaReps: number;
  pythoniaListReps: number;
  policyReps: number;
  memorySteps: number;
  memoryWarmup: number;
  memoryTransports: ('gram' | 'vectors')[];
  /** The long run: a tiny model (a step of ~10 ms) for many steps, to see whether Node's RSS levels off. */
  longSteps: number;
  longWarmup: number;
  /** Section 8: the data path. */
  data: DataPlan;
  /** GPU-like short steps (section 7). */
  short: ShortPlan;
}

export interface StepSize {
  label: string;
  channels: number;
  blocks: number;
  size: number;
  batch: number;
  rounds: number;
  warmup: number;
  pretrain: number;
}
