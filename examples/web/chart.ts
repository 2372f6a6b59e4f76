/** A minimal live line chart of the training loss on a canvas (no charting library in the bundle). */

const PAD = { left: 56, right: 16, top: 16, bottom: 64 };

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/** Draws `values` (bits/char per step, step 1 first) with axes and grid lines. */
export function drawLossChart(canvas: HTMLCanvasElement, values: readonly number[]): void {
  const ctx = canvas.getContext('2d');
  if (ctx === null) return;
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, w, h);
  const plotW = w - PAD.left - PAD.right;
  const plotH = h - PAD.top - PAD.bottom;
  const finite = values.filter(Number.isFinite);
  const hi = finite.length > 0 ? Math.max(...finite) : 8;
  const lo = finite.length > 0 ? Math.min(0, ...finite) : 0;
  const yStep = niceStep(Math.max(hi - lo, 1e-3), 5);
  const yMax = Math.ceil(hi / yStep) * yStep || yStep;
  const n = Math.max(values.length, 2);
  const x = (i: number) => PAD.left + (plotW * i) / (n - 1);
  const y = (v: number) => PAD.top + plotH * (1 - (v - lo) / (yMax - lo));

  ctx.font = '22px system-ui, sans-serif';
  ctx.strokeStyle = '#e3e6ec';
  ctx.fillStyle = '#5a6275';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let v = lo; v <= yMax + 1e-9; v += yStep) {
    ctx.beginPath();
    ctx.moveTo(PAD.left, y(v));
    ctx.lineTo(w - PAD.right, y(v));
    ctx.stroke();
    ctx.fillText(v.toFixed(yStep < 1 ? 1 : 0), PAD.left - 8, y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const xStep = Math.max(1, niceStep(n, 6));
  for (let s = 0; s <= n - 1; s += xStep) ctx.fillText(String(s + 1), x(s), h - PAD.bottom + 8);
  ctx.textBaseline = 'bottom';
  ctx.fillText('step', PAD.left + plotW / 2, h - 4);
  ctx.save();
  ctx.textBaseline = 'top';
  ctx.translate(16, PAD.top + plotH / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText('loss (bits/char)', 0, -8);
  ctx.restore();

  if (values.length === 0) return;
  ctx.strokeStyle = '#3b6fe0';
  ctx.lineWidth = 3;
  ctx.beginPath();
  values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.stroke();
  ctx.fillStyle = '#3b6fe0';
  const last = values.length - 1;
  ctx.beginPath();
  ctx.arc(x(last), y(values[last]!), 5, 0, 2 * Math.PI);
  ctx.fill();
}
