/**
 * npm run bench [-- options]: fastify-rfc6455 against ws, @fastify/websocket
 * and a raw node:net echo, each server in its own process on core 0, the
 * load client (bench/client.ts) in its own on core 1. Then the fan-out: one
 * publisher, N subscribers on one topic (bench/fanout-server.ts), and the
 * same fan-out across two instances through Redis.
 *
 *   --quick              one round of short runs, 2k idle connections: about a minute and a half
 *   --cases a,b          only these: echo (echo, handshakes, idle memory), fanout, redis, recovery (default: these four),
 *                        h2 (16 B and 64 KiB echo and handshakes over HTTP/2 streams, h2c, beside HTTP/1.1; about 80 s),
 *                        overhead (about 2.5 min; --quick 1 min): 16 B and 1 KiB echo of ours (bench/overhead-server.ts)
 *                        on four servers in turn: `before`, the package built from --baseline; `now`, this tree's
 *                        build; `now+subscribers`, with a subscriber on every fastify-rfc6455:* diagnostics
 *                        channel; `now+json`, a `messages: 'json'` route with a `schema.message` (validation on).
 *                        before and now echo binary and text messages (JSON documents), now+subscribers binary,
 *                        now+json text (it refuses binary: the ratio of its text echo to before's is what parsing,
 *                        validating and re-serialising cost). Msg/s and server CPU per message, ratios to before
 *                        presence (about 20 s; bench/presence.ts): one topic with 10,000 members over two instances
 *                        through Redis: memory per member in Redis and in the process, the join storm, listing them
 *                        recovery (about 15 s; bench/recovery.ts): a topic with history against one without through
 *                        Redis, the resume of 1,000 missed messages, a history topic's memory in the LocalBroker
 *   --baseline REF       the git ref `before` is built from (default 61a8f72, the commit before the observability
 *                        work); built with this tree's tsc and node_modules, kept in the temporary directory
 *   --servers a,b        only these (rfc6455, ws, fastify-websocket, net; fan-out has no net, and bun with --bun)
 *   --wsload PATH        also drive 16 B and 1 KiB echo and the fan-out cases with this wsload binary (C), to cross-check
 *   --bun PATH           also run the fan-out on Bun, the `bun` program at PATH (bench/fanout-bun.ts: uWebSockets'
 *                        topics), for the targets against uWebSockets; --servers calls it bun
 *   --profile            instead of the table: profile fastify-rfc6455 (node --cpu-prof)
 *                        through one 16 B echo run and summarize where its time goes
 *   --profile-server N   profile server N instead (implies --profile); rfc6455-h2c: ours over HTTP/2 streams (h2c)
 *   --profile-run R      profile R: a message size in bytes, `handshake`, or
 *                        `fanout:SUBSCRIBERS:SIZE` such as fanout:1000:128 (implies --profile)
 *   --json PATH          also write every figure as JSON, every round's too, and the targets met or not
 *   --svg PATH           where the chart of the echo case goes: rates divided by ws's, the targets
 *                        of issue 12, idle memory (default bench-results.svg, in the current directory)
 *
 * Progress goes to stderr, the report to stdout. Build first (npm run bench does):
 * ours runs through examples/echo.ts, which imports the built package.
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { chart } from './chart.js'
import { H2_SESSIONS, runH2 } from './h2.js'
import { FD_LIMIT, PINNING } from './launch.js'
import { LoadClient } from './load.js'
import { measureIdleMemory } from './memory.js'
import { runOverhead } from './overhead.js'
import { renderPresence, runPresence } from './presence.js'
import { renderRecovery, runRecovery } from './recovery.js'
import { describeMachine } from './proc.js'
import { profileServer } from './profile.js'
import { redisMissing, runRedisFanout } from './redis.js'
import { fanoutLabel, render, sizeLabel, targets, type Results } from './report.js'
import { BASELINE, FANOUT_SERVERS, H2C_SERVER, SERVERS, Server, bunFanoutServer, type ServerSpec } from './servers.js'
import type { EchoPhase, FanoutPhase, HandshakePhase, Phase, PhaseResult } from './types.js'
import { runWsload, runWsloadFanout, type WsloadResult } from './wsload.js'

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    cases: { type: 'string' },
    servers: { type: 'string' },
    wsload: { type: 'string' },
    bun: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'profile-server': { type: 'string' },
    'profile-run': { type: 'string' },
    json: { type: 'string' },
    svg: { type: 'string', default: 'bench-results.svg' },
    baseline: { type: 'string', default: '61a8f72' }
  }
})

const quick = options.quick
const CONNS = 100
const WINDOW = 8
const SIZES = [16, 1024, 64 * 1024, 1024 * 1024]
/**
 * Seconds: [warm-up, measured]. 1 MiB needs longer: with 800 MiB in flight,
 * the first echoes come back after seconds.
 */
