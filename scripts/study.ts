/**
 * `npm run study`: the comparisons behind docs/STUDY.md, run with `compare` and written up from their numbers.
 *
 *   npm run study                    # every regime of scripts/study.yaml (about an hour on 2 idle cores), writes docs/STUDY.md
 *   npm run study -- --quick         # tiny sizes, to check the script in minutes; writes runs/study-quick/STUDY.md
 *   npm run study -- --report-only   # rewrite STUDY.md from the comparisons already in runs/study (or runs/study-quick)
 *   npm run study -- --parallel 1    # runs at once (default: study.yaml's `parallel`)
 *
 * A study that stops (Ctrl-C, a crash) continues where it stopped when run again: each regime is a resumable
 * comparison in runs/study/<name>/.
 */
import { Command, InvalidArgumentError } from 'commander';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig, type Config } from '../src/config/index.js';
import { isGradpromError } from '../src/errors.js';
import { stderrLogger } from '../src/sidecar/logger.js';
import { packageRoot } from '../src/sidecar/python.js';
import { Sidecar } from '../src/sidecar/sidecar.js';
import { reportCompare, runCompare } from '../src/train/compare.js';
import { parseLambdas } from '../src/train/plan.js';
import { cpuBusy, loadNow } from './machine.js';
import { studyMarkdown, type RegimeResult, type StudyMeta } from './study-report.js';
import { studySchema, type Invocation, type Study } from './study-schema.js';

const STUDY_DIR = join(packageRoot, 'configs', 'study');

/** runs/study/study-times.json: wall seconds per regime, summed over invocations, and every invocation. */
interface StudyTimes {
  times: Record<string, number>;
  invocations: Invocation[];
}

interface StudyArgs {
  quick: boolean;
  reportOnly: boolean;
  parallel?: number;
}

/** The command line, parsed with commander as the CLI's and the bench's are (bad flags exit 2). */
function parseArgs(argv: string[]): StudyArgs {
  const positive = (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
    return n;
  };
  const opts = new Command('npm run study --')
    .description('run the comparisons of scripts/study.yaml and write docs/STUDY.md')
    .option('--quick', 'tiny sizes, to check the script; writes runs/study-quick/STUDY.md (also GRADPROM_STUDY_QUICK=1)', false)
    .option('--report-only', 'rewrite the reports and STUDY.md from the runs on disk, training nothing', false)
    .option('--parallel <n>', "runs at once (default: study.yaml's `parallel`)", positive)
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .parse(argv, { from: 'user' })
    .opts<StudyArgs>();
  return { ...opts, quick: opts.quick || process.env.GRADPROM_STUDY_QUICK === '1' };
}

