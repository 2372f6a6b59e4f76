/**
 * `npm run demo [-- --port N]`: builds the demo (dist/web/) and serves it on
 * http://127.0.0.1:8080 (a secure context, so WebGPU is exposed; cross-origin isolated, so
 * gpu.js's webasm backend gets its worker threads). Ctrl-C stops it.
 */
import { buildDemo, WEB_DIST } from './build.ts';
import { startServer } from './server.ts';

const at = process.argv.indexOf('--port');
const port = at >= 0 ? Number(process.argv[at + 1]) : 8080;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`demo: --port must be an integer in [0, 65535], got '${process.argv[at + 1]}'`);
  process.exit(2);
}
await buildDemo();
const server = await startServer(new Map(), { root: WEB_DIST, port });
console.log(`reformer-ts demo: ${server.url}/  (serving ${WEB_DIST}; Ctrl-C to stop)`);
