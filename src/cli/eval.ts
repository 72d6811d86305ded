/**
 * `gradprom eval`: a processing model and a recognizer scored as a run's evaluation is, a run folder's last checkpoint,
 * or the transfer table of several processing models read by several recognizers (ESTR's tables).
 */
import type { Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate, resolveSpecs, transferTable, type LabelledSpec } from '../api/evaluate.js';
import type { Config } from '../config/index.js';
import { isGradpromError } from '../errors.js';
import { isPublishedError, parsePublished, referenceMarkdown } from '../report/published.js';
import { transferMarkdown, type TransferTable } from '../report/transfer-table.js';
import { stderrLogger } from '../sidecar/logger.js';
import { collect, configFrom, out, usage, withCommon, type Common } from './common.js';
import { evalTable } from './eval-table.js';

/** The specs of one flag, checked (exit 2 naming the flag otherwise). */
function specsOf(flag: '--ip' | '--vr', texts: string[], defaultArch: string): LabelledSpec[] {
  try {
    return resolveSpecs(flag === '--ip' ? 'ip' : 'vr', texts, defaultArch);
  } catch (e) {
    if (isGradpromError(e, 'CONFIG')) usage(`${flag} ${e.message.replace(/^(ip|vr):? /, '')}`);
    throw e;
  }
}

function write(dir: string | undefined, name: string, markdown: string, data: unknown): void {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.md`), `${markdown}\n`);
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(data, null, 2)}\n`);
}

type EvalOptions = Common & { ip: string[]; vr: string[]; table?: boolean; run?: string; split: string; out?: string; reference?: string };

const PUBLISHED = fileURLToPath(new URL('../../../configs/estr/published.csv', import.meta.url)); // from dist/src/cli

/** `--reference TASK` (ESTR's published table) or `FILE:TASK`: the published top-1 beside the table's (exit 2 on a bad file). */
function referenceOf(spec: string, table: TransferTable): string {
  const colon = spec.lastIndexOf(':');
  const [file, task] = colon > 0 ? [resolve(spec.slice(0, colon)), spec.slice(colon + 1)] : [PUBLISHED, spec];
  if (!existsSync(file)) usage(`--reference: ${file} does not exist`);
  try {
    return referenceMarkdown(table, parsePublished(readFileSync(file, 'utf8'), file), task, file);
  } catch (e) {
    if (isPublishedError(e)) usage(`--reference: ${e.message}`);
    throw e;
  }
}

/** Several --ip/--vr (or --table): the transfer table, from the config's data, degradation, ip/vr sections and eval conventions. */
async function transfer(opts: EvalOptions, split: 'val' | 'test'): Promise<void> {
  if (!opts.vr.length) usage('the transfer table needs at least one --vr [LABEL=][ARCH:]WEIGHTS');
  const config: Config = await configFrom(opts);
  const ips = specsOf('--ip', opts.ip, config.ip.arch);
  const vrs = specsOf('--vr', opts.vr, config.vr.arch);
  const table = await transferTable({ config, ips, vrs, split, logger: stderrLogger(opts.verbose ? 'info' : 'warn') });
  const md = opts.reference ? `${transferMarkdown(table)}\n\n${referenceOf(opts.reference, table)}` : transferMarkdown(table);
  write(opts.out, 'transfer', md, table);
  out(opts, md, table);
}

/** One --ip (and at most one --vr), or --run: the run evaluation's table (clean, degraded, enhanced; fixed and co-trained VR). */
async function single(opts: EvalOptions, split: 'val' | 'test'): Promise<void> {
  const logger = stderrLogger(opts.verbose ? 'info' : 'warn');
  let metrics;
  let config: Config;
  if (opts.run) {
    config = await configFrom({ ...opts, config: join(opts.run, 'config.json') });
    metrics = await evaluate({ run: opts.run, split, logger });
  } else {
    specsOf('--ip', opts.ip.slice(0, 1), 'srresnet');
    specsOf('--vr', opts.vr.slice(0, 1), 'smallresnet');
    config = await configFrom(opts);
    metrics = await evaluate({ config, ip: opts.ip[0]!, ...(opts.vr[0] ? { vr: opts.vr[0] } : {}), split, logger });
  }
  const md = evalTable(metrics, config.vr.task);
  write(opts.out, 'eval', md, metrics);
  out(opts, md, metrics);
}

/** Adds `gradprom eval` to the program. */
export function addEvalCommand(program: Command): void {
  withCommon(
    program
      .command('eval')
      .description(
        'reproduce with existing weights: PSNR/SSIM and recognition on clean, degraded and enhanced images; several --ip/--vr give the transfer table',
      ),
  )
    .option(
      '--ip <spec>',
      'processing model [LABEL=][ARCH:]WEIGHTS (.pt/.pth/.safetensors, whole pickled models too); repeatable',
      collect,
      [],
    )
    .option('--vr <spec>', 'recognizer [LABEL=][ARCH:]WEIGHTS, e.g. resnet50:resnet50.pth; repeatable', collect, [])
    .option('--table', 'write the transfer table even for one --ip and one --vr')
    .option('--run <dir>', "evaluate a run folder's last checkpoint instead")
    .option('--split <split>', 'val or test', 'test')
    .option('--out <dir>', 'also write the table here (eval.md/.json, or transfer.md/.json)')
    .option('--reference <task>', "print ESTR's published top-1 beside the transfer table: sr4, dn or jpeg (or FILE:TASK for another CSV)")
    .action(async (opts: EvalOptions) => {
      if (!opts.run && !opts.ip.length)
        usage('eval needs --ip WEIGHTS (with --vr WEIGHTS), several of each for a transfer table, or --run DIR');
      if (opts.split !== 'val' && opts.split !== 'test') usage(`--split: expected val or test, got "${opts.split}"`);
      const split = opts.split;
      if (opts.run && (opts.ip.length || opts.vr.length)) usage('--run evaluates a run folder: give it without --ip/--vr');
      if (!opts.run && (opts.table || opts.ip.length > 1 || opts.vr.length > 1)) await transfer(opts, split);
      else await single(opts, split);
    });
}
