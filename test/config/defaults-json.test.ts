/** The sidecar's defaults.json is generated from defaults.ts: the committed copy must be what defaults.ts gives now. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULTS_JSON_PATH, defaultsJson } from '../../src/config/defaults-json.js';
import { root } from '../helpers.js';

describe(DEFAULTS_JSON_PATH, () => {
  it('equals what src/config/defaults.ts gives (run `npm run gen:defaults` after changing a default)', () => {
    const committed = readFileSync(join(root, DEFAULTS_JSON_PATH), 'utf8');
    const want = defaultsJson();
    if (committed !== want) {
      const [a, b] = [committed.split('\n'), want.split('\n')];
      const line = a.findIndex((l, i) => l !== b[i]);
      throw new Error(
        `${DEFAULTS_JSON_PATH} is stale (line ${line + 1}: ${JSON.stringify(a[line])}, defaults.ts gives ${JSON.stringify(b[line])}): ` +
          'run `npm run gen:defaults` and commit the file',
      );
    }
  });
});