const TIMES = quick
  ? { echo: [0.25, 0.5], large: [0.75, 0.75], handshake: [0.25, 0.5], fanout: [0.5, 1], settleMs: 1000 }
  : { echo: [0.5, 2], large: [3, 2], handshake: [0.5, 2], fanout: [1, 2], settleMs: 4000 }
/**
 * Rounds of every run against every server in turn; each figure is from the
 * round with the highest rate, so that a burst of load from other processes
 * on the machine costs a round, not the figure.
 */
const ROUNDS = quick ? 1 : 3
const WSLOAD_SIZES = [16, 1024]
const HANDSHAKE_PARALLEL = 16
const IDLE_CONNS = Math.min(quick ? 2000 : 10000, FD_LIMIT - 200)
/** Fan-out cases: subscribers × payload bytes, each run with FANOUT_WINDOW publishes in flight. */
const FANOUT_CASES: Array<[subscribers: number, size: number]> = [[100, 16], [1000, 128], [1000, 4096]]
/**
 * Publishes in flight: enough that the server never waits for the
 * publisher (its CPU near 100%); the server reads them together, so a
 * server that batches writes sends each subscriber up to this many per write.
 */
const FANOUT_WINDOW = 16
/** The case run through Redis: the middle one. */
const REDIS_CASE = FANOUT_CASES[1]
const CASES = ['echo', 'fanout', 'redis', 'h2', 'overhead', 'recovery', 'presence']
const DEFAULT_CASES = ['echo', 'fanout', 'redis', 'recovery']
/** --cases overhead: the echo sizes. */
const OVERHEAD_SIZES = [16, 1024]
/** --cases h2: the echo sizes. */
const H2_SIZES = [16, 64 * 1024]

const echoPhase = (size: number): EchoPhase => {
  const [warmup, duration] = size >= 1024 * 1024 ? TIMES.large : TIMES.echo
  return { kind: 'echo', size, conns: CONNS, window: WINDOW, warmup, duration }
}
const handshakePhase: HandshakePhase = {
  kind: 'handshake', parallel: HANDSHAKE_PARALLEL, warmup: TIMES.handshake[0], duration: TIMES.handshake[1]
}
const fanoutPhase = (subscribers: number, size: number): FanoutPhase => ({
  kind: 'fanout', size, subscribers, window: FANOUT_WINDOW, warmup: TIMES.fanout[0], duration: TIMES.fanout[1]
})

const cases = options.cases?.split(',').map((name) => name.trim()) ?? DEFAULT_CASES
const unknownCase = cases.find((name) => !CASES.includes(name))
if (unknownCase !== undefined) throw new Error(`--cases: no case ${unknownCase} (${CASES.join(', ')})`)
const wanted = options.servers?.split(',').map((name) => name.trim())
const chosen = (specs: ServerSpec[]): ServerSpec[] => specs.filter((spec) => wanted === undefined || wanted.includes(spec.name))
const servers = cases.includes('echo') ? chosen(SERVERS) : []
// Bun right after ours: the two measured back to back in every round, as a pair.
const fanoutServers = cases.includes('fanout')
  ? chosen(options.bun === undefined ? FANOUT_SERVERS : [FANOUT_SERVERS[0], bunFanoutServer(options.bun), ...FANOUT_SERVERS.slice(1)])
  : []
if (servers.length + fanoutServers.length === 0 && !['redis', 'h2', 'overhead', 'recovery', 'presence'].some((name) => cases.includes(name))) {
  throw new Error(`--servers: none of ${SERVERS.map((s) => s.name).join(', ')}`)
}

