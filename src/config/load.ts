/**
 * Reads a JSON or YAML config file, applies `--set a.b=value` overrides, and validates; problems come back as issues.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import YAML from 'yaml';
import { isPlainObject, setOwn, withDefaults, type Obj } from './defaults.js';
import { parseConfig, show, type ConfigIssue, type ConfigResult, type SchemaOptions } from './schema.js';

type Read = { ok: true; value: unknown } | { ok: false; issue: ConfigIssue };

function fileIssue(file: string, message: string): Read {
  return { ok: false, issue: { code: 'file', path: '', message: `${file}: ${message}` } };
}

/** Line and column of a character offset in a text (both 1-based). */
function lineCol(text: string, offset: number): [number, number] {
  const before = text.slice(0, offset).split('\n');
  return [before.length, before[before.length - 1]!.length + 1];
}

/** Reads and parses one config file (.json, .yaml, .yml); an empty file is an empty config. */
export async function readConfigFile(file: string): Promise<Read> {
  const ext = extname(file).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(ext)) return fileIssue(file, `unsupported extension "${ext}" (use .json, .yaml or .yml)`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = isPlainObject(err) && typeof err.code === 'string' ? err.code : String(err);
    return fileIssue(file, code === 'ENOENT' ? 'file not found' : `cannot read (${code})`);
  }
  let value: unknown;
  if (ext === '.json') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      // V8 messages may quote the whole source; keep the first clause, and the position when given.
      const msg = (err instanceof Error ? err.message : String(err)).replace(/,\s*"[\s\S]*" is not valid JSON$/, '');
      const pos = /position (\d+)/.exec(msg);
      const where = pos && !/line \d+/.test(msg) ? `line ${lineCol(text, Number(pos[1])).join(', column ')}: ` : '';
      return fileIssue(file, `${where}invalid JSON (${msg})`);
    }
  } else {
    const doc = YAML.parseDocument(text, { prettyErrors: false });
    const err = doc.errors[0];
    if (err) {
      const [line, col] = err.linePos?.[0] ? [err.linePos[0].line, err.linePos[0].col] : lineCol(text, err.pos[0]);
      return fileIssue(file, `line ${line}, column ${col}: ${err.message}`);
    }
    value = doc.toJS();
  }
  if (value === null || value === undefined) return { ok: true, value: {} };
  if (!isPlainObject(value))
    return fileIssue(file, `the top level must be a mapping, got ${Array.isArray(value) ? 'a list' : show(value)}`);
  return { ok: true, value };
}

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

/** Applies one `path=value` override in place (value read as a YAML scalar or flow collection); returns an issue or null. */
export function applySet(target: Obj, assignment: string): ConfigIssue | null {
  const eq = assignment.indexOf('=');
  const rawPath = eq < 0 ? assignment : assignment.slice(0, eq);
  const issue = (message: string): ConfigIssue => ({ code: 'set', path: rawPath, message: `--set ${assignment}: ${message}` });
  if (eq < 0) return issue('expected "path=value"');
  const keys = rawPath.split('.');
  if (keys.some((k) => k === '')) return issue('empty key in path');
  if (keys.some((k) => FORBIDDEN.has(k))) return issue('forbidden key in path');
  let value: unknown;
  try {
    value = YAML.parse(assignment.slice(eq + 1));
  } catch (err) {
    return issue(`cannot read value (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
  }
  let node: unknown = target;
  for (const [i, key] of keys.entries()) {
    const last = i === keys.length - 1;
    const where = keys.slice(0, i).join('.') || 'the config';
    if (Array.isArray(node)) {
      const idx = /^\d+$/.test(key) ? Number(key) : -1;
      if (idx < 0 || idx > node.length) return issue(`${where} is a list of ${node.length}; "${key}" is not an index in 0..${node.length}`);
      if (last) node[idx] = value;
      else {
        if (!isPlainObject(node[idx]) && !Array.isArray(node[idx])) node[idx] = {};
        node = node[idx];
      }
    } else if (isPlainObject(node)) {
      if (last) setOwn(node, key, value);
      else {
        const next = node[key];
        // A null (or absent) section, such as data.window, becomes a mapping to set into.
        if (next === null || next === undefined) setOwn(node, key, {});
        node = node[key];
      }
    } else {
      return issue(`${where} is ${show(node)}, not a mapping or list`);
    }
  }
  return null;
}

/** Loads a config: the file (or nothing) over the defaults, then each `--set`, then validation; never throws. */
export async function loadConfig(file: string | null, sets: readonly string[] = [], options: SchemaOptions = {}): Promise<ConfigResult> {
  let raw: unknown = {};
  if (file !== null) {
    const read = await readConfigFile(file);
    if (!read.ok) return { ok: false, issues: [read.issue] };
    raw = read.value;
  }
  // Overrides apply to the merged config, so `--set degradation.0.sigma=0.5` edits the default entry.
  const merged = withDefaults(raw);
  if (!isPlainObject(merged)) return parseConfig(merged, options);
  const issues = sets.map((s) => applySet(merged, s)).filter((i): i is ConfigIssue => i !== null);
  if (issues.length) return { ok: false, issues };
  return parseConfig(merged, options);
}
