/**
 * The four echo servers, the three fan-out servers (four with Bun's), and their processes.
 * Our echo runs as users would run it, through examples/echo.ts (which
 * imports the built package, dist/); the other echoes through
 * bench/echo-server.ts, the fan-outs through bench/fanout-server.ts (ours
 * with the built package too), and Bun's through bench/fanout-bun.ts. Every
 * server gets the same core and a maxPayload of 16 MiB; every Node server
 * the same Node, the same tsx loader and the hooks of bench/server-hooks.ts.
 */
import type { ChildProcess } from 'node:child_process'
import { pathToFileURL } from 'node:url'
import {
  BENCH, PINNING, ROOT, exited, freePort, launch, launchNode, onLines, pin, stderrTail, waitForPort
} from './launch.js'
import { MEMORY_MARKER } from './types.js'

export interface ServerSpec {
  /** Short name for --servers. */
  name: string
  /** Column heading. */
  label: string
  script: string
  args: string[]
  /** A plain TCP echo: no handshake, the client's frames come back as sent. */
  raw: boolean
  /** More environment for the process. */
  env?: Record<string, string>
  /** The load client script, when not bench/client.ts (HTTP/1.1 over TCP): bench/h2client.ts for HTTP/2. */
  client?: string
  /**
   * The program that runs `script`, for a server that is not Node's: it
   * gets the same core, environment and fd limit, but not the bench's hooks,
   * so its idle memory is not measured (fan-out only).
   */
  runtime?: string
}

export const SERVERS: ServerSpec[] = [
  { name: 'rfc6455', label: 'fastify-rfc6455', script: `${ROOT}examples/echo.ts`, args: [], raw: false },
  { name: 'ws', label: 'ws', script: `${BENCH}echo-server.ts`, args: ['ws'], raw: false },
  { name: 'fastify-websocket', label: '@fastify/websocket', script: `${BENCH}echo-server.ts`, args: ['fastify-websocket'], raw: false },
  { name: 'net', label: 'node:net (raw)', script: `${BENCH}echo-server.ts`, args: ['net'], raw: true }
]

/** Ours on cleartext HTTP/2 (h2c, prior knowledge): WebSockets over HTTP/2 streams (RFC 8441), for `--cases h2`. */
export const H2C_SERVER: ServerSpec = {
  name: 'rfc6455-h2c',
  label: 'fastify-rfc6455 (h2c)',
  script: `${ROOT}examples/echo.ts`,
  args: [],
  raw: false,
  env: { H2C: '1' },
  client: `${BENCH}h2client.ts`
}

/** Fan-out: every connection on one topic, every message any of them sends to all (see bench/fanout-server.ts). */
export const FANOUT_SERVERS: ServerSpec[] = [
  { name: 'rfc6455', label: 'fastify-rfc6455', script: `${BENCH}fanout-server.ts`, args: ['rfc6455'], raw: false },
  { name: 'ws', label: 'ws', script: `${BENCH}fanout-server.ts`, args: ['ws'], raw: false },
  { name: 'fastify-websocket', label: '@fastify/websocket', script: `${BENCH}fanout-server.ts`, args: ['fastify-websocket'], raw: false }
]

/**
 * The fan-out server on Bun (bench/fanout-bun.ts), run by the `bun` program
 * at `bun`: uWebSockets' topics, for the fan-out targets set against
 * uWebSockets (the bench's `--bun PATH`).
 */
export function bunFanoutServer (bun: string): ServerSpec {
  return { name: 'bun', label: 'Bun (uWebSockets)', script: `${BENCH}fanout-bun.ts`, args: [], raw: false, runtime: bun }
}

/** The server every ratio is taken against. */
export const BASELINE = 'ws'

const MAX_PAYLOAD = String(16 * 1024 * 1024)

/** One running server process. */
export class Server {
  readonly spec: ServerSpec
  readonly port: number
  private readonly child: ChildProcess
  private readonly stderr: () => string
  private readonly memoryWaiters: Array<(usage: NodeJS.MemoryUsage) => void> = []

  private constructor (spec: ServerSpec, port: number, child: ChildProcess) {
    this.spec = spec
    this.port = port
    this.child = child
    this.stderr = stderrTail(child)
    onLines(child, (line) => {
      if (line.startsWith(MEMORY_MARKER)) this.memoryWaiters.shift()?.(JSON.parse(line.slice(MEMORY_MARKER.length)))
    })
  }

  /**
   * Starts `spec` on the server core and resolves once it accepts
   * connections. `nodeFlags` go to node (e.g. --cpu-prof).
   */
  static async start (spec: ServerSpec, nodeFlags: string[] = []): Promise<Server> {
    return await Server.launch(spec, nodeFlags, PINNING?.server ?? 0)
  }

  /**
   * Starts every server at once, on any core so that they start sooner,
   * then pins each to the server core before anything is measured.
   */
  static async startAll (specs: ServerSpec[]): Promise<Server[]> {
    const started = await Promise.allSettled(specs.map((spec) => Server.launch(spec, [], null)))
    const servers = started.flatMap((s) => s.status === 'fulfilled' ? [s.value] : [])
    const failed = started.find((s) => s.status === 'rejected')
    if (failed !== undefined) {
      await Promise.all(servers.map((server) => server.stop()))
      throw failed.reason
    }
    for (const server of servers) pin(server.pid, PINNING?.server ?? 0)
    return servers
  }

  private static async launch (spec: ServerSpec, nodeFlags: string[], core: number | null): Promise<Server> {
    const port = await freePort()
    const env = { ...spec.env, PORT: String(port), MAX_PAYLOAD }
    const child = spec.runtime !== undefined
      ? launch([spec.runtime, spec.script, ...spec.args], { core, env })
      : launchNode(spec.script, spec.args, {
        core,
        env,
        nodeFlags: [...nodeFlags, '--expose-gc', '--import', pathToFileURL(`${BENCH}server-hooks.ts`).href]
      })
    const server = new Server(spec, port, child)
    const failed = exited(child).then((code) => {
      throw new Error(`${spec.label} exited (code ${code}) before listening:\n${server.stderr()}`)
    })
    failed.catch(() => {})
    await Promise.race([waitForPort(port, 20000), failed])
    return server
  }

  get pid (): number {
    return this.child.pid!
  }

  /** Runs a full garbage collection in the server, then resolves with its process.memoryUsage() (bench/server-hooks.ts). */
  memoryUsage (): Promise<NodeJS.MemoryUsage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.spec.label} did not report its memory`)), 10000)
      this.memoryWaiters.push((usage) => {
        clearTimeout(timer)
        resolve(usage)
      })
      this.child.kill('SIGUSR2')
    })
  }

  /** Ends the process with SIGTERM (SIGKILL 5 s later) and waits for it. */
  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await exited(this.child)
    clearTimeout(timer)
  }

  /** Throws with the server's stderr if it died. */
  checkAlive (): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      throw new Error(`${this.spec.label} died (${this.child.exitCode ?? this.child.signalCode}):\n${this.stderr()}`)
    }
  }
}
