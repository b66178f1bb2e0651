/**
 * npm run bench [-- options]: fastify-rfc6455 against ws, @fastify/websocket
 * and a raw node:net echo, each server in its own process on core 0, the
 * load client (bench/client.ts) in its own on core 1.
 *
 *   --quick              one round of short runs, 2k idle connections: under a minute
 *   --servers a,b        only these (rfc6455, ws, fastify-websocket, net)
 *   --wsload PATH        also drive 16 B and 1 KiB echo with this wsload binary (C), to cross-check
 *   --profile            instead of the table: profile fastify-rfc6455 (node --cpu-prof)
 *                        through one 16 B echo run and summarize where its time goes
 *   --profile-server N   profile server N instead (implies --profile)
 *   --profile-run R      profile R: a message size in bytes, or `handshake` (implies --profile)
 *   --json PATH          also write every figure as JSON, every round's too
 *
 * Progress goes to stderr, the report to stdout. Build first (npm run bench does):
 * ours runs through examples/echo.ts, which imports the built package.
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { FD_LIMIT, PINNING } from './launch.js'
import { LoadClient } from './load.js'
import { measureIdleMemory } from './memory.js'
import { describeMachine } from './proc.js'
import { profileServer } from './profile.js'
import { render, sizeLabel, type Results } from './report.js'
import { BASELINE, SERVERS, Server } from './servers.js'
import type { EchoPhase, HandshakePhase, PhaseResult } from './types.js'
import { runWsload, type WsloadResult } from './wsload.js'

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    servers: { type: 'string' },
    wsload: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'profile-server': { type: 'string' },
    'profile-run': { type: 'string' },
    json: { type: 'string' }
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
  ? { echo: [0.25, 0.5], large: [0.75, 0.75], handshake: [0.25, 0.5], settleMs: 1000 }
  : { echo: [0.5, 2], large: [3, 2], handshake: [0.5, 2], settleMs: 4000 }
/**
 * Rounds of every run against every server in turn; each figure is from the
 * round with the highest rate, so that a burst of load from other processes
 * on the machine costs a round, not the figure.
 */
const ROUNDS = quick ? 1 : 3
const WSLOAD_SIZES = [16, 1024]
const HANDSHAKE_PARALLEL = 16
const IDLE_CONNS = Math.min(quick ? 2000 : 10000, FD_LIMIT - 200)

const echoPhase = (size: number): EchoPhase => {
  const [warmup, duration] = size >= 1024 * 1024 ? TIMES.large : TIMES.echo
  return { kind: 'echo', size, conns: CONNS, window: WINDOW, warmup, duration }
}
const handshakePhase: HandshakePhase = {
  kind: 'handshake', parallel: HANDSHAKE_PARALLEL, warmup: TIMES.handshake[0], duration: TIMES.handshake[1]
}

const wanted = options.servers?.split(',').map((name) => name.trim())
const servers = SERVERS.filter((spec) => wanted === undefined || wanted.includes(spec.name))
if (servers.length === 0) throw new Error(`--servers: none of ${SERVERS.map((s) => s.name).join(', ')}`)

const began = Date.now()
const log = (line: string): void => {
  process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(1).padStart(5)} s] ${line}\n`)
}

const results: Results = {
  machine: describeMachine(),
  setup: [
    PINNING === null
      ? 'processes: one per server, one for the load client; NOT pinned (taskset missing or one core)'
      : `processes: each server alone on core ${PINNING.server}, the load client (Node) on core ${PINNING.client} (taskset)`,
    `echo: binary, ${CONNS} connections × ${WINDOW} messages in flight each; ` +
      `${TIMES.echo[1]} s measured after ${TIMES.echo[0]} s warm-up (1 MiB: ${TIMES.large[1]} s after ${TIMES.large[0]} s)` +
      (ROUNDS > 1 ? `; ${ROUNDS} rounds over all servers in turn, each figure from the round with the highest rate` : ''),
    `handshakes: ${HANDSHAKE_PARALLEL} parallel loops of connect, upgrade, close handshake, TCP close; ` +
      `${TIMES.handshake[1]} s measured (node:net: connect, request echoed, close)`,
    `idle memory: server VmRSS (after a forced full GC) before and after ${IDLE_CONNS} idle connections, per connection; ` +
      'measured first, on the fresh process, with the same load client process'
  ],
  servers,
  baseline: BASELINE,
  echo: {},
  handshake: {},
  memory: {},
  wsload: {}
}

const progress = (label: string) => (r: PhaseResult): void => {
  const what = r.kind === 'echo' ? `${sizeLabel(r.size)} echo` : 'handshakes'
  log(`${label}, ${what}: ${Math.round(r.perSecond).toLocaleString('en-US')}/s` +
    `${r.kind === 'echo' ? `, ${r.mbPerSecond.toFixed(1)} MB/s` : ''}; ` +
    `CPU server ${Math.round(r.serverCpu)}%, client ${Math.round(r.clientCpu)}%, others ${Math.round(r.otherCpu)}%${r.errors > 0 ? `; ${r.errors} errors` : ''}`)
}

if (options.profile || options['profile-server'] !== undefined || options['profile-run'] !== undefined) {
  const name = options['profile-server'] ?? 'rfc6455'
  const spec = SERVERS.find((s) => s.name === name)
  if (spec === undefined) throw new Error(`--profile-server: no server ${name}`)
  const run = options['profile-run'] ?? '16'
  const phase = run === 'handshake' ? handshakePhase : echoPhase(Number(run))
  log(`profiling ${spec.label}, ${run === 'handshake' ? 'handshakes' : `${sizeLabel(Number(run))} echo`}`)
  process.stdout.write(`machine: ${describeMachine()}\n\n${await profileServer(spec, phase)}\n`)
  process.exit(0)
}

log(`machine: ${results.machine}`)
const phases = [...SIZES.map(echoPhase), handshakePhase]
/** Every round's results, per server name: phase results in phase order, wsload results in WSLOAD_SIZES order. */
const rounds: Record<string, { phases: PhaseResult[][], wsload: WsloadResult[][] }> = {}

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
      const client = new LoadClient(server, phases, round === 1 ? IDLE_CONNS : undefined)
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

/** The result of the round with the highest rate. */
function best<T extends { perSecond: number }> (perRound: T[]): T {
  return perRound.reduce((a, b) => b.perSecond > a.perSecond ? b : a)
}
for (const [name, mine] of Object.entries(rounds)) {
  const chosen = phases.map((_, i) => best(mine.phases.map((round) => round[i])))
  results.echo[name] = chosen.filter((r) => r.kind === 'echo')
  results.handshake[name] = chosen.find((r) => r.kind === 'handshake')!
  if (mine.wsload.length > 0) results.wsload[name] = WSLOAD_SIZES.map((_, i) => best(mine.wsload.map((round) => round[i])))
}

process.stdout.write('\n' + render(results) + '\n')

if (options.json !== undefined) {
  writeFileSync(options.json, JSON.stringify({ ...results, rounds }, null, 2) + '\n')
  log(`figures written to ${options.json}`)
}
