/** docs/CONFIG.md's tables are what `npm run gen:defaults` makes from src/config/defaults.ts today. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BEGIN, CONFIG_DOC_PATH, END, configDocs, configTables } from '../../scripts/gen-config-docs.js';
import { DEFAULTS } from 'gradprom';
import { root } from '../helpers.js';

const source = readFileSync(join(root, 'src', 'config', 'defaults.ts'), 'utf8');

describe('docs/CONFIG.md', () => {
  it('is current (run `npm run gen:defaults` after changing src/config/defaults.ts)', () => {
    const doc = readFileSync(join(root, CONFIG_DOC_PATH), 'utf8');
    expect(configDocs(doc)).toBe(doc);
  });

  it('lists every default field with the comment beside it in the source', () => {
    const tables = configTables(source);
    for (const section of ['data', 'ip', 'vr', 'policy', 'train', 'eval', 'output', 'distributed'] as const) {
      for (const key of Object.keys(DEFAULTS[section])) expect(tables).toContain(`\`${section}.${key}`);
    }
    expect(tables).toContain('| `policy.lambda` | `0.003` |');
    expect(tables).toContain('| `train.vr_optim.lr` | `0.001` | as `train.ip_optim.lr` |');
    expect(configTables(source.replace('training RNG seed;', 'the seed of training;'))).toContain('| `seed` | `0` | the seed of training;');
  });

  it('refuses an uncommented field and a page without its markers', () => {
    expect(() => configTables(source.replace(/(max_skips: 10,) \/\/[^\n]*/, '$1'))).toThrow(/no comment beside train\.max_skips/);
    expect(() => configDocs('# Configuration\n')).toThrow(/expected the lines/);
    expect(configDocs(`prose\n${BEGIN}\nold\n${END}\nmore prose\n`, 'TABLES')).toBe(`prose\n${BEGIN}\n\nTABLES\n\n${END}\nmore prose\n`);
  });
});
