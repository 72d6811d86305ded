import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPublishedError, parsePublished, referenceMarkdown } from '../../src/report/published.js';
import type { TransferTable } from '../../src/report/transfer-table.js';
import { root } from '../helpers.js';

const table: TransferTable = {
  split: 'val',
  n: 10,
  num_classes: 1000,
  topk: [1, 5],
  ssim_convention: 's',
  psnr_convention: 'p',
  recognizers: [
    { label: 'r18', arch: 'resnet18', weights: 'a', left_at_init: [] },
    { label: 'mine', arch: 'smallresnet', weights: 'b', left_at_init: [] },
  ],
  rows: [
    { label: 'clean', kind: 'clean', psnr: null, ssim: null, top1: { r18: 0.7, mine: 0.5 } },
    { label: 'RA', kind: 'ip', arch: 'estr_srresnet', weights: 'x', psnr: 30, ssim: 0.9, top1: { r18: 0.6512, mine: 0.5 } },
    { label: 'unsupervised RA', kind: 'ip', arch: 'estr_srresnet', weights: 'y', psnr: 30, ssim: 0.9, top1: { r18: 0.6, mine: 0.4 } },
    { label: 'other', kind: 'ip', arch: 'estr_srresnet', weights: 'z', psnr: 30, ssim: 0.9, top1: { r18: 0.1, mine: 0.1 } },
  ],
};

describe('published reference column', () => {
  test("ESTR's file parses: 9 rows, five recognizers each", () => {
    const rows = parsePublished(readFileSync(join(root, 'configs', 'estr', 'published.csv'), 'utf8'), 'published.csv');
    expect(rows).toHaveLength(9);
    expect(rows.find((r) => r.task === 'dn' && r.model === 'ra')!.top1).toEqual({
      resnet18: 65.1,
      resnet50: 70.6,
      resnet101: 71.9,
      densenet121: 69.1,
      vgg16_bn: 63.8,
    });
  });

  test('rows matched by label, columns by arch; ours beside the published figure', () => {
    const rows = parsePublished(readFileSync(join(root, 'configs', 'estr', 'published.csv'), 'utf8'), 'published.csv');
    const md = referenceMarkdown(table, rows, 'dn', 'published.csv');
    expect(md).toContain('| RA | 65.1 (65.1) | 50.0 (–) |');
    expect(md).toContain('| unsupervised RA | 60.0 (61.7) | 40.0 (–) |');
    expect(md).not.toContain('| other |');
    expect(referenceMarkdown(table, rows, 'deblur', 'published.csv')).toMatch(/No published row for task "deblur".*tasks: sr4, dn, jpeg/);
  });

  test('a malformed file is an error with a code, naming the file and line', () => {
    const bad = (text: string) => {
      try {
        parsePublished(text, 'p.csv');
      } catch (e) {
        expect(isPublishedError(e) && e.code).toBe('published_format');
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(bad('# c\nmodel,task,resnet18\n')).toBe('p.csv:2: expected a header task,model,<arch>,...');
    expect(bad('task,model,resnet18\ndn,plain\n')).toBe('p.csv:2: expected 3 fields, got 2');
    expect(bad('task,model,resnet18\ndn,plain,x\n')).toBe('p.csv:2: resnet18: expected a number, got "x"');
  });
});
