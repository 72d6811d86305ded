/** Every relative link and #anchor in README.md and docs/*.md points at a file that exists and a heading it has. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { root } from '../helpers.js';

/** GitHub's anchor for a heading: the rendered text, lower-cased, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link or image: its text
    .replace(/`|\*\*|__/g, '');
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The markdown outside fenced code blocks (links in code are not links). */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** The anchors of a markdown file: its headings' (GitHub's -1, -2 suffixes for repeats) and `<a id>` ones. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  for (const m of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  return out;
}

/** `[text](target)` and `![alt](target)` targets, with the line each is on. */
export function links(markdown: string): { target: string; line: number }[] {
  const text = prose(markdown).replace(/`[^`\n]*`/g, '');
  const out: { target: string; line: number }[] = [];
  for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    out.push({ target: m[1]!, line: text.slice(0, m.index).split('\n').length });
  }
  return out;
}

/** Problems with the relative links of `file` (absolute path), one line each, naming the file and line. */
export function brokenLinks(file: string, markdown = readFileSync(file, 'utf8')): string[] {
  const problems: string[] = [];
  const where = (line: number) => `${relative(root, file)}:${line}`;
  for (const { target, line } of links(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: and the like
    const [path, anchor] = target.split('#', 2) as [string, string | undefined];
    const dest = path ? resolve(dirname(file), decodeURIComponent(path)) : file;
    if (path && !existsSync(dest)) {
      problems.push(`${where(line)}: ${target}: ${relative(root, dest)} does not exist`);
      continue;
    }
    if (anchor === undefined || !dest.endsWith('.md')) continue;
    if (!anchors(path ? readFileSync(dest, 'utf8') : markdown).has(anchor.toLowerCase())) {
      problems.push(`${where(line)}: ${target}: no heading with anchor #${anchor} in ${relative(root, dest)}`);
    }
  }
  return problems;
}

const pages = [
  join(root, 'README.md'),
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(root, 'docs', f)),
];

describe('documentation links', () => {
  it('makes GitHub-style anchors', () => {
    expect(slug('Scale-out (torch.distributed)')).toBe('scale-out-torchdistributed');
    expect(slug('Data: compact, decoded once, on the device')).toBe('data-compact-decoded-once-on-the-device');
    expect(slug('`train.advance`: one step')).toBe('trainadvance-one-step');
    expect([...anchors('# A\n## A\n```\n# not a heading\n```\n### b_c\n<a id="s-1"></a>')]).toEqual(['a', 'a-1', 'b_c', 's-1']);
  });

  it('finds broken links and anchors', () => {
    expect(links('[x](a.md) `[y](b.md)`\n![i](p.svg "t")\n```\n[z](c.md)\n```')).toEqual([
      { target: 'a.md', line: 1 },
      { target: 'p.svg', line: 2 },
    ]);
    const page = join(root, 'docs', 'NEW.md');
    const text = '# Top\n[a](PROTOCOL.md) [b](#top) [c](https://x.org/y.md)\n[d](PROTOCOL.md#no-such-heading) [e](missing.md) [f](#nope)';
    expect(brokenLinks(page, text)).toEqual([
      'docs/NEW.md:3: PROTOCOL.md#no-such-heading: no heading with anchor #no-such-heading in docs/PROTOCOL.md',
      'docs/NEW.md:3: missing.md: docs/missing.md does not exist',
      'docs/NEW.md:3: #nope: no heading with anchor #nope in docs/NEW.md',
    ]);
  });

  it.each(pages.map((p) => [relative(root, p), p]))('%s: every relative link and anchor resolves', (_name, page) => {
    expect(brokenLinks(page)).toEqual([]);
  });
});
