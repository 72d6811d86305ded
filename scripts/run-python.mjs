#!/usr/bin/env node
// Runs the sidecar's interpreter with python/ on PYTHONPATH: `node scripts/run-python.mjs -m pytest ...`.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { root, sidecarPython } from './python-env.mjs';

const python = sidecarPython();
if (!python) {
  console.error('gradprom: no Python environment; run `npm install` (or `node scripts/setup-python.mjs --dev`), or set GRADPROM_PYTHON.');
  process.exit(1);
}
const sep = process.env.PYTHONPATH ? `:${process.env.PYTHONPATH}` : '';
const r = spawnSync(python, process.argv.slice(2), {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, PYTHONPATH: join(root, 'python') + sep },
});
process.exit(r.status ?? 1);
