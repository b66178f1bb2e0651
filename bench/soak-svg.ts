/**
 * The memory curve of `npm run soak` as an SVG, written by hand: heap used and
 * RSS (MiB, left axis) and open connections (right axis) against minutes,
 * with a dashed line where the first minute ends (the baseline).
 */

export interface CurvePoint {
  /** Seconds since the load started. */
  seconds: number
  heapMiB: number
  rssMiB: number
  open: number
}

const WIDTH = 900
const HEIGHT = 420
const MARGIN = { left: 64, right: 72, top: 40, bottom: 48 }
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom

/** A round step giving about `count` ticks from 0 to `max`. */
function tickStep (max: number, count: number): number {
  const raw = max / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)
  return step ?? 10 * magnitude
}

function escapeXml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** The SVG document for `points` (in time order), titled `title`. */
export function renderCurve (points: CurvePoint[], title: string): string {
  const maxMinutes = Math.max(1, ...points.map((p) => p.seconds / 60))
  const mibStep = tickStep(Math.max(1, ...points.map((p) => Math.max(p.heapMiB, p.rssMiB))), 6)
  const maxMiB = mibStep * Math.ceil(Math.max(1, ...points.map((p) => Math.max(p.heapMiB, p.rssMiB))) / mibStep)
  const openStep = tickStep(Math.max(1, ...points.map((p) => p.open)), 6)
  const maxOpen = openStep * Math.ceil(Math.max(1, ...points.map((p) => p.open)) / openStep)
  const minuteStep = tickStep(maxMinutes, 10)

  const x = (seconds: number): number => MARGIN.left + (seconds / 60 / maxMinutes) * PLOT_W
  const yMiB = (mib: number): number => MARGIN.top + PLOT_H - (mib / maxMiB) * PLOT_H
  const yOpen = (open: number): number => MARGIN.top + PLOT_H - (open / maxOpen) * PLOT_H
  const fmt = (n: number): string => n.toFixed(1)
  const line = (y: (p: CurvePoint) => number, color: string, dash = ''): string =>
    `<polyline fill="none" stroke="${color}" stroke-width="2"${dash === '' ? '' : ` stroke-dasharray="${dash}"`} points="${
      points.map((p) => `${fmt(x(p.seconds))},${fmt(y(p))}`).join(' ')}"/>`

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`
  ]
  for (let mib = 0; mib <= maxMiB + 1e-9; mib += mibStep) {
    const y = fmt(yMiB(mib))
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${Number(mib.toPrecision(6))}</text>`)
  }
  for (let open = 0; open <= maxOpen + 1e-9; open += openStep) {
    parts.push(`<text x="${MARGIN.left + PLOT_W + 6}" y="${fmt(yOpen(open))}" dominant-baseline="middle" fill="#777">${open}</text>`)
  }
  for (let minute = 0; minute <= maxMinutes + 1e-9; minute += minuteStep) {
    const xm = fmt(x(minute * 60))
    parts.push(`<line x1="${xm}" x2="${xm}" y1="${MARGIN.top + PLOT_H}" y2="${MARGIN.top + PLOT_H + 5}" stroke="black"/>`,
      `<text x="${xm}" y="${MARGIN.top + PLOT_H + 18}" text-anchor="middle">${Number(minute.toPrecision(6))}</text>`)
  }
  const baseline = fmt(x(60))
  parts.push(
    `<line x1="${baseline}" x2="${baseline}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_H}" stroke="#999" stroke-dasharray="4 4"/>`,
    `<path d="M${MARGIN.left},${MARGIN.top} V${MARGIN.top + PLOT_H} H${MARGIN.left + PLOT_W} V${MARGIN.top}" fill="none" stroke="black"/>`,
    `<text x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 10}" text-anchor="middle">minutes</text>`,
    `<text transform="translate(16 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">MiB (after a full GC)</text>`,
    `<text transform="translate(${WIDTH - 14} ${MARGIN.top + PLOT_H / 2}) rotate(90)" text-anchor="middle" fill="#777">open connections</text>`,
    line((p) => yOpen(p.open), '#999', '2 3'),
    line((p) => yMiB(p.rssMiB), '#d62728'),
    line((p) => yMiB(p.heapMiB), '#1f77b4')
  )
  const legend: Array<[string, string, string]> = [['heap used', '#1f77b4', ''], ['RSS', '#d62728', ''], ['open connections', '#999', '2 3']]
  legend.forEach(([label, color, dash], i) => {
    const lx = MARGIN.left + 12 + i * 150
    parts.push(`<line x1="${lx}" x2="${lx + 24}" y1="${MARGIN.top + 12}" y2="${MARGIN.top + 12}" stroke="${color}" stroke-width="2"${dash === '' ? '' : ` stroke-dasharray="${dash}"`}/>`,
      `<text x="${lx + 30}" y="${MARGIN.top + 12}" dominant-baseline="middle">${label}</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
