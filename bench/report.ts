/** The bench's tables: one column per server, each figure with its ratio to ws, as Markdown. */
import type { H2Row } from './h2.js'
import type { MemoryResult } from './memory.js'
import type { OverheadResult } from './overhead.js'
import type { ServerSpec } from './servers.js'
import type { PhaseResult } from './types.js'
import type { WsloadResult } from './wsload.js'

/** Load client CPU (% of its core) from which a figure is the client's limit rather than the server's. */
export const CLIENT_BOUND_CPU = 90

/** Server CPU (% of its core) under which a fan-out run was not bound by the server. */
const SATURATED_CPU = 90

/** Other processes' CPU (% of one core) during a window worth a warning. */
const OTHER_CPU_NOTE = 10

export interface Results {
  machine: string
  setup: string[]
  servers: ServerSpec[]
  baseline: string
  /** Per server name: echo results in size order, and the handshake result. */
  echo: Record<string, PhaseResult[]>
  /** Per server name, per round (servers alternate within a round): echo results in size order. */
  echoRounds?: Record<string, PhaseResult[][]>
  handshake: Record<string, PhaseResult>
  memory: Record<string, MemoryResult>
  wsload: Record<string, WsloadResult[]>
  fanoutServers: ServerSpec[]
  /** Per server name: fan-out results in case order. */
  fanout: Record<string, PhaseResult[]>
  wsloadFanout: Record<string, WsloadResult[]>
  /** Per server name, per round: the fan-out results of the Node client and of wsload, in case order. */
  fanoutRounds?: Record<string, { phases: PhaseResult[][], wsload: WsloadResult[][] }>
  /**
   * Fan-out through Redis: the loaded run's result and the one with a single
   * publish in flight, or why the case did not run; undefined when not asked for.
   */
  redis?: PhaseResult[] | string
  /** WebSockets over HTTP/2 beside HTTP/1.1 (bench/h2.ts); undefined when not asked for. */
  h2?: H2Row[]
  /** Ours before and after the observability work, with subscribers, with validation (bench/overhead.ts); undefined when not asked for. */
  overhead?: OverheadResult
}

const KiB = 1024
const MiB = 1024 * 1024

export function sizeLabel (size: number): string {
  if (size >= MiB && size % MiB === 0) return `${size / MiB} MiB`
  if (size >= KiB && size % KiB === 0) return `${size / KiB} KiB`
  return `${size} B`
}

/** Messages per second up to 64 KiB-1, MB per second from 64 KiB on. */
export function usesBytes (size: number): boolean {
  return size >= 64 * KiB
}

function integer (n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-'
}

/** Server names: fastify-rfc6455, whose figures the targets are about, and raw node:net, the small-message targets' reference. */
export const OURS = 'rfc6455'
export const RAW = 'net'

/**
 * The speed targets of issue 12, each a ratio of ours to another server in
 * the same run: at least `goal` × `against`'s messages (or MB, or
 * handshakes) per second.
 */
const THROUGHPUT_TARGETS: Array<{ kind: 'echo' | 'handshake', size: number, against: string, goal: number }> = [
  { kind: 'echo', size: MiB, against: 'ws', goal: 1.2 },
  { kind: 'echo', size: 64 * KiB, against: 'ws', goal: 1.5 },
  { kind: 'echo', size: 16, against: RAW, goal: 0.8 },
  { kind: 'echo', size: KiB, against: RAW, goal: 0.8 },
  { kind: 'handshake', size: 0, against: 'ws', goal: 1.5 }
]

/** Issue 23's large-message targets: at least EVERY_ROUND_GOAL × ws MB/s in each round, and ours' spread between rounds under EVERY_ROUND_SPREAD. */
const EVERY_ROUND_SIZES = [64 * KiB, MiB]
const EVERY_ROUND_GOAL = 1.2
const EVERY_ROUND_SPREAD = 0.25

/**
 * The large-message target of `size` over every round (null when ours or ws
 * did not run it): the worst round's ratio to ws in the same round, met when
 * it reaches the goal and ours' (best - worst) / best is under the spread.
 */
