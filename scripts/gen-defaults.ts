/** `npm run gen:defaults`: writes python/gradprom_sidecar/defaults.json and docs/CONFIG.md's tables from src/config/defaults.ts. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultsJson, DEFAULTS_JSON_PATH } from '../src/config/defaults-json.js';
import { packageRoot } from '../src/sidecar/python.js';
import { CONFIG_DOC_PATH, configDocs } from './gen-config-docs.js';

writeFileSync(join(packageRoot, DEFAULTS_JSON_PATH), defaultsJson());
process.stdout.write(`wrote ${DEFAULTS_JSON_PATH}\n`);
const doc = join(packageRoot, CONFIG_DOC_PATH);
writeFileSync(doc, configDocs(readFileSync(doc, 'utf8')));
process.stdout.write(`wrote ${CONFIG_DOC_PATH}\n`);
