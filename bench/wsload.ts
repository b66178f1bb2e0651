/**
 * Optional cross-check (--wsload PATH): the same echo and fan-out runs driven
 * by an external wsload binary, a C epoll load generator, on the client core. The
 * bench never needs it; it only shows whether the Node client's figures, and
 * above all their ratios, hold with a client that costs far less CPU.
 */
import { spawn } from 'node:child_process'
import { PINNING } from './launch.js'
import type { Server } from './servers.js'
import type { EchoPhase, FanoutPhase } from './types.js'

export interface WsloadResult {
  size: number
  /** Fan-out: subscriber connections open. */
  subscribers?: number
  /** Echoed messages, or fan-out deliveries, per second. */
  perSecond: number
  p50us: number
  p99us: number
  clientCpu: number
  serverCpu: number
  /** Microseconds of server CPU per echoed message or fan-out delivery. */
  serverCpuPerMessageUs: number
  errors: number
}

/** Runs `wsload -m echo` for `phase` against `server` and parses its JSON line. */
export async function runWsload (binary: string, server: Server, phase: EchoPhase): Promise<WsloadResult> {
  const out = await wsload(binary, server, [
    '-m', 'echo', '-c', String(phase.conns), '-s', String(phase.size), '-w', String(phase.window),
    '-d', String(phase.duration), '-W', String(phase.warmup),
    ...(server.spec.raw ? ['--raw', '--no-verify'] : [])
  ])
  return result(phase.size, out)
}

/**
 * Runs `wsload -m fanout` for `phase` (its subscribers, then a publisher
 * keeping `window` messages in flight, acknowledged by its own copy) and
 * parses its JSON line; deliveries to the publisher are not counted.
 */
export async function runWsloadFanout (binary: string, server: Server, phase: FanoutPhase): Promise<WsloadResult> {
  const out = await wsload(binary, server, [
    '-m', 'fanout', '-c', String(phase.subscribers), '-s', String(phase.size), '-w', String(phase.window),
    '-d', String(phase.duration), '-W', String(phase.warmup)
  ])
  return { ...result(phase.size, out), subscribers: out.open }
}

function result (size: number, out: Record<string, number>): WsloadResult {
  return {
    size,
    perSecond: out.msgs_per_s,
    p50us: out.p50_us,
    p99us: out.p99_us,
    clientCpu: out.client_cpu_pct,
    serverCpu: out.server_cpu_pct,
    serverCpuPerMessageUs: out.server_cpu_pct / 100 * out.seconds / out.msgs * 1e6,
    errors: out.errors
  }
}

async function wsload (binary: string, server: Server, modeArgs: string[]): Promise<Record<string, number>> {
  const args = [...modeArgs, '--pid', String(server.pid), `ws://127.0.0.1:${server.port}/`]
  const command = PINNING === null ? [binary, ...args] : ['taskset', '-c', String(PINNING.client), binary, ...args]
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-2000) })
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  const line = stdout.trim().split('\n').pop() ?? ''
  if (code !== 0 || !line.startsWith('{')) throw new Error(`wsload exited with ${code}: ${stderr.trim()}`)
  return JSON.parse(line) as Record<string, number>
}
