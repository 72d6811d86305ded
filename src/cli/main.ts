/** The `gradprom` command line: train, compare, eval, enhance, doctor, inspect, convert, validate. */
import { Command, Option } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isGradpromError } from '../errors.js';
import { DEFAULTS, type Config } from '../config/index.js';
import { POLICY_NAMES, type PolicyName } from '../policy/index.js';
import { stderrLogger } from '../sidecar/logger.js';
import { reportCompare, resumeCompare, runCompare } from '../train/compare.js';
import { parseLambdas, type LambdaSetting } from '../train/plan.js';
import { progressFor } from '../train/progress.js';
import { runExperiment } from '../train/runner.js';
import { enhance, enhanceInputs } from '../api/evaluate.js';
import { configFrom, out, usage, withCommon, type Common } from './common.js';
import { addConvertCommand } from './convert.js';
import { doctor, formatDoctor } from './doctor.js';
import { addEvalCommand } from './eval.js';
import { EXIT, exitCodeOf } from './exit-codes.js';
import { formatInspect, inspect } from './inspect.js';
import { addSetupCommand } from './setup.js';
import { addValidateCommand } from './validate.js';

/** An AbortSignal fired by the first Ctrl-C / SIGTERM (finish the step, checkpoint); a second one exits at once. */
function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  const onSignal = () => {
    if (ac.signal.aborted) process.exit(EXIT.interrupted);
    process.stderr.write('\ngradprom: stopping after this step (again to abandon it)...\n');
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return ac.signal;
}

