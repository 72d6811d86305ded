/** scripts/study.yaml's shape: the regimes of `npm run study`, its seeds and policies, and its --quick sizes. */
import { z } from 'zod';
import { POLICY_NAMES } from '../src/policy/index.js';

const regimeSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9-]+$/),
    title: z.string(),
    config: z.string(),
    lambdas: z.string(),
    /** This regime's seeds (default: the study's `seeds`). */
    seeds: z.number().int().positive().optional(),
    /** Config overrides for this regime (path=value, as `--set`), e.g. fewer steps for a regime run smaller. */
    set: z.array(z.string()).optional(),
  })
  .strict();
export const studySchema = z
  .object({
    parallel: z.number().int().positive(),
    seeds: z.number().int().positive(),
    policies: z.array(z.enum(POLICY_NAMES)).min(1),
    regimes: z.array(regimeSchema).min(1),
    factor: z.object({ title: z.string(), regimes: z.tuple([z.string(), z.string()]) }).strict(),
    /** Run random-gate and joint-scaled beside gradprom at its measured gate-open rate (compare --controls). */
    controls: z.boolean(),
    cut: z.string(),
    quick: z.object({ seeds: z.number().int().positive(), set: z.array(z.string()) }).strict(),
  })
  .strict();
export type Study = z.infer<typeof studySchema>;

/** One invocation of the study: when it ran, on what machine state, and which regimes it finished. */
export interface Invocation {
  start: string;
  /** The last time it recorded progress (its end, once it has finished or stopped). */
  end: string | null;
  regimes: string[];
  loadStart: number[];
  loadEnd: number[] | null;
  busyStart: number | null;
  busyEnd: number | null;
}
