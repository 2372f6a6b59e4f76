/**
 * Learning-rate schedules: functions of the 1-based update number (the first update is step 1).
 *
 * trax's multi-factor schedule multiplies named factors; the Reformer configs use
 * `constant * linear_warmup * rsqrt_decay` (or its normalised variant):
 *
 *   constant                 c
 *   linear_warmup            min(1, step / warmupSteps)
 *   rsqrt_decay              1 / √max(step, warmupSteps)
 *   rsqrt_normalized_decay   √warmupSteps / √max(step, warmupSteps)   (1 at the end of warm-up)
 */
export type Schedule = (step: number) => number;

export type ScheduleFactor = 'constant' | 'linear_warmup' | 'rsqrt_decay' | 'rsqrt_normalized_decay';
const factorNames: readonly ScheduleFactor[] = ['constant', 'linear_warmup', 'rsqrt_decay', 'rsqrt_normalized_decay'];

export interface MultifactorOptions {
  /** `*`-separated factor names, e.g. `constant * linear_warmup * rsqrt_decay`. */
  readonly factors: string;
  readonly constant: number;
  readonly warmupSteps: number;
}

/** A constant learning rate. */
export function constantSchedule(value: number): Schedule {
  if (!Number.isFinite(value) || value < 0) throw new Error(`schedule: constant learning rate must be a finite number ≥ 0, got ${value}`);
  return () => value;
}

/** Parses a trax-style factor string; errors name the unknown factor. */
export function parseFactors(factors: string): ScheduleFactor[] {
  const names = factors.split('*').map((s) => s.trim());
  for (const n of names) {
    if (!factorNames.includes(n as ScheduleFactor)) {
      throw new Error(`schedule: unknown factor '${n}' in '${factors}' (known: ${factorNames.join(', ')})`);
    }
  }
  return names as ScheduleFactor[];
}

/** trax's multi-factor schedule (see the file comment). */
export function multifactorSchedule(options: MultifactorOptions): Schedule {
  const factors = parseFactors(options.factors);
  const { constant, warmupSteps } = options;
  if (!Number.isFinite(constant) || constant < 0) throw new Error(`schedule: 'constant' must be a finite number ≥ 0, got ${constant}`);
  const needsWarmup = factors.some((f) => f !== 'constant');
  if (needsWarmup && !(Number.isInteger(warmupSteps) && warmupSteps > 0)) {
    throw new Error(`schedule: 'warmupSteps' must be a positive integer for '${options.factors}', got ${warmupSteps}`);
  }
  return (step: number) => {
    if (!(Number.isInteger(step) && step >= 1)) throw new Error(`schedule: step must be an integer ≥ 1 (the first update is step 1), got ${step}`);
    let lr = 1;
    for (const f of factors) {
      if (f === 'constant') lr *= constant;
      else if (f === 'linear_warmup') lr *= Math.min(1, step / warmupSteps);
      else if (f === 'rsqrt_decay') lr /= Math.sqrt(Math.max(step, warmupSteps));
      else lr *= Math.sqrt(warmupSteps) / Math.sqrt(Math.max(step, warmupSteps));
    }
    return lr;
  };
}

/** The Reformer default: linear warm-up then inverse-square-root decay. */
export function warmupRsqrtSchedule(constant: number, warmupSteps: number, normalized = false): Schedule {
  return multifactorSchedule({
    factors: `constant * linear_warmup * ${normalized ? 'rsqrt_normalized_decay' : 'rsqrt_decay'}`,
    constant,
    warmupSteps,
  });
}