function everyRoundTarget (results: Results, size: number): TargetResult | null {
  const at = (name: string): number[] => (results.echoRounds?.[name] ?? [])
    .map((round) => round.find((r) => r.size === size)?.mbPerSecond ?? NaN)
  const ours = at(OURS)
  const ws = at('ws')
  if (ours.length === 0 || ours.length !== ws.length) return null
  const ratios = ours.map((value, i) => ws[i] > 0 ? value / ws[i] : NaN)
  const worst = worstRound(ratios, false)
  const spread = (Math.max(...ours) - Math.min(...ours)) / Math.max(...ours)
  return {
    target: `${sizeLabel(size)} echo ≥ ${EVERY_ROUND_GOAL}× ws MB/s in each of ${ours.length} rounds, spread < ${EVERY_ROUND_SPREAD * 100} %`,
    kind: 'echo',
    size,
    unit: 'MB/s',
    ours: ours[worst],
    against: 'ws',
    reference: ws[worst],
    ratio: ratios[worst],
    goal: EVERY_ROUND_GOAL,
    atMost: false,
    met: ratios.every((r) => r >= EVERY_ROUND_GOAL) && spread < EVERY_ROUND_SPREAD,
    notes: [`rounds ${ratios.map((r) => `${r.toFixed(2)}×`).join(', ')}; ours' spread ${Math.round(spread * 100)} %`]
  }
}

/** The index of the worst of `ratios`: the lowest, or the highest when `atMost`; a NaN (nothing measured) first. */
function worstRound (ratios: number[], atMost: boolean): number {
  const worse = (a: number, b: number): boolean => Number.isNaN(a) || (atMost ? a > b : a < b)
  return ratios.reduce((w, r, i) => worse(r, ratios[w]) ? i : w, 0)
}

/** Issue 23's HTTP/2 target: 64 KiB echo over one h2c connection at least this × the same over HTTP/1.1. */
const H2_GOAL = 0.8

/** The HTTP/2 target from the h2 case's rows (64 KiB echo, every WebSocket on one connection), or null when it did not run. */
function h2Target (rows: H2Row[] | undefined): TargetResult | null {
  const echo = (transport: H2Row['transport'], oneConnection: boolean): PhaseResult | undefined => rows?.find((row) =>
    row.transport === transport && row.result.kind === 'echo' && row.result.size === 64 * KiB &&
    (transport === 'HTTP/1.1' || row.layout.endsWith(' on 1 connection') === oneConnection))?.result
  const http1 = echo('HTTP/1.1', false)
  const http2 = echo('HTTP/2', true)
  if (http1 === undefined || http2 === undefined) return null
  const ratio = http1.mbPerSecond > 0 ? http2.mbPerSecond / http1.mbPerSecond : NaN
  const notes: string[] = []
  if (Number.isNaN(ratio)) notes.push('HTTP/1.1 measured nothing: no ratio')
  if (Math.max(http1.otherCpu, http2.otherCpu) > OTHER_CPU_NOTE) {
    notes.push(`noisy: other processes used ${Math.round(http1.otherCpu)}% / ${Math.round(http2.otherCpu)}% of a core`)
  }
  return {
    target: `64 KiB echo on one h2c connection ≥ ${H2_GOAL}× HTTP/1.1 MB/s`,
    kind: 'echo',
    size: 64 * KiB,
    unit: 'MB/s',
    ours: http2.mbPerSecond,
    against: 'HTTP/1.1',
    reference: http1.mbPerSecond,
    ratio,
    goal: H2_GOAL,
    atMost: false,
    met: ratio >= H2_GOAL,
    notes
  }
}

/** Issue 23's fan-out targets, against uWebSockets' topics (Bun's server, `--bun`), in every round. */
const FANOUT_PEER = 'bun'
/** Deliveries/s: at least this × the peer's. */
const FANOUT_GOAL = 1
/** Publish → delivery p50: at most this × the peer's. */
const FANOUT_P50_GOAL = 1.5

/**
 * The fan-out targets of every case that ours and Bun both ran: the worst
 * round's ratio for deliveries/s and for p50 latency, each round's ratio
 * taken within that round. The C client's figures when both servers have
 * them (the Node client is the limit of ours), else the Node client's.
 */
function fanoutTargets (results: Results): TargetResult[] {
  const ours = results.fanoutRounds?.[OURS]
  const peer = results.fanoutRounds?.[FANOUT_PEER]
  if (ours === undefined || peer === undefined) return []
  const fromWsload = ours.wsload.length > 0 && ours.wsload.length === peer.wsload.length
  const oursRounds: Array<Array<PhaseResult | WsloadResult>> = fromWsload ? ours.wsload : ours.phases
  const peerRounds: Array<Array<PhaseResult | WsloadResult>> = fromWsload ? peer.wsload : peer.phases
  if (oursRounds.length === 0 || oursRounds.length !== peerRounds.length) return []
  const client = fromWsload ? 'wsload' : 'the Node client'
  return oursRounds[0].flatMap((first, i) => {
    const what = `${fanoutLabel(first.subscribers ?? 0, first.size)} fan-out`
    const mine = oursRounds.map((round) => round[i])
    const theirs = peerRounds.map((round) => round[i])
    const notes = [...new Set(mine.flatMap((r, k) => [
      ...(r.clientCpu >= CLIENT_BOUND_CPU ? [`ours client-bound in round ${k + 1}: its figure is a floor`] : []),
      ...(theirs[k].clientCpu >= CLIENT_BOUND_CPU ? [`Bun client-bound in round ${k + 1}: its figure is a floor`] : [])
    ]))]
    return [
      everyRound(`${what} ≥ ${FANOUT_GOAL}× Bun (uWebSockets) deliveries/s`, 'deliveries/s', client,
        mine.map((r) => r.perSecond), theirs.map((r) => r.perSecond), FANOUT_GOAL, false, notes),
      everyRound(`${what} p50 ≤ ${FANOUT_P50_GOAL}× Bun (uWebSockets)`, 'µs p50', client,
        mine.map((r) => r.p50us), theirs.map((r) => r.p50us), FANOUT_P50_GOAL, true, notes)
    ]
  })
}

