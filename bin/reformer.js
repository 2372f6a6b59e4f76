#!/usr/bin/env node
// The package ships TypeScript sources; tsx compiles them on the fly so there is no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