export function buildProgram(): Command {
  const program = new Command('gradprom')
    .description(
      'Task-driven medical image enhancement with Gradient Promotion (GradProm), trained from TypeScript over a PyTorch sidecar.',
    )
    .showHelpAfterError()
    // Before the subcommands are added: they copy this setting when created.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT.usage))
    .addHelpText('after', `\nExit codes: 0 ok, 1 run failed, 2 bad usage or config, 3 Python environment, 130 interrupted.`);

  withCommon(program.command('train').description('train one configuration into a run folder'))
    .option('--resume <dir>', 'continue the run in <dir> from its last checkpoint')
    .option('--out <dir>', 'run folder (default: <output.dir>/<output.name or policy-λ-seed>)')
    .option('--force', 'replace an existing run folder (the old one is renamed aside)')
    .option('--nproc <n>', 'sidecar ranks under torch.distributed on this machine (distributed.nproc); one GPU each on a GPU machine')
    .action(async (opts: Common & { resume?: string; out?: string; force?: boolean; nproc?: string }) => {
      if (opts.nproc !== undefined && !/^[1-9]\d*$/.test(opts.nproc)) usage(`--nproc: expected a positive integer, got "${opts.nproc}"`);
      const config = await configFrom(opts, opts.nproc ? [`distributed.nproc=${opts.nproc}`] : []);
      const runDir = opts.resume ?? opts.out;
      const r = await runExperiment(config, {
        ...(runDir ? { runDir } : {}),
        resume: Boolean(opts.resume),
        force: Boolean(opts.force),
        progress: progressFor({ ...opts, everyS: config.output.progress_every_s }),
        logger: stderrLogger(opts.verbose ? 'info' : 'warn'),
        signal: interruptSignal(),
      });
      out(opts, `run written to ${r.runDir} (report: ${join(r.runDir, 'report.md')})`, r.summary);
    });

  withCommon(
    program
      .command('compare')
      .description('compare policies over λ values and seeds; writes paired intervals, trade-off fronts and descent rates'),
  )
    .option('--policies <list>', `comma-separated, from ${POLICY_NAMES.join(', ')}`, 'ip-only,joint,gradprom')
    .option('--lambdas <list>', 'comma-separated λ values, each optionally suffixed n (normalized) or p (plain) (default: policy.lambda)')
    .option('--seeds <n>', 'number of training seeds (seed, seed+1, ...)', '1')
    .option('--out <dir>', 'comparison folder (default: <output.dir>/<output.name or "compare">)')
    .option('--force', 'replace an existing comparison folder (renamed aside)')
    .option('--resume <dir>', 'continue the comparison in <dir>: finished runs kept, interrupted ones resumed, missing ones started')
    .option('--report <dir>', 'write the report of <dir> from its finished runs, listing the missing ones (trains nothing)')
    .option('--parallel <n>', 'runs at once, one sidecar each: cuda:0..n-1 on a GPU machine; on CPU the cores are split among them', '1')
    .option(
      '--controls',
      "add the dose-matched controls random-gate and joint-scaled, each at its gradprom run's measured gate-open rate (needs gradprom)",
    )
    .option(
      '--pilot',
      'a pilot to size the real comparison: 3 seeds unless --seeds is given; its report gives the seeds each difference needs',
    )
    .option('--shard <i/n>', 'run only part i (0-based) of n disjoint parts of the plan into the shared folder (e.g. a Slurm array task)')
    .action(async (opts: CompareFlags, cmd: Command) => {
      const logger = stderrLogger(opts.verbose ? 'info' : 'warn');
      if (opts.report) {
        const clash = ['resume', 'out', 'force', 'shard'].filter((k) => opts[k as keyof CompareFlags] !== undefined);
        if (clash.length) usage(`--report trains nothing: drop --${clash.join(', --')}`);
        const r = await reportCompare(opts.report);
        out(
          opts,
          `${r.markdown}\nreport: ${join(r.dir, 'compare.md')}${r.missing.length ? ` (${r.missing.length} run(s) missing)` : ''}`,
          reportJson(r),
        );
        return;
      }
      if (opts.resume && (opts.out || opts.force)) usage('--resume <dir> names the folder: drop --out and --force');
      if (opts.shard && opts.force) usage('--shard joins a shared folder: --force would rename it under the other shards');
      const parallel = Number(opts.parallel);
      if (!Number.isInteger(parallel) || parallel < 1) usage(`--parallel: expected a positive integer, got "${opts.parallel}"`);
      const shard = opts.shard === undefined ? undefined : parseShard(opts.shard);
      // Status lines every `everyS` seconds when stderr is not a terminal (output.progress_every_s of the config).
      const sweep = (everyS: number) => ({
        parallel,
        ...(shard ? { shard } : {}),
        progress: progressFor({ ...opts, everyS }),
        logger,
        signal: interruptSignal(),
        onRun: (name: string, done: number, total: number) => {
          if (parallel > 1 && !opts.quiet && !opts.json) process.stderr.write(`gradprom: ${name} finished (${done} of ${total})\n`);
        },
        onFailed: (name: string, reason: string) => {
          if (!opts.json) process.stderr.write(`gradprom: ${name} failed (recorded; the comparison goes on): ${reason}\n`);
        },
      });
      const planFlags = ['config', 'set', 'policies', 'lambdas', 'seeds', 'controls', 'pilot'].filter(
        (k) => cmd.getOptionValueSource(k) === 'cli',
      );
      let r;
      if (opts.resume && planFlags.length === 0) r = await resumeCompare(opts.resume, sweep(DEFAULTS.output.progress_every_s));
      else {
        const config = await configFrom(opts);
        const where = opts.resume ? { outDir: opts.resume, resume: true } : opts.out ? { outDir: opts.out } : {};
        r = await runCompare(config, {
          ...planFrom(opts, config, cmd.getOptionValueSource('seeds') === 'cli'),
          ...sweep(config.output.progress_every_s),
          ...where,
          force: Boolean(opts.force),
        });
      }
      if (!r.report) {
        const text = `shard ${shard!.index}/${shard!.count}: ${r.trained.length} run(s) trained into ${r.dir}; once every shard has finished: gradprom compare --report ${r.dir}`;
        out(opts, text, { dir: r.dir, shard, trained: r.trained });
        return;
      }
      out(opts, `${r.report.markdown}\n\nreport: ${join(r.dir, 'compare.md')}`, reportJson({ ...r.report, dir: r.dir }));
    });

  addEvalCommand(program);

  withCommon(program.command('enhance').description('enhance PNG/JPEG, DICOM files or series, or NIfTI volumes with trained IP weights'))
    .requiredOption('--ip <weights>', 'IP weights (.pt/.pth/.safetensors)')
    .requiredOption('--in <path>', 'an image or volume file, or a folder of them (its subfolders holding .dcm files are DICOM series)')
    .requiredOption('--out <dir>', 'where the enhanced files go (DICOM stays DICOM with its metadata, NIfTI keeps its affine and header)')
    .option('--series', '--in is one DICOM series folder: enhance it as a volume')
    .action(async (opts: Common & { ip: string; in: string; out: string; series?: boolean }) => {
      if (!existsSync(opts.in)) usage(`--in: ${opts.in} does not exist`);
      if (opts.series && !statSync(opts.in).isDirectory()) usage(`--series: ${opts.in} is not a folder`);
      if (statSync(opts.in).isDirectory() && !opts.series && !enhanceInputs(opts.in).length)
        usage(`--in: no .png, .jpg, .dcm, .nii or .nii.gz files, nor DICOM series folders, in ${opts.in}`);
      const config = await configFrom(opts, [`ip.weights=${resolve(opts.ip)}`, 'vr.pretrain_steps=0']);
      const logger = stderrLogger(opts.verbose ? 'info' : 'warn');
      const { written } = await enhance({ ip: opts.ip, input: opts.in, out: opts.out, series: Boolean(opts.series), config, logger });
      out(opts, `${written.length} file(s) written to ${opts.out}`, { written });
    });

  withCommon(program.command('doctor').description('print Node, Python, torch, CUDA, libzmq and protocol versions'), false).action(
    async (opts: Common) => {
      const report = await doctor();
      out(opts, formatDoctor(report), report);
      if (!report.python.torch) process.exitCode = EXIT.pythonEnv;
    },
  );

  withCommon(
    program.command('inspect').description('list the tensors of a checkpoint or weights file').argument('<checkpoint>'),
    false,
  ).action(async (file: string, opts: Common) => {
    if (!existsSync(file)) usage(`${file} does not exist`);
    const info = await inspect(resolve(file));
    out(opts, formatInspect(info), info);
  });
  addConvertCommand(program);
  addValidateCommand(program);
  addSetupCommand(program);
  program.addOption(new Option('--no-color').hideHelp());
  return program;
}

