/**
 * Graphs built once per parameter tree and variant (the model config, and what else shapes the
 * graph): runners cache compiled graphs per graph object, so a second `generate` call on the same
 * model reuses the first one's compilation.
 */
import type { Params } from '../../dsl/layer.ts';

export function cachedPerModel<T extends object>(cache: WeakMap<Params, Map<string, T>>, paramTree: Params, variant: object, build: () => T): T {
  let perTree = cache.get(paramTree);
  if (perTree === undefined) cache.set(paramTree, (perTree = new Map()));
  const key = JSON.stringify(variant);
  let hit = perTree.get(key);
  if (hit === undefined) perTree.set(key, (hit = build()));
  return hit;
}
