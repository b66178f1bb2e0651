/**
 * The bench's chart, as an SVG document written by hand (no dependency):
 * one group of bars per echo size and one for handshakes, one bar per
 * server, each figure divided by ws's in the same run (ws = 1.0), with the
 * targets of issue 12 marked on ours; under it, idle memory per connection
 * in KiB beside its target. The machine and the date are written on it, so
 * that a copy shown elsewhere says where it came from.
 */
import { CLIENT_BOUND_CPU, OURS, RAW, type Results, type TargetResult, sizeLabel, targets, usesBytes } from './report.js'
import type { PhaseResult } from './types.js'

const WIDTH = 1000
const LEFT = 64
const RIGHT = 24
const FONT = 'system-ui, -apple-system, \'Segoe UI\', Helvetica, Arial, sans-serif'
/** Bar colours per server name (Okabe-Ito, readable with colour blindness); others take the spares in turn. */
const COLOURS: Record<string, string> = { rfc6455: '#0072B2', ws: '#8C8C8C', 'fastify-websocket': '#E69F00', net: '#009E73' }
const SPARE_COLOURS = ['#CC79A7', '#56B4E9', '#F0E442']
const TARGET_COLOUR = '#D55E00'
const MET_COLOUR = '#1A7F37'
const MUTED = '#57606A'

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function text (x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attributes}>${escape(content)}</text>`
}

/** A step of 1, 2 or 5 × 10^n giving at most `most` steps up to `max`. */
function tickStep (max: number, most: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(max / most))
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((step) => max / step <= most) ?? 10 * magnitude
}

function integer (n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

/** One group of bars: an echo size, or the handshakes. */
interface Group {
  kind: 'echo' | 'handshake'
  title: string
  /** Per server name: its figure (msg/s, MB/s or handshakes/s) and whether the client bounded it. */
  figures: Map<string, { value: number, clientBound: boolean }>
  unit: string
  target?: TargetResult
}

function groups (results: Results, goals: TargetResult[]): Group[] {
  const out: Group[] = []
  const sizes = (results.echo[results.baseline] ?? []).map((r) => r.size)
  const group = (kind: Group['kind'], title: string, unit: string, at: (name: string) => PhaseResult | undefined, value: (r: PhaseResult) => number,
    target: TargetResult | undefined): Group => {
    const figures = new Map<string, { value: number, clientBound: boolean }>()
    for (const s of results.servers) {
      const r = at(s.name)
      if (r !== undefined) figures.set(s.name, { value: value(r), clientBound: r.clientCpu >= CLIENT_BOUND_CPU })
    }
    return { kind, title, unit, figures, target }
  }
  for (const size of sizes) {
    const bytes = usesBytes(size)
    out.push(group('echo', `${sizeLabel(size)} echo`, bytes ? 'MB/s' : 'msg/s', (name) => results.echo[name]?.find((r) => r.size === size),
      (r) => bytes ? r.mbPerSecond : r.perSecond, goals.find((t) => t.kind === 'echo' && t.size === size)))
  }
  if (results.handshake[results.baseline] !== undefined) {
    out.push(group('handshake', 'handshakes', 'handshakes/s', (name) => results.handshake[name], (r) => r.perSecond,
      goals.find((t) => t.kind === 'handshake')))
  }
  return out
}

/**
 * The chart of `results` as an SVG document, or null when there is nothing
 * to divide by: the run had no echo or handshake figures for the baseline (ws).
 */
export function chart (results: Results, date: Date): string | null {
  const goals = targets(results)
  const bars = groups(results, goals)
  if (bars.length === 0) return null
  const servers = results.servers
  const label = (name: string): string => servers.find((s) => s.name === name)?.label ?? name
  const colour = (name: string): string =>
    COLOURS[name] ?? SPARE_COLOURS[servers.findIndex((s) => s.name === name) % SPARE_COLOURS.length]
  const baseline = results.baseline
  const parts: string[] = []
  let y = 0

  // Title, machine, date, legend.
  parts.push(text(LEFT - 40, (y += 30), `npm run bench: each server's rate divided by ${label(baseline)}'s in the same run (${label(baseline)} = 1.0; higher is better)`,
    'font-size="17" font-weight="600"'))
  parts.push(text(LEFT - 40, (y += 22), results.machine, `font-size="12" fill="${MUTED}"`))
  parts.push(text(LEFT - 40, (y += 17), `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC; every figure the best round of this one run`,
    `font-size="12" fill="${MUTED}"`))
  y += 24
  let x = LEFT
  for (const s of servers) {
    parts.push(`<rect x="${x}" y="${y - 11}" width="14" height="14" rx="2" fill="${colour(s.name)}"/>`)
    parts.push(text(x + 20, y, s.label, 'font-size="13"'))
    x += 34 + s.label.length * 7.5
  }
  if (goals.some((t) => t.kind === 'echo' || t.kind === 'handshake')) {
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${TARGET_COLOUR}" stroke-width="3"/>`)
    parts.push(text(x + 28, y, 'target (issue 12), on fastify-rfc6455\'s bar', 'font-size="13"'))
  }

  // The bars: a linear scale from 0, its top a round step above the highest bar or target.
  const top = y + 26
  const height = 300
  const bottom = top + height
  const right = WIDTH - RIGHT
  const ratios = bars.flatMap((g) => {
    const base = g.figures.get(baseline)?.value ?? NaN
    return [...g.figures.values()].map((f) => f.value / base)
  })
  const levels = bars.map((g) => targetLevel(g, baseline)).filter((level): level is number => level !== undefined)
  const highest = Math.max(1, ...ratios.filter(Number.isFinite), ...levels) * 1.08
  const step = tickStep(highest, 8)
  const yMax = Math.ceil(highest / step) * step
  const yAt = (ratio: number): number => bottom - ratio / yMax * height
  for (let tick = 0; tick <= yMax + step / 1000; tick += step) {
    parts.push(`<line x1="${LEFT}" y1="${yAt(tick).toFixed(1)}" x2="${right}" y2="${yAt(tick).toFixed(1)}" stroke="#E1E4E8"/>`)
    parts.push(text(LEFT - 8, yAt(tick) + 4, `${Number(tick.toFixed(2))}×`, `font-size="12" text-anchor="end" fill="${MUTED}"`))
  }
  parts.push(text(16, (top + bottom) / 2, `rate / ${label(baseline)}'s rate`,
    `font-size="12" fill="${MUTED}" text-anchor="middle" transform="rotate(-90 16 ${((top + bottom) / 2).toFixed(1)})"`))

  const groupWidth = (right - LEFT) / bars.length
  const barWidth = Math.min(44, groupWidth * 0.86 / servers.length)
  const notes = new Set<string>()
  /** The values written on the bars: drawn last, over the line at 1.0, each with a white halo. */
  const values: string[] = []
  bars.forEach((g, i) => {
    const start = LEFT + i * groupWidth + (groupWidth - barWidth * servers.length) / 2
    const centre = LEFT + (i + 0.5) * groupWidth
    const base = g.figures.get(baseline)?.value
    const level = targetLevel(g, baseline)
    const ours = servers.findIndex((s) => s.name === OURS)
    servers.forEach((s, j) => {
      const f = g.figures.get(s.name)
      if (f === undefined || base === undefined || !(base > 0)) return
      const ratio = f.value / base
      const bx = start + j * barWidth
      const by = yAt(ratio)
      parts.push(`<rect x="${(bx + 1).toFixed(1)}" y="${by.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" ` +
        `height="${(bottom - by).toFixed(1)}" fill="${colour(s.name)}"><title>${escape(`${s.label}, ${g.title}: ` +
        `${integer(f.value)} ${g.unit} (${ratio.toFixed(2)}×)`)}</title></rect>`)
      // Ours' value goes above its target marker when the marker sits just above the bar, where the value would be.
      const marker = j === ours && level !== undefined ? yAt(level) : Infinity
      const labelY = marker < by + 2 && marker > by - 18 ? marker - 6 : by - 5
      values.push(text(bx + barWidth / 2, labelY, `${ratio.toFixed(2)}×${f.clientBound ? '*' : ''}`,
        'font-size="10.5" text-anchor="middle" stroke="#FFFFFF" stroke-width="3" paint-order="stroke"'))
      if (f.clientBound) notes.add(`* the load client used ≥ ${CLIENT_BOUND_CPU}% of its core: that figure is a floor.`)
      if (g.kind === 'handshake' && s.name === RAW) {
        notes.add(`${s.label}'s "handshakes": TCP connect, one request echoed, close; no WebSocket handshake.`)
      }
    })
    const lines = [`${label(baseline)}: ${integer(base ?? NaN)} ${g.unit}`]
    if (level !== undefined && g.target !== undefined && ours >= 0) {
      const t = g.target
      const tx = start + ours * barWidth
      parts.push(`<line x1="${(tx - 4).toFixed(1)}" y1="${yAt(level).toFixed(1)}" x2="${(tx + barWidth + 4).toFixed(1)}" ` +
        `y2="${yAt(level).toFixed(1)}" stroke="${TARGET_COLOUR}" stroke-width="3"><title>${escape(t.target)}</title></line>`)
      lines.push(`target ≥ ${t.goal}× ${label(t.against)}`, `measured ${t.ratio.toFixed(2)}×: ${t.met ? 'met' : 'NOT met'}`)
    }
    parts.push(text(centre, bottom + 20, g.title, 'font-size="14" font-weight="600" text-anchor="middle"'))
    lines.forEach((line, k) => {
      const fill = k === 0 ? MUTED : g.target?.met === true ? MET_COLOUR : TARGET_COLOUR
      parts.push(text(centre, bottom + 37 + k * 15, line, `font-size="11.5" text-anchor="middle" fill="${fill}"${k === 2 ? ' font-weight="600"' : ''}`))
    })
  })
  parts.push(`<line x1="${LEFT}" y1="${yAt(1).toFixed(1)}" x2="${right}" y2="${yAt(1).toFixed(1)}" stroke="#24292F" ` +
    'stroke-width="1.5" stroke-dasharray="6 4"/>')
  parts.push(`<line x1="${LEFT}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#24292F"/>`, ...values)
  // Below the group titles and their three lines.
  y = memoryPanel(results, goals, colour, parts, bottom + 105)

  for (const note of notes) parts.push(text(LEFT - 40, (y += 18), note, `font-size="12" fill="${MUTED}"`))
  const total = y + 18
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${total}" viewBox="0 0 ${WIDTH} ${total}" ` +
    `font-family="${FONT}" fill="#24292F">\n<rect width="100%" height="100%" fill="#FFFFFF"/>\n${parts.join('\n')}\n</svg>\n`
}

