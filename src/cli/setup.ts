/** `gradprom setup [-- PIP_ARGS]`: make (or check) the shared Python environment; scripts/setup-python.mjs does the work. */
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { join } from 'node:path';
import { packageRoot } from '../sidecar/python.js';
import { EXIT } from './exit-codes.js';

/** Adds `gradprom setup` to the program. */
export function addSetupCommand(program: Command): void {
  program
    .command('setup')
    .description(
      'make the shared Python environment (once per user and requirements; pip options after --, e.g. -- --index-url https://download.pytorch.org/whl/cu124)',
    )
    .option('--force', 'make it again even when it is complete')
    .argument('[pip-args...]', 'extra pip options (also GRADPROM_PIP_ARGS)')
    .allowUnknownOption()
    .action((pipArgs: string[], opts: { force?: boolean }) => {
      const script = join(packageRoot, 'scripts', 'setup-python.mjs');
      const args = [script, ...(opts.force ? ['--force'] : []), '--', ...pipArgs];
      const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
      process.exitCode = r.status === 0 ? EXIT.ok : EXIT.pythonEnv;
    });
}
