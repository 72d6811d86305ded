#!/usr/bin/env node
// The `gradprom` command; the code lives in dist/ (built by `npm install` / `npm run build`).
import { main } from '../dist/src/cli/main.js';

await main();
