/** What every `gradprom` command shares: the common flags, the config from --config/--set, output, usage errors, a session. */
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config/index.js';
import { Sidecar } from '../sidecar/sidecar.js';
import { stderrLogger } from '../sidecar/logger.js';
import { RemoteSession } from '../train/remote.js';
import { EXIT } from './exit-codes.js';

export interface Common {
  config?: string;
  set: string[];
  quiet?: boolean;
  json?: boolean;
  verbose?: boolean;
}

/** Commander's collector for a repeatable option. */
export const collect = (value: string, previous: string[]) => [...previous, value];

/** The config from `--config` and `--set`, or exit 2 with one line per issue. */
export async function configFrom(opts: Common, extraSets: string[] = []): Promise<Config> {
  const r = await loadConfig(opts.config ?? null, [...extraSets, ...opts.set]);
  if (r.ok) return r.config;
  for (const i of r.issues) process.stderr.write(`gradprom: config${i.path ? ` ${i.path}` : ''}: ${i.message}\n`);
  process.exit(EXIT.config);
}

/** Prints `text`, or `data` as JSON with --json, or nothing with --quiet. */
export function out(opts: Common, text: string, data: unknown): void {
  if (opts.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (!opts.quiet) process.stdout.write(`${text}\n`);
}

/** Adds the shared flags (and --config/--set unless `config` is false). */
export function withCommon(cmd: Command, config = true): Command {
  if (config) {
    cmd.option('-c, --config <file>', 'experiment config (YAML or JSON); defaults fill the rest');
    cmd.option('-s, --set <path=value>', 'override one config field, e.g. train.steps=200 (repeatable)', collect, []);
  }
  return cmd
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'print the result as JSON on stdout (for pipelines)')
    .option('-v, --verbose', 'show stacks on errors and the sidecar log');
}

/** A usage error: one line on stderr, exit 2. */
export function usage(message: string): never {
  process.stderr.write(`gradprom: ${message}\n`);
  process.exit(EXIT.usage);
}

/** Start a sidecar on the config's device, run `fn` with it, stop it. */
export async function withSidecar<T>(config: Config, opts: Common, fn: (sidecar: Sidecar) => Promise<T>): Promise<T> {
  const sidecar = await Sidecar.start({ device: config.device, logger: stderrLogger(opts.verbose ? 'info' : 'warn') });
  try {
    return await fn(sidecar);
  } finally {
    await sidecar.stop();
  }
}

/** Start a sidecar, create a session from `config`, run `fn`, stop the sidecar. */
export async function withSession<T>(config: Config, opts: Common, fn: (s: RemoteSession) => Promise<T>): Promise<T> {
  return withSidecar(config, opts, async (sidecar) => fn(await RemoteSession.create(sidecar, config)));
}
