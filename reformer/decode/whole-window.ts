/**
 * The whole-window reference for generation: every token reruns the model over its whole window
 * (O(L) positions per token instead of one). Same window policy and sampling as `generate`, so for
 * full and local attention it yields exactly the same tokens (and, on the float64 reference runner,
 * the same logits); tests and the `generate` benchmark use it, the CLI and the API do not.
 */
import { sampleWith, type generate, type NextLogits } from '../generate.ts';
import { buildModel, PAD_ID } from '../model.ts';
import type { Params } from '../../dsl/layer.ts';
import { logitsGraph, objectiveFeeds, type ObjectiveGraph } from '../train/objective.ts';
import { cachedPerModel } from './graph-cache.ts';

const windowGraphs = new WeakMap<Params, Map<string, ObjectiveGraph>>();

/** `generate`, rerunning the whole window for every token. */
export async function generateWholeWindow(...[runner, config, params, paramTree, prompt, options]: Parameters<typeof generate>): Promise<number[]> {
  const L = config.seqLen;
  const { graph } = cachedPerModel(windowGraphs, paramTree, config, () => logitsGraph(buildModel(config), paramTree, 1, L));
  const next: NextLogits = async (tokens, start) => {
    // position p of the window reads token start + p − 1 (the model shifts right) and predicts start + p
    const window = new Int32Array(L).fill(PAD_ID);
    window.set(tokens.slice(start));
    const t = tokens.length - start;
    const [logits] = await runner.run(graph, objectiveFeeds(graph, params, { tokens: { shape: [1, L], dtype: 'i32', data: window } }, 0));
    const V = logits!.shape[2]!;
    return logits!.data.subarray(t * V, (t + 1) * V);
  };
  return sampleWith(next, L, prompt, options);
}