/** A fan-out target over rounds: met when every round's ratio meets `goal` (at most it when `atMost`); the worst round is shown. */
function everyRound (target: string, unit: string, client: string, ours: number[], peer: number[], goal: number, atMost: boolean,
  notes: string[]): TargetResult {
  const ratios = ours.map((value, k) => peer[k] > 0 ? value / peer[k] : NaN)
  const worst = worstRound(ratios, atMost)
  return {
    target: `${target} in each of ${ours.length} rounds`,
    kind: 'fanout',
    size: 0,
    unit,
    ours: ours[worst],
    against: FANOUT_PEER,
    reference: peer[worst],
    ratio: ratios[worst],
    goal,
    atMost,
    met: ratios.every((r) => atMost ? r <= goal : r >= goal),
    notes: [`${client}; rounds ${ratios.map((r) => `${r.toFixed(2)}×`).join(', ')}`, ...notes]
  }
}

/** The idle memory target: at most this many KiB of RSS per connection, with this many connections open. */
const IDLE_TARGET_KB = 3.5
const IDLE_TARGET_CONNS = 10000

/** One target checked against this run's figures. */
export interface TargetResult {
  /** What is aimed at, e.g. `1 MiB echo ≥ 1.2× ws MB/s`. */
  target: string
  kind: 'echo' | 'handshake' | 'memory' | 'fanout'
  /** Echo payload bytes; 0 for handshakes, memory and fan-out. */
  size: number
  /** Unit of `ours` and `reference`: MB/s, msg/s, handshakes/s, deliveries/s, µs p50, or KiB/conn (of RSS). */
  unit: string
  ours: number
  /** The server `ours` is divided by, or `limit` (memory: the target's KiB per connection). */
  against: string
  reference: number
  /** ours / reference. */
  ratio: number
  /** The ratio aimed at: at least this, or (memory, `atMost`) at most. */
  goal: number
  atMost: boolean
  met: boolean
  /** Why the figure may not say all: a client-bound side, a run at a smaller scale than the target's. */
  notes: string[]
}

/**
 * Every target whose servers and case ran, from the figures of this run
 * (each the best round's, as in the table).
 */
