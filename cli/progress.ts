/**
 * Training progress for the terminal: a progress bar (or plain lines when stdout is not a
 * terminal) whose tokens/s and ETA come from a moving average of recent step times, so they do not
 * jump with every step.
 */
import cliProgress from 'cli-progress';
import type { TrainRecord } from '../reformer/train/trainer.ts';

/** `42s`, `3m05s`, `2h07m`: rounded to whole seconds first, so it never reads `1m60s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)}h${pad(m % 60)}m`;
}

/** Mean seconds per step over the last `window` steps. */
export class StepTimes {
  private readonly recent: number[] = [];

  constructor(private readonly window = 20) {}

  add(seconds: number): void {
    this.recent.push(seconds);
    if (this.recent.length > this.window) this.recent.shift();
  }

  /** Undefined until a step has been timed. */
  get secondsPerStep(): number | undefined {
    if (this.recent.length === 0) return undefined;
    return this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
  }
}

export class TrainProgress {
  private readonly times = new StepTimes();
  private readonly bars: cliProgress.MultiBar | undefined;
  private bar: cliProgress.SingleBar | undefined;
  private lastPrinted = 0;

  constructor(
    private readonly totalSteps: number,
    private readonly tokensPerStep: number,
    interactive: boolean,
  ) {
    // MultiBar (with one bar) because it can print log lines above the bar. `{eta}` and `{duration}`
    // are cli-progress's own (whole-run averages), so our figures use other names.
    this.bars = interactive
      ? new cliProgress.MultiBar(
          { format: 'step {value}/{total} |{bar}| loss {loss} bpc {bpc} | {tps} tok/s | ETA {remaining}', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  }

  /** Shows a train record (bar update or, without a terminal, a line every 10 steps). */
  step(r: TrainRecord): void {
    if (r.seconds !== undefined) this.times.add(r.seconds);
    const perStep = this.times.secondsPerStep;
    const payload = {
      loss: r.loss.toFixed(3),
      bpc: r.bpc.toFixed(3),
      tps: perStep === undefined ? '?' : String(Math.round(this.tokensPerStep / perStep)),
      remaining: perStep === undefined ? '?' : formatDuration((this.totalSteps - r.step) * perStep),
    };
    if (this.bars) {
      this.bar ??= this.bars.create(this.totalSteps, r.step - 1, payload);
      this.bar.update(r.step, payload);
    } else if (r.step === 1 || r.step - this.lastPrinted >= 10 || r.step === this.totalSteps) {
      this.lastPrinted = r.step;
      console.log(`step ${r.step}/${this.totalSteps} loss ${payload.loss} bpc ${payload.bpc} ${payload.tps} tok/s ETA ${payload.remaining}`);
    }
  }

  /** Prints a line now (above the bar when there is one). */
  log(line: string): void {
    if (this.bars) {
      this.bars.log(`${line}\n`);
      this.bars.update(); // draws at once; otherwise the line waits for the next redraw (lost if the bar stops first)
    } else console.log(line);
  }

  /** Removes the bar and shows the cursor again. Safe to call more than once. */
  stop(): void {
    this.bars?.stop();
  }

  /** For an immediate exit: shows the cursor without waiting for the bar to redraw. */
  static restoreTerminal(): void {
    if (process.stdout.isTTY) process.stdout.write('\x1b[?25h\n');
  }
}
