/**
 * Graphs built once per (parameter tree, model config): runners cache compiled graphs per graph
 * object, so a second `generate` call on the same model reuses the first one's compilation.
 */
import type { Params } from '../../dsl/layer.ts';
import type { ModelConfig } from '../config.ts';

export function cachedPerModel<T extends object>(cache: WeakMap<Params, Map<string, T>>, paramTree: Params, config: ModelConfig, build: () => T): T {
  let perTree = cache.get(paramTree);
  if (perTree === undefined) cache.set(paramTree, (perTree = new Map()));
  const key = JSON.stringify(config);
  let hit = perTree.get(key);
  if (hit === undefined) perTree.set(key, (hit = build()));
  return hit;
}
