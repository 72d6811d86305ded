/** `npm run gen:defaults`: writes python/gradprom_sidecar/defaults.json from src/config/defaults.ts. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultsJson, DEFAULTS_JSON_PATH } from '../src/config/defaults-json.js';
import { packageRoot } from '../src/sidecar/python.js';

writeFileSync(join(packageRoot, DEFAULTS_JSON_PATH), defaultsJson());
process.stdout.write(`wrote ${DEFAULTS_JSON_PATH}\n`);
