/** Published results to print beside a transfer table: ESTR's top-1 accuracies (configs/estr/published.csv). */
import type { TransferTable } from './transfer-table.js';
import { mdTable } from './run-report.js';
import { fmt } from './stats.js';

/** One published row: a task's processing model and its top-1 % per recognizer arch. */
export interface PublishedRow {
  task: string;
  model: string;
  top1: Record<string, number>;
}

/** A malformed published-results file; the message names the file and line. */
export class PublishedError extends Error {
  readonly code = 'published_format' as const;
}

/** True for a {@link PublishedError}. */
export function isPublishedError(e: unknown): e is PublishedError {
  return e instanceof PublishedError;
}

/** Parses `task,model,<arch>,...` CSV text (lines starting with `#` are comments) into rows; `source` names the file in errors. */
export function parsePublished(text: string, source: string): PublishedRow[] {
  const lines = text.split(/\r?\n/).map((l, i) => ({ l: l.trim(), n: i + 1 }));
  const body = lines.filter(({ l }) => l && !l.startsWith('#'));
  const head = body[0];
  const columns = head ? head.l.split(',').map((c) => c.trim()) : [];
  if (!head || columns[0] !== 'task' || columns[1] !== 'model' || columns.length < 3) {
    throw new PublishedError(`${source}:${head?.n ?? 1}: expected a header task,model,<arch>,...`);
  }
  return body.slice(1).map(({ l, n }) => {
    const cells = l.split(',').map((c) => c.trim());
    if (cells.length !== columns.length) throw new PublishedError(`${source}:${n}: expected ${columns.length} fields, got ${cells.length}`);
    const top1: Record<string, number> = {};
    columns.slice(2).forEach((arch, i) => {
      const v = Number(cells[i + 2]);
      if (cells[i + 2] === '' || !Number.isFinite(v))
        throw new PublishedError(`${source}:${n}: ${arch}: expected a number, got "${cells[i + 2]}"`);
      top1[arch] = v;
    });
    return { task: cells[0]!, model: cells[1]!.toLowerCase(), top1 };
  });
}

/** The published model a row label names: its lower case, `unsupervised RA` as `unsupervised`. */
function modelOf(label: string): string {
  const l = label.trim().toLowerCase();
  return l === 'unsupervised ra' ? 'unsupervised' : l;
}

/** Each of the table's processing models whose label names a published model of `task`: top-1 % as "ours (published)" per recognizer. */
export function referenceMarkdown(t: TransferTable, rows: readonly PublishedRow[], task: string, source: string): string {
  const mine = rows.filter((r) => r.task === task);
  if (!mine.length) return `No published row for task "${task}" in ${source} (tasks: ${[...new Set(rows.map((r) => r.task))].join(', ')}).`;
  const body = t.rows
    .filter((r) => r.kind === 'ip')
    .map((r) => ({ r, ref: mine.find((p) => p.model === modelOf(r.label)) }))
    .filter((x) => x.ref !== undefined)
    .map(({ r, ref }) => [
      r.label,
      ...t.recognizers.map((v) => {
        const ours = r.top1[v.label];
        const theirs = ref!.top1[v.arch];
        return `${fmt(typeof ours === 'number' ? 100 * ours : ours, 1)} (${theirs === undefined ? '–' : theirs.toFixed(1)})`;
      }),
    ]);
  if (!body.length) return `No processing model label matches a published model of "${task}" (${mine.map((p) => p.model).join(', ')}).`;
  return [
    `Top-1 (%) beside the published figure in brackets (${source}, task ${task}):`,
    '',
    mdTable(['processing model', ...t.recognizers.map((v) => v.label)], body),
  ].join('\n');
}