/** scripts/study.yaml (the plan: regimes, policies, seeds), checked. */
function readStudy(): Study {
  const file = join(packageRoot, 'scripts', 'study.yaml');
  const r = studySchema.safeParse(parseYaml(readFileSync(file, 'utf8')));
  if (!r.success) throw new Error(`${file}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** A regime's config (with the quick overrides), or exit naming the problems. */
async function regimeConfig(study: Study, regime: Study['regimes'][number], quick: boolean): Promise<Config> {
  const r = await loadConfig(join(STUDY_DIR, regime.config), [...(regime.set ?? []), ...(quick ? study.quick.set : [])]);
  if (!r.ok) throw new Error(`${regime.config}: ${r.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return r.config;
}

/** Torch and Python versions, from a sidecar's handshake. */
async function versions(): Promise<{ torch: string; python: string; device: string }> {
  const sc = await Sidecar.start({ device: 'auto' });
  try {
    return { torch: sc.info.torch, python: sc.info.python, device: sc.info.device };
  } finally {
    await sc.stop();
  }
}

/** What a comparison's missing runs say when no failure was seen in this invocation (e.g. with --report-only). */
function unfinished(missing: readonly string[]): string | null {
  return missing.length ? `${missing.length} planned runs did not finish (${missing.join(', ')})` : null;
}

async function main(): Promise<void> {
  const { quick, reportOnly, parallel: parallelFlag } = parseArgs(process.argv.slice(2));
  const study = readStudy();
  const parallel = parallelFlag ?? study.parallel;
  const base = join(packageRoot, 'runs', quick ? 'study-quick' : 'study');
  const out = quick ? join(base, 'STUDY.md') : join(packageRoot, 'docs', 'STUDY.md');
  mkdirSync(base, { recursive: true });
  const ac = new AbortController();
  process.on('SIGINT', () => (ac.signal.aborted ? process.exit(130) : ac.abort()));
  const started = new Date();
  const busyStart = await cpuBusy();
  const loadStart = loadNow();
  const results: RegimeResult[] = [];
  const seedCounts: Record<string, number> = {};
  const metaFile = join(base, 'study-times.json');
  const stopped: Record<string, string> = {};
  // Every invocation is recorded as it goes (start, last update, machine state), so an interrupted study keeps its times.
  const saved = existsSync(metaFile) ? (JSON.parse(readFileSync(metaFile, 'utf8')) as Partial<StudyTimes> & Record<string, unknown>) : {};
  const times: Record<string, number> = saved.times ?? (saved.invocations ? {} : (saved as Record<string, number>));
  const invocations: Invocation[] = saved.invocations ?? [];
  const mine: Invocation = { start: started.toISOString(), end: null, regimes: [], loadStart, busyStart, loadEnd: null, busyEnd: null };
  if (!reportOnly) invocations.push(mine);
  const record = async (): Promise<void> => {
    if (reportOnly) return; // rewriting the report is no invocation of the study
    mine.end = new Date().toISOString();
    mine.loadEnd = loadNow();
    mine.busyEnd = await cpuBusy();
    writeFileSync(metaFile, `${JSON.stringify({ times, invocations } satisfies StudyTimes, null, 2)}\n`);
  };
  await record();
  for (const regime of study.regimes) {
    const config = await regimeConfig(study, regime, quick);
    const seeds = quick ? study.quick.seeds : (regime.seeds ?? study.seeds);
    seedCounts[regime.name] = seeds;
    const lambdas = parseLambdas(regime.lambdas, config.policy.lambda_mode);
    if (typeof lambdas === 'string') throw new Error(`study.yaml: regime ${regime.name}: lambdas: ${lambdas}`);
    const dir = join(base, regime.name);
    if (!reportOnly) {
      process.stderr.write(`study: ${regime.name} (${relative(packageRoot, dir)})\n`);
      const t0 = Date.now();
      const compare = runCompare(config, {
        policies: study.policies,
        controls: study.controls,
        lambdas,
        seeds,
        outDir: dir,
        resume: existsSync(join(dir, 'plan.json')),
        parallel,
        logger: stderrLogger('warn'),
        signal: ac.signal,
        onRun: (name, done, total) => process.stderr.write(`study: ${regime.name}: ${name} finished (${done} of ${total})\n`),
      });
      await compare.catch((e: unknown) => {
        // study.yaml or a regime's config changed since that comparison started: say how to start it afresh.
        if (isGradpromError(e, 'CONFIG'))
          throw new Error(`${(e as Error).message}\n(to run ${regime.name} afresh, delete ${relative(packageRoot, dir)})`);
        if (!isGradpromError(e, 'RUN')) throw e;
        // A run that fails on its own (e.g. it diverges past train.max_skips) is a finding: the regime is reported
        // with its missing runs and the study goes on.
        stopped[regime.name] = (e as Error).message;
        process.stderr.write(`study: ${regime.name} stopped: ${(e as Error).message}\n`);
      });
      times[regime.name] = (times[regime.name] ?? 0) + (Date.now() - t0) / 1000;
      mine.regimes.push(regime.name);
      await record();
    }
    // The report is rewritten from the runs on disk, so --report-only also picks up changes to the report code.
    if (!existsSync(join(dir, 'plan.json'))) throw new Error(`${dir}: no comparison; run the study without --report-only first`);
    await reportCompare(dir);
    // runs/ is not committed: the full study's doc links copies of each comparison's report and figures in docs/study/.
    const shown = quick ? dir : join(packageRoot, 'docs', 'study', regime.name);
    if (!quick) {
      mkdirSync(shown, { recursive: true });
      for (const f of ['compare.md', 'tradeoff.svg', 'descent.svg'])
        if (existsSync(join(dir, f))) copyFileSync(join(dir, f), join(shown, f));
    }
    const compare = JSON.parse(readFileSync(join(dir, 'compare.json'), 'utf8')) as RegimeResult['compare'];
    results.push({
      name: regime.name,
      title: regime.title,
      file: regime.config,
      config,
      dir,
      linked: relative(dirname(out), shown),
      stopped: stopped[regime.name] ?? unfinished(compare.missing),
      compare,
      wallSeconds: times[regime.name] ?? null,
    });
  }
  const meta: StudyMeta = {
    command: `npm run study${quick ? ' -- --quick' : ''}${parallelFlag ? ` -- --parallel ${parallel}` : ''}`,
    started,
    wallSeconds: Object.values(times).reduce((a, b) => a + b, 0),
    loadStart,
    loadEnd: loadNow(),
    busyStart,
    busyEnd: await cpuBusy(),
    parallel,
    seeds: seedCounts,
    quick,
    invocations,
    ...(await versions()),
  };
  writeFileSync(out, studyMarkdown(study, results, meta));
  process.stderr.write(`study: wrote ${relative(packageRoot, out)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`study: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit((e as { code?: string }).code === 'INTERRUPTED' ? 130 : 1);
});