export function targets (results: Results): TargetResult[] {
  const label = (name: string): string => results.servers.find((s) => s.name === name)?.label ?? name
  const out: TargetResult[] = []
  for (const { kind, size, against, goal } of THROUGHPUT_TARGETS) {
    const at = (name: string): PhaseResult | undefined => kind === 'handshake'
      ? results.handshake[name]
      : results.echo[name]?.find((r) => r.size === size)
    const ours = at(OURS)
    const reference = at(against)
    if (ours === undefined || reference === undefined) continue
    const bytes = kind === 'echo' && usesBytes(size)
    const unit = kind === 'handshake' ? 'handshakes/s' : bytes ? 'MB/s' : 'msg/s'
    const value = (r: PhaseResult): number => bytes ? r.mbPerSecond : r.perSecond
    // A reference that measured nothing (its runs failed) gives no ratio: not met, and said so.
    const ratio = value(reference) > 0 ? value(ours) / value(reference) : NaN
    const notes: string[] = []
    if (Number.isNaN(ratio)) notes.push(`${label(against)} measured nothing: no ratio`)
    if (ours.clientCpu >= CLIENT_BOUND_CPU) notes.push(`${label(OURS)} client-bound: its figure is a floor`)
    if (reference.clientCpu >= CLIENT_BOUND_CPU) notes.push(`${label(against)} client-bound: the ratio is a ceiling`)
    if (Math.max(ours.otherCpu, reference.otherCpu) > OTHER_CPU_NOTE) {
      notes.push(`noisy: other processes used ${Math.round(ours.otherCpu)}% / ${Math.round(reference.otherCpu)}% of a core`)
    }
    out.push({
      target: `${kind === 'handshake' ? 'handshakes/s' : `${sizeLabel(size)} echo`} ≥ ${goal}× ${label(against)}${kind === 'handshake' ? '' : ` ${unit}`}`,
      kind,
      size,
      unit,
      ours: value(ours),
      against,
      reference: value(reference),
      ratio,
      goal,
      atMost: false,
      met: ratio >= goal,
      notes
    })
  }
  for (const size of EVERY_ROUND_SIZES) {
    const target = everyRoundTarget(results, size)
    if (target !== null) out.push(target)
  }
  const h2 = h2Target(results.h2)
  if (h2 !== null) out.push(h2)
  out.push(...fanoutTargets(results))
  const memory = results.memory[OURS]
  if (memory !== undefined) {
    const ratio = memory.perConnKb / IDLE_TARGET_KB
    const notes = memory.conns < IDLE_TARGET_CONNS
      ? [`measured at ${integer(memory.conns)} connections, not at the target's ${integer(IDLE_TARGET_CONNS)}`]
      : []
    out.push({
      target: `idle memory ≤ ${IDLE_TARGET_KB} KiB/conn at ${integer(IDLE_TARGET_CONNS)} conns`,
      kind: 'memory',
      size: 0,
      unit: 'KiB/conn',
      ours: memory.perConnKb,
      against: 'limit',
      reference: IDLE_TARGET_KB,
      ratio,
      goal: 1,
      atMost: true,
      met: ratio <= 1,
      notes
    })
  }
  return out
}

function renderTargets (results: Results, list: TargetResult[]): string[] {
  const label = (name: string): string => [...results.servers, ...results.fanoutServers].find((s) => s.name === name)?.label ?? name
  const figure = (t: TargetResult, value: number): string =>
    t.kind === 'memory' ? `${value.toFixed(2)} KiB/conn` : `${integer(value)} ${t.unit}`
  const rows = list.map((t) => {
    const raw = results.memory[RAW]
    const measured = t.kind === 'memory'
      ? `${label(OURS)} ${figure(t, t.ours)} at ${integer(results.memory[OURS].conns)} conns` +
        (raw === undefined ? '' : ` (${label(RAW)} ${figure(t, raw.perConnKb)})`)
      : `${label(OURS)} ${figure(t, t.ours)}, ${label(t.against)} ${figure(t, t.reference)}`
    const ratioCell = Number.isNaN(t.ratio) ? '-' : t.kind === 'memory' ? `${t.ratio.toFixed(2)}× the limit` : `${t.ratio.toFixed(2)}×`
    return [t.target, measured, ratioCell, [t.met ? 'met' : 'NOT met', ...t.notes].join('; ')]
  })
  return ['Targets (issues 12 and 23), from this run\'s figures:', '', table(['target', 'measured', 'ratio', ''], rows)]
}

function micros (us: number): string {
  if (!Number.isFinite(us)) return '-'
  if (us < 10) return `${us.toFixed(2)} µs`
  if (us < 100) return `${us.toFixed(1)} µs`
  if (us < 1000) return `${Math.round(us)} µs`
  if (us < 100000) return `${(us / 1000).toFixed(us < 10000 ? 2 : 1)} ms`
  return `${Math.round(us / 1000)} ms`
}

function ratio (value: number, base: number | undefined): string {
  if (base === undefined || !Number.isFinite(value) || !(base > 0)) return ''
  return ` (${(value / base).toFixed(2)}×)`
}

/** Microseconds of server CPU per message, handshake or delivery: the cost, whatever kept the throughput down. */
function cpuPer (r: PhaseResult): number {
  return r.serverCpu / 100 * r.seconds / r.count * 1e6
}

function clientBound (result: { clientCpu: number }): string {
  return result.clientCpu >= CLIENT_BOUND_CPU ? ' *' : ''
}

/** A Markdown table with padded columns. */
function table (head: string[], rows: string[][]): string {
  const widths = head.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i].length)))
  const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

