/** `gradprom convert WEIGHTS OUT.safetensors`: any weights file gradprom reads, written as plain safetensors. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { convertWeights } from '../api/weights.js';
import { out, usage, withCommon, type Common } from './common.js';

/** Adds `gradprom convert` to the program. */
export function addConvertCommand(program: Command): void {
  withCommon(
    program
      .command('convert')
      .description('write a weights file (state dict, run checkpoint part, whole pickled model read without running it) as .safetensors')
      .argument('<weights>', 'the weights file')
      .argument('<out>', 'the .safetensors file to write'),
    false,
  )
    .option('--part <name>', 'the sub-network of a run checkpoint: ip or vr')
    .action(async (src: string, dst: string, opts: Common & { part?: string }) => {
      if (!existsSync(src)) usage(`${src} does not exist`);
      if (!dst.endsWith('.safetensors')) usage(`${dst}: the output must end in .safetensors`);
      if (opts.part !== undefined && opts.part !== 'ip' && opts.part !== 'vr') usage(`--part: expected ip or vr, got "${opts.part}"`);
      const r = await convertWeights(src, dst, opts.part === 'ip' || opts.part === 'vr' ? { part: opts.part } : {});
      const notes = r.notes.map((n) => `note: ${n}`);
      out(opts, [`${r.tensors} tensors (${r.elements.toLocaleString('en-US')} elements) written to ${r.path}`, ...notes].join('\n'), r);
    });
}
