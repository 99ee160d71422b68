#!/usr/bin/env node
// The compiled CLI; `npm run build` produces dist/.
import '../dist/src/cli/main.js';