export function render (results: Results): string {
  const { servers, baseline } = results
  const head = ['', ...servers.map((s) => s.label)]
  const rows: string[][] = []
  const sizes = [...new Set(Object.values(results.echo).flatMap((list) => list.map((r) => r.size)))]
  const echoAt = (name: string, size: number): PhaseResult | undefined => results.echo[name]?.find((r) => r.size === size)

  for (const size of sizes) {
    const bytes = usesBytes(size)
    const value = (r: PhaseResult): number => bytes ? r.mbPerSecond : r.perSecond
    const base = echoAt(baseline, size)
    rows.push([`${sizeLabel(size)} echo, ${bytes ? 'MB/s' : 'msg/s'}`, ...servers.map((s) => {
      const r = echoAt(s.name, size)
      return r === undefined ? '-' : `${integer(value(r))}${ratio(value(r), base && value(base))}${clientBound(r)}`
    })])
    rows.push(['  latency p50 / p99', ...servers.map((s) => {
      const r = echoAt(s.name, size)
      return r === undefined ? '-' : `${micros(r.p50us)} / ${micros(r.p99us)}`
    })])
    rows.push(['  server CPU per message', ...servers.map((s) => {
      const r = echoAt(s.name, size)
      return r === undefined ? '-' : `${micros(cpuPer(r))}${ratio(cpuPer(r), base && cpuPer(base))}`
    })])
  }
  if (Object.keys(results.handshake).length > 0) {
    const base = results.handshake[baseline]
    rows.push(['handshakes/s', ...servers.map((s) => {
      const r = results.handshake[s.name]
      return r === undefined ? '-' : `${integer(r.perSecond)}${ratio(r.perSecond, base?.perSecond)}${clientBound(r)}`
    })])
    rows.push(['  cycle p50 / p99', ...servers.map((s) => {
      const r = results.handshake[s.name]
      return r === undefined ? '-' : `${micros(r.p50us)} / ${micros(r.p99us)}`
    })])
    rows.push(['  server CPU per handshake', ...servers.map((s) => {
      const r = results.handshake[s.name]
      return r === undefined ? '-' : `${micros(cpuPer(r))}${ratio(cpuPer(r), base && cpuPer(base))}`
    })])
  }
  const memoryConns = Object.values(results.memory)[0]?.conns
  if (memoryConns !== undefined) {
    const base = results.memory[baseline]
    rows.push([`idle memory / conn (${integer(memoryConns)} conns)`, ...servers.map((s) => {
      const r = results.memory[s.name]
      return r === undefined ? '-' : `${r.perConnKb.toFixed(1)} KiB${ratio(r.perConnKb, base?.perConnKb)}`
    })])
    rows.push(['  of it JS heap + external', ...servers.map((s) => {
      const r = results.memory[s.name]
      return r === undefined ? '-' : `${r.heapPerConnKb.toFixed(2)} + ${r.externalPerConnKb.toFixed(2)} KiB`
    })])
  }

  const goals = targets(results)
  const out = [`machine: ${results.machine}`, ...results.setup]
  if (rows.length > 0) {
    out.push(
      '',
      table(head, rows),
      ...(goals.length > 0 ? ['', ...renderTargets(results, goals)] : []),
      '',
      'CPU over each measured window, % of one core: server / load client / all other processes (noise)',
      '',
      table(head, cpuRows(results, sizes))
    )
  }
  if (Object.keys(results.fanout).length > 0) out.push('', ...renderFanout(results))
  if (rows.length === 0 && goals.length > 0) out.push('', ...renderTargets(results, goals))
  if (results.redis !== undefined) out.push('', ...renderRedis(results.redis))
  if (results.h2 !== undefined) out.push('', ...renderH2(results.h2))
  if (results.overhead !== undefined) out.push('', ...renderOverhead(results.overhead))
  const against = rows.length > 0 || Object.keys(results.fanout).length > 0 ? `${baseline}'s` : ''
  const overheadAgainst = results.overhead === undefined ? '' : 'before\'s in the overhead table'
  out.push(
    '',
    `(x.xx×) = this server's figure / ${[against, overheadAgainst].filter((s) => s !== '').join('; ') || `${baseline}'s`}. * = client-bound: the load client used ≥ ${CLIENT_BOUND_CPU}% of its core, ` +
      'so the figure is the client\'s limit, a floor for the server.',
    'Server CPU per message (handshake, delivery) = server CPU time over the window / messages: the cost whatever bounded the rate.'
  )
  const notes = problems(results)
  if (notes.length > 0) out.push('', ...notes)
  if (Object.keys(results.wsload).length > 0) out.push('', ...renderWsload(results))
  if (Object.keys(results.wsloadFanout).length > 0) out.push('', ...renderWsloadFanout(results))
  return out.join('\n')
}

/** `1000 × 128 B`: subscribers × payload. */
export function fanoutLabel (subscribers: number, size: number): string {
  return `${integer(subscribers)} × ${sizeLabel(size)}`
}