const began = Date.now()
const log = (line: string): void => {
  process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(1).padStart(5)} s] ${line}\n`)
}

const setup = [
  `Node ${process.version} (V8 ${process.versions.v8}): every server and the load client`,
  PINNING === null
    ? 'processes: one per server, one for the load client; NOT pinned (taskset missing or one core)'
    : `processes: each server alone on core ${PINNING.server}, the load client (Node) on core ${PINNING.client} (taskset)`
]
if (servers.length > 0) {
  setup.push(
    `echo: binary, ${CONNS} connections × ${WINDOW} messages in flight each; ` +
      `${TIMES.echo[1]} s measured after ${TIMES.echo[0]} s warm-up (1 MiB: ${TIMES.large[1]} s after ${TIMES.large[0]} s)` +
      (ROUNDS > 1 ? `; ${ROUNDS} rounds over all servers in turn, each figure from the round with the highest rate` : ''),
    `handshakes: ${HANDSHAKE_PARALLEL} parallel loops of connect, upgrade, close handshake, TCP close; ` +
      `${TIMES.handshake[1]} s measured (node:net: connect, request echoed, close)`,
    `idle memory: server VmRSS (after a forced full GC) before and after ${IDLE_CONNS} idle connections, per connection; ` +
      'measured first, on the fresh process, with the same load client process')
}
if (fanoutServers.length > 0) {
  setup.push(`fan-out: N subscriber connections on one topic, then one publisher keeping ${FANOUT_WINDOW} binary messages ` +
    'in flight (its own copy acknowledges each: ours sends it after the subscribers\' copies, in the same pass on the ' +
    'next tick; ws and @fastify/websocket last, in their loop\'s order); the server sends every message to every ' +
    'connection; deliveries/s counts the subscribers\' (not the publisher\'s); ' +
    `${TIMES.fanout[1]} s measured after ${TIMES.fanout[0]} s warm-up` +
    (ROUNDS > 1 ? `; ${ROUNDS} rounds, each figure from the round with the highest rate` : ''))
}
if (cases.includes('redis')) {
  setup.push(`fan-out through Redis: ${fanoutLabel(...REDIS_CASE)}, ${FANOUT_WINDOW} publishes in flight, then one at a ` +
    'time; a redis-server and two instances of ours with RedisBroker, all on the server core; the publisher on one ' +
    'instance, the subscribers on the other; the last subscriber acknowledges' +
    (ROUNDS > 1 ? `; the best of ${ROUNDS} runs` : ''))
}
if (cases.includes('h2')) {
  const streams = H2_SESSIONS.map((n) => n === 1 ? `${CONNS} streams of 1 connection` : `${CONNS / n} streams of each of ${n}`)
  setup.push('HTTP/2: ours (examples/echo.ts) on h2c (H2C=1) and on HTTP/1.1, measured in turn; binary echo of ' +
    `${CONNS} WebSockets × ${WINDOW} messages in flight each, ${TIMES.echo[1]} s measured after ${TIMES.echo[0]} s warm-up: ` +
    `${CONNS} TCP connections, or ${streams.join(', or ')} (the client's receive windows 16 MiB, the server's Node's defaults); ` +
    `handshakes: ${HANDSHAKE_PARALLEL} parallel loops of TCP connect, upgrade, close handshake, TCP close, or of extended ` +
    'CONNECT, 200, close handshake, END_STREAM both ways on one open connection' +
    (ROUNDS > 1 ? `; ${ROUNDS} rounds, each figure from the round with the highest rate` : ''))
}
if (cases.includes('overhead')) {
  setup.push(`overhead: ours (bench/overhead-server.ts) built from ${options.baseline} (before), this tree's build (now), ` +
    'now with a subscriber on every diagnostics channel, now on a messages: \'json\' route with a schema.message, ' +
    `measured in turn; echo of ${CONNS} connections × ${WINDOW} messages in flight each, binary, or text (a JSON ` +
    `document {"n":"…"} of the same size); ${TIMES.echo[1]} s measured after ${TIMES.echo[0]} s warm-up; one round ` +
    `of every run on every server first, not counted (the JIT), then ${ROUNDS > 1 ? `${ROUNDS} rounds, each figure from ` +
    'the round with the highest rate' : 'one'}`)
}

const results: Results = {
  machine: describeMachine(),
  setup,
  servers,
  baseline: BASELINE,
  echo: {},
  handshake: {},
  memory: {},
  wsload: {},
  fanoutServers,
  fanout: {},
  wsloadFanout: {}
}

function describe (r: { kind: Phase['kind'], size: number, subscribers?: number }): string {
  if (r.kind === 'handshake') return 'handshakes'
  if (r.kind === 'fanout') return `${fanoutLabel(r.subscribers ?? 0, r.size)} fan-out`
  return `${sizeLabel(r.size)} echo`
}

