/** Validating a config without training: parsed and resolved, and the files it names looked for. */
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { loadConfig, loadConfigObject, type Config, type ConfigInput, type ConfigIssue } from '../config/index.js';

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

/** Parses and resolves a config file (with `sets`) or object, then looks for the files it names; never throws for a bad config. */
export async function validateConfig(source: string | ConfigInput, sets: readonly string[] = []): Promise<Validation> {
  const name = typeof source === 'string' ? source : '(object)';
  const r = typeof source === 'string' ? await loadConfig(source, sets) : loadConfigObject(source, sets);
  if (!r.ok) return { config: name, ok: false, issues: r.issues, files: [] };
  return { config: name, ok: true, issues: [], files: filesOf(r.config), resolved: r.config };
}

/** The former name of validateConfig, for a file. */
export const validate = (file: string, sets: readonly string[] = []): Promise<Validation> => validateConfig(file, sets);
