/**
 * `reformer train`'s default path differentiates with the memory schedules (reversible regions,
 * chunked feed-forward); `train.reversible: false` is plain backprop of the same graph. A seeded
 * run gives the same loss curve on both, on the float64 reference.
 */
import { describe, expect, it } from 'vitest';
import { train } from '../../reformer/train/trainer.ts';
import { textDataSource } from '../../reformer/train/data-source.ts';
import { encodeBytes } from '../../reformer/data/bytes.ts';
import { ReferenceRunner } from '../../runtime/runner.ts';
import { tinyScheduledConfig } from './support.ts';

const config = (reversible: boolean) =>
  tinyScheduledConfig({ batchSize: 2, steps: 20, learningRate: 1e-2, warmupSteps: 5, evalEvery: 1000, evalBatches: 1, checkpointEvery: 1000, reversible });

describe('training on the memory schedules', () => {
  it('a 20-step seeded run has the loss curve of plain backprop within 1e-9 (f64, dropout on)', async () => {
    const curve = async (reversible: boolean) => {
      const cfg = config(reversible);
      const data = textDataSource(encodeBytes('a reversible layer rebuilds its inputs. '.repeat(12)), 'text', cfg.model.seqLen);
      const losses: number[] = [];
      await train({ config: cfg, data, runner: new ReferenceRunner(), seed: 5, onRecord: (r) => r.type === 'train' && losses.push(r.loss) });
      return losses;
    };
    const scheduled = await curve(true);
    const plain = await curve(false);
    expect(scheduled).toHaveLength(20);
    scheduled.forEach((l, i) => expect(Math.abs(l - plain[i]!), `step ${i + 1}`).toBeLessThan(1e-9));
    expect(scheduled.at(-1)!).toBeLessThan(scheduled[0]!);
  });
});
