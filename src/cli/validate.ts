/** `gradprom validate --config FILE`: the config parsed and resolved, the files it names looked for; nothing is trained. */
import type { Command } from 'commander';
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { loadConfig, type Config, type ConfigIssue } from '../config/index.js';
import { EXIT } from './exit-codes.js';
import { collect, out, usage, type Common } from './common.js';

/** One file or folder a config names, and whether it is there. */
export interface FileCheck {
  field: string;
  path: string;
  want: 'file' | 'folder';
  status: 'ok' | 'missing' | 'not a file' | 'not a folder';
}

export interface Validation {
  config: string;
  ok: boolean;
  issues: ConfigIssue[];
  files: FileCheck[];
  resolved?: Config;
}

/** A path as the sidecar will read it: `~` expanded, relative to the working folder. */
function where(p: string): string {
  return resolve(p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p);
}

function check(field: string, path: string, want: FileCheck['want']): FileCheck {
  const full = where(path);
  let status: FileCheck['status'] = 'missing';
  try {
    const st = statSync(full);
    status = want === 'file' ? (st.isFile() ? 'ok' : 'not a file') : st.isDirectory() ? 'ok' : 'not a folder';
  } catch {
    /* missing */
  }
  return { field, path: full, want, status };
}

/** The files and folders a resolved config names (data folder and its parts, weights, plugin folders). */
export function filesOf(c: Config): FileCheck[] {
  const out: FileCheck[] = [];
  const d = c.data;
  if (d.kind !== 'synthetic') {
    // Named parts are relative to data.path (the working folder without one), as the sidecar reads them.
    const base = d.path === null ? '' : where(d.path);
    const part = (field: string, value: string | null, want: FileCheck['want']) => {
      if (value !== null) out.push(check(`data.${field}`, isAbsolute(value) || value.startsWith('~') ? value : join(base, value), want));
    };
    if (d.path !== null) out.push(check('data.path', d.path, 'folder'));
    if (d.kind === 'imagefolder') for (const [split, folder] of Object.entries(d.folders)) part(`folders.${split}`, folder, 'folder');
    if (d.kind === 'imagenet-val') for (const f of ['ground_truth', 'synsets'] as const) part(f, d[f], 'file');
    if (d.kind === 'folder' || d.kind === 'dicom') part('masks_dir', d.masks_dir, 'folder');
    part('labels_csv', d.labels_csv, 'file');
    if (d.kind === 'nifti') {
      part('image', d.image, 'file');
      part('label_volume', d.label_volume, 'file');
      part('volumes_csv', d.volumes_csv, 'file');
    }
    if (d.kind === 'nifti' || d.kind === 'dicom-series') part('label_map', d.label_map, 'file');
  }
  if (c.ip.weights !== null) out.push(check('ip.weights', c.ip.weights, 'file'));
  if (c.vr.weights !== null) out.push(check('vr.weights', c.vr.weights, 'file'));
  if (c.ip.plugin_path !== null) out.push(check('ip.plugin_path', c.ip.plugin_path, 'folder'));
  if (c.vr.plugin_path !== null) out.push(check('vr.plugin_path', c.vr.plugin_path, 'folder'));
  return out;
}

/** Parses and resolves `file` (with `sets`), then looks for the files it names. */
export async function validate(file: string, sets: readonly string[] = []): Promise<Validation> {
  const r = await loadConfig(file, sets);
  if (!r.ok) return { config: file, ok: false, issues: r.issues, files: [] };
  return { config: file, ok: true, issues: [], files: filesOf(r.config), resolved: r.config };
}

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
      const v = await validate(opts.config, opts.set);
      const text = formatValidation(v);
      if (!v.ok && !opts.json) process.stderr.write(`${text}\n`);
      else out(opts, text, v);
      const missing = v.files.some((f) => f.status !== 'ok');
      if (!v.ok || (opts.requireFiles && missing)) process.exitCode = EXIT.config;
    });
}