function renderFanout (results: Results): string[] {
  const servers = results.fanoutServers
  const head = ['fan-out: subscribers × size', ...servers.map((s) => s.label)]
  const cases = results.fanout[servers[0].name] ?? Object.values(results.fanout)[0]
  const at = (name: string, i: number): PhaseResult | undefined => results.fanout[name]?.[i]
  const rows = cases.flatMap((c, i) => {
    const base = at(results.baseline, i)
    return [
      [`${fanoutLabel(c.subscribers ?? 0, c.size)}, deliveries/s`, ...servers.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${integer(r.perSecond)}${ratio(r.perSecond, base?.perSecond)}${clientBound(r)}`
      })],
      ['  publish → delivery p50 / p99', ...servers.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${micros(r.p50us)} / ${micros(r.p99us)}`
      })],
      ['  server CPU per delivery', ...servers.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${micros(cpuPer(r))}${ratio(cpuPer(r), base && cpuPer(base))}`
      })],
      ['  CPU % server / client / others', ...servers.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${Math.round(r.serverCpu)} / ${Math.round(r.clientCpu)}${clientBound(r)} / ${Math.round(r.otherCpu)}`
      })]
    ]
  })
  return [table(head, rows)]
}

function renderRedis (redis: PhaseResult[] | string): string[] {
  if (typeof redis === 'string') return [`Fan-out through Redis: skipped: ${redis}`]
  const [loaded, single] = redis
  const cells = (f: (r: PhaseResult) => string): string[] => [f(loaded), f(single)]
  return [
    `Fan-out through Redis, fastify-rfc6455 with RedisBroker: ${fanoutLabel(loaded.subscribers ?? 0, loaded.size)}, ` +
      'the publisher on one instance, the subscribers on another:',
    '',
    table(['through Redis', 'loaded (the window in flight)', 'one publish in flight'], [
      ['deliveries/s', ...cells((r) => `${integer(r.perSecond)}${clientBound(r)}`)],
      ['publish → delivery p50 / p99', ...cells((r) => `${micros(r.p50us)} / ${micros(r.p99us)}`)],
      ['CPU per delivery, subscribers\' instance', ...cells((r) => micros(cpuPer(r)))],
      ['CPU %: subscribers\' instance / publisher\'s / redis-server / client', ...cells((r) =>
        `${Math.round(r.serverCpu)} / ${Math.round(r.peerCpu[0])} / ${Math.round(r.peerCpu[1])} / ${Math.round(r.clientCpu)}`)]
    ])
  ]
}

/** The HTTP/2 rows, each HTTP/2 one with its ratio to the HTTP/1.1 row of the same case. */
function renderH2 (rows: H2Row[]): string[] {
  const same = (a: PhaseResult, b: PhaseResult): boolean => a.kind === b.kind && a.size === b.size
  const http1 = (r: PhaseResult): PhaseResult | undefined =>
    rows.find((row) => row.transport === 'HTTP/1.1' && same(row.result, r))?.result
  const head = ['fastify-rfc6455', 'transport: WebSockets on', 'msg/s', 'MB/s', 'server CPU per message', 'p50 / p99', 'CPU % server / client / others']
  return [
    'WebSockets over HTTP/2 streams (RFC 8441, h2c) beside HTTP/1.1 upgrades; ratios to HTTP/1.1; handshakes: msg/s = handshakes/s:',
    '',
    table(head, rows.map(({ transport, layout, result: r }) => {
      const base = transport === 'HTTP/2' ? http1(r) : undefined
      return [
        r.kind === 'echo' ? `${sizeLabel(r.size)} echo` : 'handshakes',
        `${transport}: ${layout}`,
        `${integer(r.perSecond)}${ratio(r.perSecond, base?.perSecond)}${clientBound(r)}`,
        r.kind === 'echo' ? r.mbPerSecond.toFixed(1) : '-',
        `${micros(cpuPer(r))}${ratio(cpuPer(r), base && cpuPer(base))}`,
        `${micros(r.p50us)} / ${micros(r.p99us)}`,
        `${Math.round(r.serverCpu)} / ${Math.round(r.clientCpu)} / ${Math.round(r.otherCpu)}${r.errors > 0 ? `; ${r.errors} errors` : ''}`
      ]
    }))
  ]
}

/** What the overhead case's verdicts compare: a server, the one it is divided by, and what differs between them. */
const OVERHEAD_PAIRS: Array<[name: string, against: string, what: string]> = [
  ['now', 'before', 'no subscribers, validation off: the observability work\'s cost'],
  ['now+subscribers', 'now', 'a subscriber on every channel'],
  ['now+json', 'now', 'validation on: parse, validate, re-serialise']
]

/**
 * Each server's echo rate and CPU per message, with its ratio to
 * `before`'s in the same row; then the verdicts, each pair of servers'
 * ratios wherever both ran the same row.
 */
