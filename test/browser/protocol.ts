/** What the test page (page.ts) exposes as `window.reformerTest`, and the plain values it returns. */
import type { BackendName, ConcreteBackend } from '../../runtime/backend.ts';

export interface PageTensor {
  readonly shape: number[];
  readonly dtype: 'f32' | 'i32';
  readonly data: number[];
}

export interface PageEnvironment {
  readonly userAgent: string;
  readonly crossOriginIsolated: boolean;
  readonly preference: string[];
  /** Why each backend of `auto`'s order is unusable in the page; null when its probe kernel ran. */
  readonly gaps: Record<string, string | null>;
}

export interface KernelRun {
  readonly seed: number;
  readonly description: string;
  readonly outputs: PageTensor[];
}

export interface RowRun {
  readonly seed: number;
  readonly layerNorm: number[];
  readonly softmax: number[];
  readonly logSumExp: number[];
  readonly ranOn: (string | null)[];
}

export interface LshRun {
  readonly name: string;
  readonly output: number[];
  readonly buckets: number[];
  readonly description: string;
}

export interface TrainStepRun {
  readonly loss: number;
  readonly grads: Record<string, number[]>;
  readonly description: string;
  readonly ms: number;
}

export interface PageApi {
  environment(): Promise<PageEnvironment>;
  /** Opens `requested` and closes it again: the backend `auto` took, or the error. */
  open(requested: BackendName): Promise<{ name?: string; error?: string }>;
  kernelKind(backend: ConcreteBackend, kind: string, seeds: number[]): Promise<KernelRun[]>;
  rowTemplates(backend: ConcreteBackend, seeds: number[]): Promise<RowRun[]>;
  lsh(backend: ConcreteBackend): Promise<LshRun[]>;
  trainStep(backend: ConcreteBackend): Promise<TrainStepRun>;
  release(): void;
}
