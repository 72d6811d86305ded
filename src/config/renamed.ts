/**
 * Config keys that were renamed: an old key is refused with an issue naming its new key, rather than the schema's
 * "unknown key", so that a config written for an earlier version says how to fix it.
 */
import { isPlainObject } from './defaults.js';

/** Old dotted key → new dotted key, in the same section. */
export const RENAMED_KEYS: Readonly<Record<string, string>> = {
  // gram | vectors is what the sidecar sends back, not the sidecar's own transport (ipc | tcp).
  'train.transport': 'train.grad_exchange',
  // A label volume, beside labels_csv (class labels).
  'data.labels': 'data.label_volume',
};

/** A config issue (`ConfigIssue`) saying which key replaced an old one. */
export interface RenamedKeyIssue {
  code: 'renamed_key';
  path: string;
  message: string;
}

/** One issue per old key present in `raw` (the config as written, before or after the defaults). */
export function renamedKeyIssues(raw: unknown): RenamedKeyIssue[] {
  const out: RenamedKeyIssue[] = [];
  for (const [old, now] of Object.entries(RENAMED_KEYS)) {
    const keys = old.split('.');
    let node: unknown = raw;
    for (const key of keys.slice(0, -1)) node = isPlainObject(node) && Object.hasOwn(node, key) ? node[key] : undefined;
    if (isPlainObject(node) && Object.hasOwn(node, keys[keys.length - 1]!)) {
      out.push({ code: 'renamed_key', path: old, message: `"${old}" was renamed to "${now}"` });
    }
  }
  return out;
}