interface CompareFlags extends Common {
  policies: string;
  lambdas?: string;
  seeds: string;
  out?: string;
  force?: boolean;
  resume?: string;
  report?: string;
  parallel: string;
  shard?: string;
  controls?: boolean;
  pilot?: boolean;
}

/** The plan's policies, λ settings and seed count from the flags (exit 2 on a bad one). */
function planFrom(
  opts: CompareFlags,
  config: Config,
  seedsGiven: boolean,
): { policies: PolicyName[]; lambdas: LambdaSetting[]; seeds: number; controls: boolean } {
  const policies = opts.policies.split(',').map((p) => p.trim()) as PolicyName[];
  const bad = policies.filter((p) => !POLICY_NAMES.includes(p));
  if (bad.length) usage(`--policies: unknown ${bad.join(', ')} (known: ${POLICY_NAMES.join(', ')})`);
  const lambdas = opts.lambdas
    ? parseLambdas(opts.lambdas, config.policy.lambda_mode)
    : [{ lambda: config.policy.lambda, mode: config.policy.lambda_mode }];
  if (typeof lambdas === 'string') usage(`--lambdas: ${lambdas}`);
  const seeds = opts.pilot && !seedsGiven ? 3 : Number(opts.seeds);
  if (!Number.isInteger(seeds) || seeds < 1) usage(`--seeds: expected a positive integer, got "${opts.seeds}"`);
  if (opts.controls && !policies.includes('gradprom')) usage("--controls matches gradprom's gate-open rate: add gradprom to --policies");
  return { policies, lambdas, seeds, controls: Boolean(opts.controls) };
}

/** `--shard i/n` as {index, count} with 0 <= i < n (exit 2 otherwise). */
function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count)
    usage(`--shard: expected i/n with 0 <= i < n (e.g. 0/4, as Slurm's $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT), got "${text}"`);
  return { index, count };
}

/** What --json prints for a comparison report. */
function reportJson(r: { dir: string; groups: unknown; pairs: unknown; fronts: unknown; missing: string[] }) {
  return { dir: r.dir, groups: r.groups, pairs: r.pairs, fronts: r.fronts, missing: r.missing };
}

/** Run the CLI; errors become one line (the stack with --verbose) and a documented exit code. */
export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const verbose = argv.includes('--verbose') || argv.includes('-v');
    const msg = isGradpromError(e) ? e.message : ((e as Error)?.message ?? String(e));
    process.stderr.write(`gradprom: ${verbose && e instanceof Error ? e.stack : msg.split('\n')[0]}\n`);
    if (!verbose && msg.includes('\n')) process.stderr.write('gradprom: (run with --verbose for details)\n');
    process.exit(exitCodeOf(e));
  }
}
