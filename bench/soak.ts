/**
 * npm run soak [-- options]: does the server's memory stay flat under hours
 * of churn? A shorter stand-in: the built package's echo server
 * (bench/soak-server.ts, node --expose-gc) in one process, the load
 * (bench/soak-load.ts, `ws` clients over TCP on 127.0.0.1) in another.
 * LONG_LIVED connections stay open and keep exchanging messages while CHURN
 * loops open connections, exchange 16 B to 256 KiB messages with and without
 * permessage-deflate, and close them with a closing handshake or by
 * destroying the TCP connection. Not part of `npm test`.
 *
 *   --minutes N        minutes of load, more than 1 (default 10)
 *   --long-lived N     connections open all along (default 200)
 *   --churn N          churn loops at once (default 8)
 *   --svg PATH         where to write the curve (default soak.svg in the OS temp directory)
 *
 * Every 10 s: the server's heap used and RSS after a full GC (it is asked
 * over HTTP, GET /soak/memory), its open WebSockets, and the load's counters.
 * Verdict, each criterion PASS or FAIL, the exit code 1 on any FAIL:
 *   heap, RSS   at the end at most 10% above the sample at 1 minute
 *   trend       least-squares slope of the heap samples from 1 minute on,
 *               at most SLOPE_LIMIT % of the 1-minute heap per minute
 *   messages    every message sent on a connection not destroyed on
 *               purpose was echoed byte for byte and in order: none missing,
 *               none mismatched
 *   connections every handshake succeeded, no connection closed that the
 *               load did not close, and none open on the server once the
 *               load has stopped
 * Progress goes to stderr, the report to stdout. Build first (npm run soak does).
 */
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { BENCH, PINNING, exited, freePort, launchNode, onLines, stderrTail, waitForPort } from './launch.js'
import { describeMachine } from './proc.js'
import type { LoadCounters } from './soak-load.js'
import { renderCurve, type CurvePoint } from './soak-svg.js'

const { values: options } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'long-lived': { type: 'string', default: '200' },
    churn: { type: 'string', default: '8' },
    svg: { type: 'string', default: path.join(os.tmpdir(), 'soak.svg') }
  }
})

const MINUTES = Number(options.minutes)
const LONG_LIVED = Number(options['long-lived'])
const CHURN = Number(options.churn)
if (!(MINUTES > 1)) throw new Error(`--minutes must be more than 1 (the first minute is the baseline), not ${options.minutes}`)
if (!Number.isInteger(LONG_LIVED) || LONG_LIVED < 0) throw new Error(`--long-lived must be an integer from 0, not ${options['long-lived']}`)
if (!Number.isInteger(CHURN) || CHURN < 1) throw new Error(`--churn must be an integer from 1, not ${options.churn}`)

const SAMPLE_SECONDS = 10
const BASELINE_SECONDS = 60
/** Largest growth allowed between the 1-minute sample and the last, in %. */
const GROWTH_LIMIT = 10
/** Largest slope allowed of the heap's least-squares line from 1 minute on, in % of the 1-minute heap per minute. */
const SLOPE_LIMIT = 1
const MiB = 1024 * 1024

interface ServerMemory {
  memory: NodeJS.MemoryUsage
  open: number
}

interface Sample {
  seconds: number
  server: ServerMemory
  load: LoadCounters
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const log = (line: string): void => { process.stderr.write(line + '\n') }

const children: ChildProcess[] = []

/** Ends every process this soak started (SIGTERM, SIGKILL 5 s later) and waits for them. */
async function stopChildren (): Promise<void> {
  await Promise.all(children.map(async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited(child)
    clearTimeout(timer)
  }))
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`\n${signal}: stopping the server and the load`)
    stopChildren().finally(() => process.exit(130))
  })
}

/** Rejects as soon as `child` exits, with the end of its stderr; never resolves. */
function failOnExit (child: ChildProcess, name: string): Promise<never> {
  const stderr = stderrTail(child)
  const failed = exited(child).then((code) => {
    throw new Error(`${name} exited (code ${code}) during the soak:\n${stderr()}`)
  })
  failed.catch(() => {})
  return failed
}

/** Full GC in the server, then its memory and open WebSockets. */
async function serverMemory (port: number): Promise<ServerMemory> {
  const response = await fetch(`http://127.0.0.1:${port}/soak/memory`)
  if (!response.ok) throw new Error(`GET /soak/memory answered ${response.status}`)
  return await response.json() as ServerMemory
}

