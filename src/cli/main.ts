/** The `gradprom` command line: train, compare, eval, enhance, doctor, inspect. */
import { Command, Option } from 'commander';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig, type Config } from '../config/index.js';
import { isGradpromError } from '../errors.js';
import { POLICY_NAMES, type PolicyName } from '../policy/index.js';
import { Sidecar } from '../sidecar/sidecar.js';
import { stderrLogger } from '../sidecar/logger.js';
import { runCompare } from '../train/compare.js';
import { progressFor } from '../train/progress.js';
import { RemoteSession } from '../train/remote.js';
import { runExperiment } from '../train/runner.js';
import { doctor, formatDoctor } from './doctor.js';
import { evalTable } from './eval-table.js';
import { EXIT, exitCodeOf } from './exit-codes.js';
import { formatInspect, inspect } from './inspect.js';

interface Common {
  config?: string;
  set: string[];
  quiet?: boolean;
  json?: boolean;
  verbose?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** The config from `--config` and `--set`, or exit 2 with one line per issue. */
async function configFrom(opts: Common, extraSets: string[] = []): Promise<Config> {
  const r = await loadConfig(opts.config ?? null, [...extraSets, ...opts.set]);
  if (r.ok) return r.config;
  for (const i of r.issues) process.stderr.write(`gradprom: config${i.path ? ` ${i.path}` : ''}: ${i.message}\n`);
  process.exit(EXIT.config);
}

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

function out(opts: Common, text: string, data: unknown): void {
  if (opts.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (!opts.quiet) process.stdout.write(`${text}\n`);
}

function withCommon(cmd: Command, config = true): Command {
  if (config) {
    cmd.option('-c, --config <file>', 'experiment config (YAML or JSON); defaults fill the rest');
    cmd.option('-s, --set <path=value>', 'override one config field, e.g. train.steps=200 (repeatable)', collect, []);
  }
  return cmd
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'print the result as JSON on stdout (for pipelines)')
    .option('-v, --verbose', 'show stacks on errors and the sidecar log');
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

  withCommon(program.command('compare').description('compare policies over λ values and seeds; writes a table and a trade-off plot'))
    .option('--policies <list>', `comma-separated, from ${POLICY_NAMES.join(', ')}`, 'ip-only,joint,gradprom')
    .option('--lambdas <list>', 'comma-separated λ values (default: policy.lambda)')
    .option('--seeds <n>', 'number of training seeds (seed, seed+1, ...)', '1')
    .option('--out <dir>', 'comparison folder (default: <output.dir>/<output.name or "compare">)')
    .option('--force', 'replace an existing comparison folder (renamed aside)')
    .action(async (opts: Common & { policies: string; lambdas?: string; seeds: string; out?: string; force?: boolean }) => {
      const config = await configFrom(opts);
      const policies = opts.policies.split(',').map((p) => p.trim()) as PolicyName[];
      const bad = policies.filter((p) => !POLICY_NAMES.includes(p));
      if (bad.length) usage(`--policies: unknown ${bad.join(', ')} (known: ${POLICY_NAMES.join(', ')})`);
      const lambdas = opts.lambdas ? opts.lambdas.split(',').map(Number) : [config.policy.lambda];
      if (lambdas.some((l) => !Number.isFinite(l) || l < 0)) usage(`--lambdas: expected non-negative numbers, got "${opts.lambdas}"`);
      const seeds = Number(opts.seeds);
      if (!Number.isInteger(seeds) || seeds < 1) usage(`--seeds: expected a positive integer, got "${opts.seeds}"`);
      const r = await runCompare(config, {
        policies,
        lambdas,
        seeds,
        ...(opts.out ? { outDir: opts.out } : {}),
        force: Boolean(opts.force),
        progress: progressFor({ ...opts, everyS: config.output.progress_every_s }),
        logger: stderrLogger(opts.verbose ? 'info' : 'warn'),
        signal: interruptSignal(),
      });
      out(opts, `${r.markdown}\n\nreport: ${join(r.dir, 'compare.md')}`, { dir: r.dir, groups: r.groups });
    });

  withCommon(
    program
      .command('eval')
      .description('reproduce with existing weights: PSNR/SSIM and recognition on clean, degraded and enhanced test images'),
  )
    .option('--ip <weights>', 'IP weights (.pt/.pth/.safetensors)')
    .option('--vr <weights>', 'VR weights, read as the fixed recognition model')
    .option('--run <dir>', "evaluate a run folder's last checkpoint instead")
    .option('--split <split>', 'val or test', 'test')
    .option('--out <dir>', 'also write eval.md and eval.json here')
    .action(async (opts: Common & { ip?: string; vr?: string; run?: string; split: string; out?: string }) => {
      if (!opts.run && !opts.ip) usage('eval needs --ip WEIGHTS (with --vr WEIGHTS) or --run DIR');
      if (opts.split !== 'val' && opts.split !== 'test') usage(`--split: expected val or test, got "${opts.split}"`);
      const sets = opts.run
        ? []
        : [`ip.weights=${resolve(opts.ip!)}`, 'vr.pretrain_steps=0', ...(opts.vr ? [`vr.weights=${resolve(opts.vr)}`] : [])];
      const config = opts.run ? await configFrom({ ...opts, config: join(opts.run, 'config.json') }) : await configFrom(opts, sets);
      const metrics = await withSession(config, opts, async (session) => {
        if (opts.run) await session.load(join(opts.run, 'checkpoints', 'last.pt'));
        else await session.pretrain(0); // the loaded VR becomes the fixed evaluation VR
        return session.evaluate(opts.split as 'val' | 'test', config.eval.limit);
      });
      const md = evalTable(metrics, config.vr.task);
      if (opts.out) {
        mkdirSync(opts.out, { recursive: true });
        writeFileSync(join(opts.out, 'eval.md'), `${md}\n`);
        writeFileSync(join(opts.out, 'eval.json'), `${JSON.stringify(metrics, null, 2)}\n`);
      }
      out(opts, md, metrics);
    });

  withCommon(program.command('enhance').description('enhance PNG/JPEG, DICOM files or series, or NIfTI volumes with trained IP weights'))
    .requiredOption('--ip <weights>', 'IP weights (.pt/.pth/.safetensors)')
    .requiredOption('--in <path>', 'an image or volume file, or a folder of them (its subfolders holding .dcm files are DICOM series)')
    .requiredOption('--out <dir>', 'where the enhanced files go (DICOM stays DICOM with its metadata, NIfTI keeps its affine and header)')
    .option('--series', '--in is one DICOM series folder: enhance it as a volume')
    .action(async (opts: Common & { ip: string; in: string; out: string; series?: boolean }) => {
      if (!existsSync(opts.in)) usage(`--in: ${opts.in} does not exist`);
      const isDir = statSync(opts.in).isDirectory();
      if (opts.series && !isDir) usage(`--series: ${opts.in} is not a folder`);
      const inputs = opts.series ? [resolve(opts.in)] : isDir ? enhanceInputs(opts.in) : [resolve(opts.in)];
      if (!inputs.length) usage(`--in: no .png, .jpg, .dcm, .nii or .nii.gz files, nor DICOM series folders, in ${opts.in}`);
      const config = await configFrom(opts, [`ip.weights=${resolve(opts.ip)}`, 'vr.pretrain_steps=0']);
      mkdirSync(opts.out, { recursive: true });
      const reply = await withSession(config, opts, (s) => s.sidecar.call('enhance.files', { inputs, out_dir: resolve(opts.out) }));
      const { written } = reply.result;
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
  program.addOption(new Option('--no-color').hideHelp());
  return program;
}

/** Start a sidecar, create a session from `config`, run `fn`, stop the sidecar. */
async function withSession<T>(config: Config, opts: Common, fn: (s: RemoteSession) => Promise<T>): Promise<T> {
  const sidecar = await Sidecar.start({ device: config.device, logger: stderrLogger(opts.verbose ? 'info' : 'warn') });
  try {
    return await fn(await RemoteSession.create(sidecar, config));
  } finally {
    await sidecar.stop();
  }
}

/** The inputs of `enhance --in DIR`: its image and volume files, and each subfolder holding .dcm files (a DICOM series). */
function enhanceInputs(dir: string): string[] {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  return entries
    .filter((e) =>
      e.isDirectory() ? readdirSync(join(dir, e.name)).some((f) => /\.dcm$/i.test(f)) : /\.(png|jpe?g|dcm|nii|nii\.gz)$/i.test(e.name),
    )
    .map((e) => resolve(dir, e.name));
}

function usage(message: string): never {
  process.stderr.write(`gradprom: ${message}\n`);
  process.exit(EXIT.usage);
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