/** Where a group's target sits on the ratio-to-baseline scale: its goal × the reference's figure / the baseline's. */
function targetLevel (g: Group, baseline: string): number | undefined {
  const t = g.target
  const base = g.figures.get(baseline)?.value
  if (t === undefined || base === undefined || !(base > 0)) return undefined
  return t.goal * t.reference / base
}

/** Idle memory per connection, one horizontal bar per server, the target as a dashed line; returns where it ends. */
function memoryPanel (results: Results, goals: TargetResult[], colour: (name: string) => string, parts: string[], y: number): number {
  const shown = results.servers.filter((s) => results.memory[s.name] !== undefined)
  if (shown.length === 0) return y
  const conns = results.memory[shown[0].name].conns
  const target = goals.find((t) => t.kind === 'memory')
  const labelWidth = 150
  const left = LEFT + labelWidth
  const right = WIDTH - RIGHT - 90
  const rowHeight = 22
  const highest = Math.max(...shown.map((s) => results.memory[s.name].perConnKb), target?.reference ?? 0) * 1.05
  const xAt = (kb: number): number => left + Math.max(0, kb) / highest * (right - left)

  parts.push(text(LEFT - 40, y, `Idle memory per connection: KiB of server RSS with ${integer(conns)} idle connections open (lower is better)`,
    'font-size="15" font-weight="600"'))
  const first = y + 14
  shown.forEach((s, i) => {
    const m = results.memory[s.name]
    const ry = first + i * rowHeight
    parts.push(text(left - 8, ry + 14, s.label, 'font-size="13" text-anchor="end"'))
    parts.push(`<rect x="${left}" y="${ry + 2}" width="${(xAt(m.perConnKb) - left).toFixed(1)}" height="${rowHeight - 6}" ` +
      `fill="${colour(s.name)}"/>`)
    parts.push(text(xAt(m.perConnKb) + 6, ry + 14, `${m.perConnKb.toFixed(2)} KiB`, 'font-size="12"'))
  })
  const last = first + shown.length * rowHeight
  if (target !== undefined) {
    const tx = xAt(target.reference).toFixed(1)
    parts.push(`<line x1="${tx}" y1="${first - 2}" x2="${tx}" y2="${last}" stroke="${TARGET_COLOUR}" stroke-width="2" stroke-dasharray="5 3"/>`)
    const lines = [`target: ${target.target}; fastify-rfc6455 ${target.ours.toFixed(2)} KiB: ${target.met ? 'met' : 'NOT met'}`,
      ...target.notes]
    lines.forEach((line, k) => {
      parts.push(text(left, last + 16 + k * 15, line, `font-size="12" fill="${target.met ? MET_COLOUR : TARGET_COLOUR}"`))
    })
    return last + 16 + (lines.length - 1) * 15
  }
  return last
}