/** The load process: `stats` in, one JSON line out. */
class Load {
  private readonly child: ChildProcess
  private readonly waiters: Array<(line: string) => void> = []
  readonly ready: Promise<void>

  constructor (child: ChildProcess) {
    this.child = child
    let onReady = (): void => {}
    this.ready = new Promise((resolve) => { onReady = resolve })
    onLines(child, (line) => {
      if (line === 'ready') onReady()
      else this.waiters.shift()?.(line)
    })
  }

  private ask (command: string): Promise<LoadCounters> {
    return new Promise((resolve) => {
      this.waiters.push((line) => resolve(JSON.parse(line)))
      this.child.stdin!.write(command + '\n')
    })
  }

  stats (): Promise<LoadCounters> {
    return this.ask('stats')
  }

  /** Ends the churn, closes the long-lived connections with a closing handshake; resolves with the final counters once the process exited. */
  async stop (): Promise<LoadCounters> {
    const counters = await this.ask('stop')
    await exited(this.child)
    return counters
  }
}

/** Least-squares slope of y over x. */
function slope (points: Array<[x: number, y: number]>): number {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return sxx === 0 ? 0 : sxy / sxx
}

const mib = (bytes: number): string => (bytes / MiB).toFixed(1)
const clock = (seconds: number): string => `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, '0')}`
const pct = (n: number): string => `${n >= 0 ? '+' : ''}${n.toFixed(1)}%`

function row (cells: Array<string | number>): string {
  return `| ${cells.join(' | ')} |`
}