const progress = (label: string) => (r: PhaseResult): void => {
  log(`${label}, ${describe(r)}: ${Math.round(r.perSecond).toLocaleString('en-US')}/s` +
    `${r.kind === 'handshake' ? '' : `, ${r.mbPerSecond.toFixed(1)} MB/s`}` +
    `${r.kind === 'fanout' ? `, p50 ${Math.round(r.p50us)} µs, p99 ${Math.round(r.p99us)} µs` : ''}; ` +
    `CPU server ${Math.round(r.serverCpu)}%, client ${Math.round(r.clientCpu)}%, ` +
    `${r.peerCpu.length > 0 ? `peers ${r.peerCpu.map((cpu) => `${Math.round(cpu)}%`).join(' ')}, ` : ''}` +
    `others ${Math.round(r.otherCpu)}%${r.errors > 0 ? `; ${r.errors} errors` : ''}`)
}

if (options.profile || options['profile-server'] !== undefined || options['profile-run'] !== undefined) {
  const name = options['profile-server'] ?? 'rfc6455'
  const run = options['profile-run'] ?? '16'
  const fanout = /^fanout:(\d+):(\d+)$/.exec(run)
  const spec = (fanout === null ? [...SERVERS, H2C_SERVER] : FANOUT_SERVERS).find((s) => s.name === name)
  if (spec === undefined) throw new Error(`--profile-server: no server ${name}`)
  const phase = fanout !== null
    ? fanoutPhase(Number(fanout[1]), Number(fanout[2]))
    : run === 'handshake' ? handshakePhase : echoPhase(Number(run))
  log(`profiling ${spec.label}, ${describe(phase.kind === 'fanout' ? phase : { kind: phase.kind, size: Number(run) })}`)
  process.stdout.write(`machine: ${describeMachine()}\n\n${await profileServer(spec, phase)}\n`)
  process.exit(0)
}

log(`machine: ${results.machine}`)

/** The result of the round with the highest rate. */
function best<T extends { perSecond: number }> (perRound: T[]): T {
  return perRound.reduce((a, b) => b.perSecond > a.perSecond ? b : a)
}

const phases = [...SIZES.map(echoPhase), handshakePhase]
/** Every round's results, per server name: phase results in phase order, wsload results in WSLOAD_SIZES order. */
const rounds: Record<string, { phases: PhaseResult[][], wsload: WsloadResult[][] }> = {}

if (servers.length > 0) {
  // One process per server, all started at once (then pinned); each is measured
  // alone: idle memory first, while it is fresh, then the load.
  const running = await Server.startAll(servers)
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      if (ROUNDS > 1) log(`round ${round} of ${ROUNDS}`)
      for (const server of running) {
        const spec = server.spec
        const mine = rounds[spec.name] ??= { phases: [], wsload: [] }
        // In the first round the client measures idle memory first, while the server is fresh.
        const client = new LoadClient(server, phases, { idle: round === 1 ? IDLE_CONNS : undefined })
        if (round === 1) {
          const m = await measureIdleMemory(server, client, IDLE_CONNS, TIMES.settleMs)
          results.memory[spec.name] = m
          log(`${spec.label}, idle memory: ${m.perConnKb.toFixed(2)} KiB/conn (VmRSS ${m.beforeKb} -> ${m.afterKb} KiB; ` +
            `JS heap ${m.heapPerConnKb.toFixed(2)} KiB/conn, external ${m.externalPerConnKb.toFixed(2)} KiB/conn; ` +
            `${m.open} open, ${m.failed} failed, ${m.pongs} pongs)`)
        }
        mine.phases.push(await client.phases(phases.length, progress(spec.label)))
        if (options.wsload !== undefined) {
          const wsload: WsloadResult[] = []
          for (const size of WSLOAD_SIZES) {
            const r = await runWsload(options.wsload, server, echoPhase(size))
            wsload.push(r)
            log(`${spec.label}, ${sizeLabel(size)} echo (wsload): ${Math.round(r.perSecond).toLocaleString('en-US')}/s; ` +
              `CPU server ${Math.round(r.serverCpu)}%, client ${Math.round(r.clientCpu)}%`)
          }
          mine.wsload.push(wsload)
        }
      }
    }
  } finally {
    await Promise.all(running.map((server) => server.stop()))
  }
  for (const [name, mine] of Object.entries(rounds)) {
    (results.echoRounds ??= {})[name] = mine.phases.map((round) => round.filter((r) => r.kind === 'echo'))
    const chosen = phases.map((_, i) => best(mine.phases.map((round) => round[i])))
    results.echo[name] = chosen.filter((r) => r.kind === 'echo')
    results.handshake[name] = chosen.find((r) => r.kind === 'handshake')!
    if (mine.wsload.length > 0) results.wsload[name] = WSLOAD_SIZES.map((_, i) => best(mine.wsload.map((round) => round[i])))
  }
}

