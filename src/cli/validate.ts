/** `gradprom validate --config FILE`: the config parsed and resolved, the files it names looked for; nothing is trained. */
import type { Command } from 'commander';
import { validateConfig, type Validation } from '../api/validate.js';
import { EXIT } from './exit-codes.js';
import { collect, out, usage, type Common } from './common.js';

/** The report: one line per config issue, or per named file with its status. */
export function formatValidation(v: Validation): string {
  if (!v.ok) return [`${v.config}: invalid config`, ...v.issues.map((i) => `  ${i.path || '(file)'}: ${i.message}`)].join('\n');
  const width = Math.max(0, ...v.files.map((f) => f.field.length));
  const lines = [`${v.config}: valid config`];
  for (const f of v.files)
    lines.push(`  ${f.field.padEnd(width)}  ${f.status === 'ok' ? 'found  ' : `${f.status.toUpperCase()} `} ${f.path} (${f.want})`);
  const missing = v.files.filter((f) => f.status !== 'ok').length;
  lines.push(
    v.files.length === 0
      ? 'names no files (built-in data, no weights)'
      : missing
        ? `${missing} of ${v.files.length} named files or folders are not there yet: a run would stop at the first`
        : `all ${v.files.length} named files and folders are there`,
  );
  return lines.join('\n');
}

/** Adds `gradprom validate` to the program. */
export function addValidateCommand(program: Command): void {
  program
    .command('validate')
    .description('parse and resolve a config, and look for the files it names (data, weights); trains nothing')
    .requiredOption('-c, --config <file>', 'the config (YAML or JSON)')
    .option('-s, --set <path=value>', 'override one config field (repeatable)', collect, [])
    .option('--require-files', 'exit 2 also when a named file or folder is missing')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'print the result (with the resolved config) as JSON')
    .action(async (opts: Common & { config: string; requireFiles?: boolean }) => {
      if (!opts.config) usage('validate needs --config FILE');
      const v = await validateConfig(opts.config, opts.set);
      const text = formatValidation(v);
      if (!v.ok && !opts.json) process.stderr.write(`${text}\n`);
      else out(opts, text, v);
      const missing = v.files.some((f) => f.status !== 'ok');
      if (!v.ok || (opts.requireFiles && missing)) process.exitCode = EXIT.config;
    });
}