async function main (): Promise<number> {
  const port = await freePort()
  const server = launchNode(`${BENCH}soak-server.ts`, [], {
    core: PINNING?.server ?? null,
    env: { PORT: String(port) },
    nodeFlags: ['--expose-gc']
  })
  children.push(server)
  const serverDied = failOnExit(server, 'the soak server')
  await Promise.race([waitForPort(port, 20_000), serverDied])
  const idle = await serverMemory(port)
  log(`server on 127.0.0.1:${port} (pid ${server.pid}), idle heap ${mib(idle.memory.heapUsed)} MiB, RSS ${mib(idle.memory.rss)} MiB`)

  const loadChild = launchNode(`${BENCH}soak-load.ts`, [String(port), String(LONG_LIVED), String(CHURN)], { core: PINNING?.client ?? null })
  children.push(loadChild)
  const loadDied = failOnExit(loadChild, 'the soak load')
  const load = new Load(loadChild)
  const race = <T>(promise: Promise<T>): Promise<T> => Promise.race([promise, serverDied, loadDied])
  await race(load.ready)
  log(`${LONG_LIVED} long-lived connections open, ${CHURN} churn loops; ${MINUTES} minutes, a sample every ${SAMPLE_SECONDS} s`)

  const samples: Sample[] = []
  const start = Date.now()
  const end = MINUTES * 60
  for (let seconds = 0; seconds <= end; seconds = Math.min(end, seconds + SAMPLE_SECONDS)) {
    await sleep(start + seconds * 1000 - Date.now())
    const [serverNow, loadNow] = await race(Promise.all([serverMemory(port), load.stats()]))
    samples.push({ seconds, server: serverNow, load: loadNow })
    log(`${clock(seconds)}  heap ${mib(serverNow.memory.heapUsed)} MiB  RSS ${mib(serverNow.memory.rss)} MiB  ` +
      `open ${serverNow.open}  echoed ${loadNow.echoed}`)
    if (seconds === end) break
  }

  const final = await Promise.race([load.stop(), serverDied])
  let after = await serverMemory(port)
  for (let waited = 0; after.open > 0 && waited < 15_000; waited += 250) {
    await sleep(250)
    after = await serverMemory(port)
  }
  await stopChildren()

  const baseline = samples.find((s) => s.seconds >= BASELINE_SECONDS)!
  const last = samples[samples.length - 1]
  const trend = samples.filter((s) => s.seconds >= BASELINE_SECONDS)
  const heapSlope = slope(trend.map((s) => [s.seconds / 60, s.server.memory.heapUsed])) / baseline.server.memory.heapUsed * 100
  const rssSlope = slope(trend.map((s) => [s.seconds / 60, s.server.memory.rss])) / baseline.server.memory.rss * 100
  const heapGrowth = (last.server.memory.heapUsed / baseline.server.memory.heapUsed - 1) * 100
  const rssGrowth = (last.server.memory.rss / baseline.server.memory.rss - 1) * 100
  const inFlight = final.sent - final.echoed - final.lostOnAbrupt - final.missing - final.mismatched

  const out: string[] = [
    `Soak: ${MINUTES} min, ${LONG_LIVED} long-lived connections, ${CHURN} churn loops, ` +
      '16 B-256 KiB messages, half the connections with permessage-deflate',
    describeMachine(),
    '',
    'Server after a full GC, every sample:',
    '',
    row(['time', 'heap MiB', 'RSS MiB', 'external MiB', 'open connections', 'connections so far', 'messages echoed so far']),
    row(['---:', '---:', '---:', '---:', '---:', '---:', '---:']),
    ...samples.map((s) => row([clock(s.seconds), mib(s.server.memory.heapUsed), mib(s.server.memory.rss),
      mib(s.server.memory.external), s.server.open, s.load.opened, s.load.echoed])),
    '',
    `Idle before the load: heap ${mib(idle.memory.heapUsed)} MiB, RSS ${mib(idle.memory.rss)} MiB; ` +
      `after it stopped: heap ${mib(after.memory.heapUsed)} MiB, RSS ${mib(after.memory.rss)} MiB, ${after.open} open.`,
    `Connections: ${final.opened} opened (${final.failedOpens} failed), ${final.closedClean} closed with a closing handshake, ` +
      `${final.closedAbrupt} destroyed without one, ${final.closedUnexpectedly} closed unexpectedly.`,
    `Messages: ${final.sent} sent (${(final.sentBytes / MiB).toFixed(0)} MiB), ${final.echoed} echoed byte for byte, ` +
      `${final.lostOnAbrupt} lost on purpose (connection destroyed before its echo), ${final.missing} missing, ` +
      `${final.mismatched} mismatched${inFlight === 0 ? '' : `, ${inFlight} unaccounted`}.`,
    `RSS trend from 1 minute on (not judged): ${pct(rssSlope)} per minute.`
  ]
  if (final.errors > 0) out.push(`Client errors: ${final.errors} (${final.errorSamples.join('; ')}).`)

  const verdicts: Array<[string, boolean, string]> = [
    ['heap', heapGrowth <= GROWTH_LIMIT,
      `${mib(last.server.memory.heapUsed)} MiB at the end vs ${mib(baseline.server.memory.heapUsed)} MiB at 1:00 (${pct(heapGrowth)}, limit +${GROWTH_LIMIT}%)`],
    ['RSS', rssGrowth <= GROWTH_LIMIT,
      `${mib(last.server.memory.rss)} MiB at the end vs ${mib(baseline.server.memory.rss)} MiB at 1:00 (${pct(rssGrowth)}, limit +${GROWTH_LIMIT}%)`],
    ['trend', heapSlope <= SLOPE_LIMIT,
      `heap least-squares slope from 1:00 on, ${trend.length} samples: ${pct(heapSlope)} per minute (limit +${SLOPE_LIMIT}%)`],
    ['messages', final.missing === 0 && final.mismatched === 0 && inFlight === 0 && final.echoed > 0,
      `${final.echoed}/${final.sent - final.lostOnAbrupt} echoed, ${final.missing} missing, ${final.mismatched} mismatched`],
    ['connections', final.failedOpens === 0 && final.closedUnexpectedly === 0 && after.open === 0,
      `${final.failedOpens} failed handshakes, ${final.closedUnexpectedly} unexpected closes, ${after.open} open on the server after the load`]
  ]
  out.push('', ...verdicts.map(([name, ok, detail]) => `${ok ? 'PASS' : 'FAIL'}  ${name.padEnd(11)} ${detail}`))

  const points: CurvePoint[] = samples.map((s) => ({
    seconds: s.seconds, heapMiB: s.server.memory.heapUsed / MiB, rssMiB: s.server.memory.rss / MiB, open: s.server.open
  }))
  writeFileSync(options.svg, renderCurve(points, `fastify-rfc6455 soak: ${MINUTES} min, ${LONG_LIVED} long-lived + ${CHURN} churn loops`))
  out.push('', `Curve: ${path.resolve(options.svg)}`)
  process.stdout.write(out.join('\n') + '\n')
  return verdicts.every(([, ok]) => ok) ? 0 : 1
}

main().then((code) => { process.exitCode = code }, async (err) => {
  console.error(err)
  await stopChildren()
  process.exitCode = 1
})