const fanoutPhases = FANOUT_CASES.map(([subscribers, size]) => fanoutPhase(subscribers, size))
/** Every fan-out round's results, per server name, in FANOUT_CASES order. */
const fanoutRounds: Record<string, { phases: PhaseResult[][], wsload: WsloadResult[][] }> = {}

if (fanoutServers.length > 0) {
  const running = await Server.startAll(fanoutServers)
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      if (ROUNDS > 1) log(`fan-out, round ${round} of ${ROUNDS}`)
      for (const server of running) {
        const spec = server.spec
        const mine = fanoutRounds[spec.name] ??= { phases: [], wsload: [] }
        const client = new LoadClient(server, fanoutPhases)
        mine.phases.push(await client.phases(fanoutPhases.length, progress(spec.label)))
        if (options.wsload !== undefined) {
          const wsload: WsloadResult[] = []
          for (const phase of fanoutPhases) {
            const r = await runWsloadFanout(options.wsload, server, phase)
            wsload.push(r)
            log(`${spec.label}, ${fanoutLabel(phase.subscribers, phase.size)} fan-out (wsload): ` +
              `${Math.round(r.perSecond).toLocaleString('en-US')}/s; CPU server ${Math.round(r.serverCpu)}%, ` +
              `client ${Math.round(r.clientCpu)}%${r.errors > 0 ? `; ${r.errors} errors` : ''}`)
          }
          mine.wsload.push(wsload)
        }
      }
    }
  } finally {
    await Promise.all(running.map((server) => server.stop()))
  }
  results.fanoutRounds = fanoutRounds
  for (const [name, mine] of Object.entries(fanoutRounds)) {
    results.fanout[name] = fanoutPhases.map((_, i) => best(mine.phases.map((round) => round[i])))
    if (mine.wsload.length > 0) results.wsloadFanout[name] = fanoutPhases.map((_, i) => best(mine.wsload.map((round) => round[i])))
  }
}

/** Every round's results through Redis: the loaded run, then the one with a single publish in flight. */
const redisRounds: PhaseResult[][] = []
if (cases.includes('redis')) {
  const missing = redisMissing()
  if (missing !== null) {
    log(`fan-out through Redis: skipped: ${missing}`)
    results.redis = missing
  } else {
    const loaded = fanoutPhase(...REDIS_CASE)
    for (let round = 1; round <= ROUNDS; round++) {
      const runs = await runRedisFanout([loaded, { ...loaded, window: 1 }])
      runs.forEach((r, i) => progress(`fastify-rfc6455 through Redis, ${i === 0 ? FANOUT_WINDOW : 1} in flight`)(r))
      redisRounds.push(runs)
    }
    results.redis = redisRounds.reduce((a, b) => b[0].perSecond > a[0].perSecond ? b : a)
  }
}

if (cases.includes('h2')) results.h2 = await runH2(ROUNDS, H2_SIZES.map(echoPhase), handshakePhase, progress)

if (cases.includes('overhead')) results.overhead = await runOverhead(options.baseline, ROUNDS, OVERHEAD_SIZES.map(echoPhase), progress, log)

process.stdout.write('\n' + render(results) + '\n')
if (cases.includes('recovery')) {
  const missing = redisMissing()
  process.stdout.write('\n' + (missing === null ? renderRecovery(await runRecovery(quick ? 2 : 4, quick ? 10 : 30, log)) : `Topics with history: skipped: ${missing}`) + '\n')
}
if (cases.includes('presence')) {
  const missing = redisMissing()
  process.stdout.write('\n' + (missing === null ? renderPresence(await runPresence(log)) : `Presence: skipped: ${missing}`) + '\n')
}

const svg = chart(results, new Date(began))
if (svg !== null) {
  writeFileSync(options.svg, svg)
  process.stdout.write(`\nchart: ${options.svg}\n`)
} else if (servers.length > 0) {
  log('no chart: it needs ws\'s echo or handshake figures (--servers with ws)')
}

if (options.json !== undefined) {
  writeFileSync(options.json, JSON.stringify({ ...results, targets: targets(results), rounds, redisRounds }, null, 2) + '\n')
  log(`figures written to ${options.json}`)
}