function renderOverhead ({ ref, commit, servers, rows }: OverheadResult): string[] {
  const [before] = servers
  const head = ['ours, echo', ...servers.map((s) => s.label)]
  const lines = rows.flatMap(({ size, text, results }) => {
    const base = results[before.name]
    const cells = (f: (r: PhaseResult) => string): string[] => servers.map((s) => results[s.name] === undefined ? '-' : f(results[s.name]))
    return [
      [`${sizeLabel(size)} ${text ? 'text (JSON)' : 'binary'}, msg/s`,
        ...cells((r) => `${integer(r.perSecond)}${ratio(r.perSecond, base?.perSecond)}${clientBound(r)}`)],
      ['  server CPU per message', ...cells((r) => `${micros(cpuPer(r))}${ratio(cpuPer(r), base && cpuPer(base))}`)],
      ['  CPU % server / client / others', ...cells((r) =>
        `${Math.round(r.serverCpu)} / ${Math.round(r.clientCpu)} / ${Math.round(r.otherCpu)}${r.errors > 0 ? `; ${r.errors} errors` : ''}`)]
    ]
  })
  const label = (name: string): string => servers.find((s) => s.name === name)?.label ?? name
  const verdicts = OVERHEAD_PAIRS.flatMap(([name, against, what]) => {
    const both = rows.filter((row) => row.results[name] !== undefined && row.results[against] !== undefined)
    if (both.length === 0) return []
    const each = (f: (r: PhaseResult) => number): string => both.map((row) =>
      `${sizeLabel(row.size)} ${row.text ? 'text' : 'binary'}${ratio(f(row.results[name]), f(row.results[against])) || ' -'}`).join(', ')
    return [`- ${label(name)} / ${label(against)} (${what}): msg/s ${each((r) => r.perSecond)}; server CPU per message ${each(cpuPer)}`]
  })
  const built = ref === commit.slice(0, ref.length) ? commit.slice(0, 7) : `${ref} (${commit.slice(0, 7)})`
  return [
    `Overhead: ours built from ${built}, before the observability work, beside this tree's build; ` +
      `(x.xx×) = ratio to ${before.label}; * = client-bound:`,
    '',
    table(head, lines),
    '',
    'Ratios, higher msg/s and lower CPU per message being better:',
    ...verdicts,
    `Where a server used less than ${SATURATED_CPU}% of its core, its msg/s is not its limit (round trips, the client, ` +
      'other processes): judge by server CPU per message.'
  ]
}

function cpuRows (results: Results, sizes: number[]): string[][] {
  const cell = (r: PhaseResult | undefined): string =>
    r === undefined ? '-' : `${Math.round(r.serverCpu)} / ${Math.round(r.clientCpu)}${clientBound(r)} / ${Math.round(r.otherCpu)}`
  const rows = sizes.map((size) => [`${sizeLabel(size)} echo`,
    ...results.servers.map((s) => cell(results.echo[s.name]?.find((r) => r.size === size)))])
  if (Object.keys(results.handshake).length > 0) {
    rows.push(['handshakes', ...results.servers.map((s) => cell(results.handshake[s.name]))])
  }
  return rows
}

/** Errors, failed connections, unanswered pings and hypervisor steal worth knowing about. */
function problems (results: Results): string[] {
  const notes: string[] = []
  // Only the local fan-out runs are meant to saturate the server; through Redis, three processes share its core.
  const fanoutRuns: Array<[label: string, result: PhaseResult, local: boolean]> =
    results.fanoutServers.flatMap((s) => (results.fanout[s.name] ?? []).map((r): [string, PhaseResult, boolean] => [s.label, r, true]))
  if (typeof results.redis === 'object') for (const r of results.redis) fanoutRuns.push(['fastify-rfc6455 through Redis', r, false])
  for (const [label, r, local] of fanoutRuns) {
    const what = `${fanoutLabel(r.subscribers ?? 0, r.size)} fan-out`
    if (r.errors > 0) notes.push(`! ${label}, ${what}: ${r.errors} errors (failed connections, lost, extra or undelivered messages)`)
    if (local && r.serverCpu < SATURATED_CPU && r.clientCpu < CLIENT_BOUND_CPU && r.otherCpu <= OTHER_CPU_NOTE) {
      notes.push(`! ${label}, ${what}: neither the server (${Math.round(r.serverCpu)}%) nor the client was saturated: ` +
        'round trips or a busy host (CPU pressure the guest does not see as steal) held the rate down; CPU per delivery still holds')
    }
    if (r.otherCpu > OTHER_CPU_NOTE) notes.push(`! ${label}, ${what}: other processes used ${Math.round(r.otherCpu)}% of a core meanwhile: noisy`)
    if (r.steal > 2) notes.push(`! ${label}, ${what}: the hypervisor took ${r.steal.toFixed(1)}% of the machine (steal)`)
  }
  for (const s of results.servers) {
    const phases = [...(results.echo[s.name] ?? []), ...(results.handshake[s.name] ? [results.handshake[s.name]] : [])]
    for (const r of phases) {
      const what = r.kind === 'echo' ? `${sizeLabel(r.size)} echo` : 'handshakes'
      if (r.errors > 0) notes.push(`! ${s.label}, ${what}: ${r.errors} errors (failed connections, bad frames or cycles)`)
      if (r.otherCpu > OTHER_CPU_NOTE) notes.push(`! ${s.label}, ${what}: other processes used ${Math.round(r.otherCpu)}% of a core meanwhile: noisy`)
      if (r.steal > 2) notes.push(`! ${s.label}, ${what}: the hypervisor took ${r.steal.toFixed(1)}% of the machine (steal)`)
    }
    const m = results.memory[s.name]
    if (m !== undefined && (m.failed > 0 || m.pongs < m.open)) {
      notes.push(`! ${s.label}, idle memory: ${m.failed} connections failed to open, ${m.open - m.pongs} of ${m.open} did not answer the ping`)
    }
  }
  return notes
}

