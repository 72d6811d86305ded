/**
 * `gradprom eval`: a processing model and a recognizer scored as a run's evaluation is, a run folder's last checkpoint,
 * or the transfer table of several processing models read by several recognizers (ESTR's tables).
 */
import type { Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IP_ARCHS, VR_ARCHS, type Config } from '../config/index.js';
import { isPublishedError, parsePublished, referenceMarkdown } from '../report/published.js';
import { transferMarkdown, type TransferTable } from '../report/transfer-table.js';
import { collect, configFrom, out, usage, withCommon, withSession, withSidecar, type Common } from './common.js';
import { evalTable } from './eval-table.js';

/** A processing model or recognizer named on the command line. */
export interface ModelSpec {
  label: string;
  arch: string;
  weights: string;
}

type Parsed = { label: string | null; arch: string | null; weights: string };

const TRANSFER_TIMEOUT_MS = 24 * 3600_000; // a whole ImageNet val split through many networks takes its time

/** Parses `[LABEL=][ARCH:]WEIGHTS`: ARCH counts only when it is one of `archs`; otherwise the rest is the file. */
export function parseSpec(text: string, archs: readonly string[]): Parsed {
  const labelled = /^([^=/\\:]+)=(.+)$/.exec(text);
  const rest = labelled ? labelled[2]! : text;
  const colon = rest.indexOf(':');
  const arch = colon > 0 ? rest.slice(0, colon) : '';
  return archs.includes(arch)
    ? { label: labelled?.[1] ?? null, arch, weights: rest.slice(colon + 1) }
    : { label: labelled?.[1] ?? null, arch: null, weights: rest };
}

/** Labels for specs without one: the file name (processing models) or the arch (recognizers), made unique. */
export function labelSpecs(specs: Parsed[], defaultArch: string, byFile: boolean): ModelSpec[] {
  const base = specs.map((s) => {
    const arch = s.arch ?? defaultArch;
    return { arch, weights: s.weights, label: s.label ?? (byFile ? basename(s.weights, extname(s.weights)) : arch) };
  });
  return base.map((s, i) => {
    if (specs[i]!.label !== null || base.filter((o) => o.label === s.label).length === 1) return s;
    const longer = byFile ? `${basename(dirname(s.weights))}/${s.label}` : `${s.arch}:${basename(s.weights, extname(s.weights))}`;
    const clash = base.filter((o, j) => j !== i && (byFile ? `${basename(dirname(o.weights))}/${o.label}` : o.label) === longer);
    return { ...s, label: clash.length ? `${longer}#${i + 1}` : longer };
  });
}

/** The specs of one flag, weights resolved and checked to exist (exit 2 naming the flag otherwise). */
function specsOf(flag: '--ip' | '--vr', texts: string[], archs: readonly string[], defaultArch: string): ModelSpec[] {
  const parsed = texts.map((t) => parseSpec(t, archs));
  for (const p of parsed) {
    p.weights = resolve(p.weights);
    if (!existsSync(p.weights)) usage(`${flag} ${texts[parsed.indexOf(p)]}: ${p.weights} does not exist`);
  }
  return labelSpecs(parsed, defaultArch, flag === '--ip');
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
  const ips = specsOf('--ip', opts.ip, IP_ARCHS, config.ip.arch);
  const vrs = specsOf('--vr', opts.vr, VR_ARCHS, config.vr.arch);
  for (const [flag, specs] of [
    ['--ip', ips],
    ['--vr', vrs],
  ] as const) {
    const labels = specs.map((s) => s.label);
    const dup = labels.find((l, i) => labels.indexOf(l) !== i);
    if (dup !== undefined) usage(`${flag}: label "${dup}" is given twice`);
  }
  const table: TransferTable = await withSidecar(config, opts, async (sc) => {
    const args = { config, ips, vrs, split, limit: config.eval.limit };
    return (await sc.call('eval.transfer', args, [], { timeoutMs: TRANSFER_TIMEOUT_MS })).result;
  });
  const md = opts.reference ? `${transferMarkdown(table)}\n\n${referenceOf(opts.reference, table)}` : transferMarkdown(table);
  write(opts.out, 'transfer', md, table);
  out(opts, md, table);
}

/** One --ip (and at most one --vr), or --run: the run evaluation's table (clean, degraded, enhanced; fixed and co-trained VR). */
async function single(opts: EvalOptions, split: 'val' | 'test'): Promise<void> {
  let sets: string[] = [];
  if (!opts.run) {
    const [ip] = specsOf('--ip', opts.ip, IP_ARCHS, 'srresnet');
    const [vr] = specsOf('--vr', opts.vr, VR_ARCHS, 'smallresnet');
    const ipArch = parseSpec(opts.ip[0]!, IP_ARCHS).arch;
    const vrArch = opts.vr[0] ? parseSpec(opts.vr[0], VR_ARCHS).arch : null;
    sets = [
      `ip.weights=${ip!.weights}`,
      'vr.pretrain_steps=0',
      ...(ipArch ? [`ip.arch=${ipArch}`] : []),
      ...(vr ? [`vr.weights=${vr.weights}`] : []),
      ...(vrArch ? [`vr.arch=${vrArch}`] : []),
    ];
  }
  const config = opts.run ? await configFrom({ ...opts, config: join(opts.run, 'config.json') }) : await configFrom(opts, sets);
  const metrics = await withSession(config, opts, async (session) => {
    if (opts.run) await session.load(join(opts.run, 'checkpoints', 'last.pt'));
    else await session.pretrain(0); // the loaded VR becomes the fixed evaluation VR
    return session.evaluate(split, config.eval.limit);
  });
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
