/** Loads @tensorflow/tfjs-core on the wasm backend, with its .wasm files read from node_modules. */
import { createRequire } from 'node:module';
import path from 'node:path';

export async function loadTfWasm() {
  const tf = await import('@tensorflow/tfjs-core');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  wasm.setWasmPaths(dir + path.sep);
  if (!(await tf.setBackend('wasm'))) throw new Error('bench: TF.js wasm backend failed to initialise');
  await tf.ready();
  const features = {
    simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: wasm.getThreadsCount(),
  };
  return { tf, features };
}