function renderWsload (results: Results): string[] {
  const sizes = [...new Set(Object.values(results.wsload).flatMap((list) => list.map((r) => r.size)))]
  const head = ['wsload (C client)', ...results.servers.filter((s) => results.wsload[s.name]).map((s) => s.label)]
  const shown = results.servers.filter((s) => results.wsload[s.name])
  const at = (name: string, size: number): WsloadResult | undefined => results.wsload[name]?.find((r) => r.size === size)
  const rows = sizes.flatMap((size) => [
    [`${sizeLabel(size)} echo, msg/s`, ...shown.map((s) => {
      const r = at(s.name, size)
      return r === undefined ? '-' : `${integer(r.perSecond)}${ratio(r.perSecond, at(results.baseline, size)?.perSecond)}${clientBound(r)}`
    })],
    ['  latency p50 / p99', ...shown.map((s) => {
      const r = at(s.name, size)
      return r === undefined ? '-' : `${micros(r.p50us)} / ${micros(r.p99us)}`
    })],
    ['  server CPU per message', ...shown.map((s) => {
      const r = at(s.name, size)
      return r === undefined ? '-' : `${micros(r.serverCpuPerMessageUs)}${ratio(r.serverCpuPerMessageUs, at(results.baseline, size)?.serverCpuPerMessageUs)}`
    })],
    ['  CPU % server / client', ...shown.map((s) => {
      const r = at(s.name, size)
      return r === undefined ? '-' : `${Math.round(r.serverCpu)} / ${Math.round(r.clientCpu)}`
    })]
  ])
  return ['Cross-check with the C load generator, same connections and window:', '', table(head, rows)]
}

function renderWsloadFanout (results: Results): string[] {
  const shown = results.fanoutServers.filter((s) => results.wsloadFanout[s.name])
  const head = ['wsload (C client), fan-out', ...shown.map((s) => s.label)]
  const cases = results.wsloadFanout[shown[0].name]
  const at = (name: string, i: number): WsloadResult | undefined => results.wsloadFanout[name]?.[i]
  const rows = cases.flatMap((c, i) => {
    const base = at(results.baseline, i)
    return [
      [`${fanoutLabel(c.subscribers ?? 0, c.size)}, deliveries/s`, ...shown.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${integer(r.perSecond)}${ratio(r.perSecond, base?.perSecond)}${clientBound(r)}`
      })],
      ['  publish → delivery p50 / p99', ...shown.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${micros(r.p50us)} / ${micros(r.p99us)}`
      })],
      ['  server CPU per delivery', ...shown.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${micros(r.serverCpuPerMessageUs)}${ratio(r.serverCpuPerMessageUs, base?.serverCpuPerMessageUs)}`
      })],
      ['  CPU % server / client', ...shown.map((s) => {
        const r = at(s.name, i)
        return r === undefined ? '-' : `${Math.round(r.serverCpu)} / ${Math.round(r.clientCpu)}`
      })]
    ]
  })
  const errors = shown.flatMap((s) => (results.wsloadFanout[s.name] ?? []).filter((r) => r.errors > 0)
    .map((r) => `! ${s.label}, ${fanoutLabel(r.subscribers ?? 0, r.size)} fan-out (wsload): ${r.errors} errors`))
  return ['Fan-out cross-check with the C load generator (wsload -m fanout), same subscribers and window:', '', table(head, rows), ...errors]
}
