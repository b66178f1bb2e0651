/**
 * Real Redis servers for the broker tests: Debian's redis-server on free
 * ports of 127.0.0.1, without persistence, stopped at teardown (and when the
 * test process exits). Tests that need it are skipped, not failed, where
 * /usr/bin/redis-server is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'undici'
import { delay, withTimeout, type Teardown } from './app.js'

export const REDIS_SERVER = '/usr/bin/redis-server'
export const REDIS_CLI = '/usr/bin/redis-cli'

/** tap's `skip` option for a test that needs Redis: false where it is installed, else the reason. */
export const skipWithoutRedis: false | string =
  existsSync(REDIS_SERVER) && existsSync(REDIS_CLI)
    ? false
    : `Redis not installed (${REDIS_SERVER}, ${REDIS_CLI}): apt-get install redis-server`

/** Every server process started by this test process, killed on exit if a teardown did not run. */
const running = new Set<ChildProcess>()
process.on('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** A port of 127.0.0.1 free now, below 55536 so that a cluster's bus port (port + 10000) exists too. */
export async function freePort (): Promise<number> {
  for (;;) {
    const port = await listenAndClose(0)
    if (port < 55536 && await listenAndClose(port + 10000).then(() => true, () => false)) return port
  }
}

function listenAndClose (port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as { port: number }
      server.close(() => resolve(bound))
    })
  })
}

/**
 * Sends one command in RESP (inline form) to 127.0.0.1:`port` and resolves
 * with the raw reply; rejects when the connection fails. For readiness checks
 * and PUBSUB/CLUSTER queries, with no client library.
 */
export function rawCommand (port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' })
    let reply = ''
    const wire = `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`
    socket.once('connect', () => socket.write(wire))
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1')
      if (complete(reply)) {
        socket.destroy()
        resolve(reply)
      }
    })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error(`connection to ${port} closed before a reply`)))
  })
}

/** Whether `reply` holds one whole RESP2 value (simple types, bulk strings, flat or nested arrays). */
function complete (reply: string): boolean {
  let at = 0
  function value (): boolean {
    const end = reply.indexOf('\r\n', at)
    if (end < 0) return false
    const type = reply[at]
    const head = reply.slice(at + 1, end)
    at = end + 2
    if (type === '$') {
      const length = Number(head)
      if (length < 0) return true
      if (reply.length < at + length + 2) return false
      at += length + 2
      return true
    }
    if (type === '*') {
      for (let i = 0; i < Number(head); i++) if (!value()) return false
    }
    return true
  }
  return value()
}

/** The integers of a PUBSUB NUMSUB/SHARDNUMSUB reply, by channel. */
export async function subscriberCounts (port: number, sharded: boolean, channels: string[]): Promise<Map<string, number>> {
  const reply = await rawCommand(port, 'PUBSUB', sharded ? 'SHARDNUMSUB' : 'NUMSUB', ...channels)
  const counts = new Map<string, number>()
  const numbers = [...reply.matchAll(/^:(\d+)\r$/gm)].map((match) => Number(match[1]))
  channels.forEach((channel, i) => counts.set(channel, numbers[i]))
  return counts
}

/** Polls `check` every 20 ms until it resolves true; fails with `label` after `ms`. */
export async function waitFor (check: () => Promise<boolean> | boolean, label: string, ms = 5000): Promise<void> {
  await withTimeout((async () => {
    for (;;) {
      if (await Promise.resolve().then(check).catch(() => false)) return
      await delay(20)
    }
  })(), label, ms)
}

/** One redis-server process. */
export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:port` */
  readonly url: string
  /** Kills the process with SIGKILL (no shutdown, connections reset) and waits for it to exit. */
  kill (): Promise<void>
  /** Starts the server again on the same port (after `kill()`), and waits until it answers PING. */
  restart (): Promise<void>
  /** Stops the process (SIGKILL) if it runs; the teardown does it too. */
  stop (): Promise<void>
}

/**
 * Starts redis-server on a free port of 127.0.0.1 with no persistence
 * (`--save '' --appendonly no`) and waits until it answers PING. `extra`
 * arguments are added (cluster mode). Stopped at `t`'s teardown.
 */
export async function startRedis (t: Teardown, extra: (dir: string) => string[] = () => []): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'fastify-rfc6455-redis-'))
  let child: ChildProcess | undefined
  const launch = async (): Promise<void> => {
    const proc = spawn(REDIS_SERVER, [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra(dir)
    ], { stdio: 'ignore' })
    child = proc
    running.add(proc)
    proc.once('exit', () => running.delete(proc))
    await waitFor(() => rawCommand(port, 'PING').then((reply) => reply.startsWith('+PONG')), `redis-server on port ${port} to answer PING`)
  }
  const kill = async (): Promise<void> => {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGKILL')
    await exited
  }
  await launch()
  t.teardown(async () => {
    await kill()
    rmSync(dir, { recursive: true, force: true })
  })
  return { port, url: `redis://127.0.0.1:${port}`, kill, restart: launch, stop: kill }
}

/** A Redis Cluster of masters only, on 127.0.0.1. */
export interface RedisCluster {
  readonly nodes: RedisServer[]
  /** `[{ url }]` of every node, for node-redis's `rootNodes`. */
  readonly rootNodes: Array<{ url: string }>
  /** The port of the master serving `key`'s hash slot (CLUSTER KEYSLOT, then CLUSTER SHARDS). */
  portOf (key: string): Promise<number>
}

/**
 * Starts `count` redis-servers in cluster mode and joins them as masters with
 * `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`; resolves
 * when every node reports `cluster_state:ok`.
 */
export async function startCluster (t: Teardown, count = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = []
  for (let i = 0; i < count; i++) {
    nodes.push(await startRedis(t, (dir) => [
      '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '5000'
    ]))
  }
  const create = spawnSync(REDIS_CLI, [
    '--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes'
  ], { encoding: 'utf8', timeout: 30_000 })
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`)
  await waitFor(async () => {
    const states = await Promise.all(nodes.map((node) => rawCommand(node.port, 'CLUSTER', 'INFO')))
    return states.every((info) => info.includes('cluster_state:ok'))
  }, 'the cluster to be ok', 15_000)
  const slots = await slotOwners(nodes[0].port)
  return {
    nodes,
    rootNodes: nodes.map((node) => ({ url: node.url })),
    async portOf (key) {
      const slot = Number(/^:(\d+)/.exec(await rawCommand(nodes[0].port, 'CLUSTER', 'KEYSLOT', key))![1])
      const owner = slots.find((range) => slot >= range.from && slot <= range.to)
      if (owner === undefined) throw new Error(`no master for slot ${slot}`)
      return owner.port
    }
  }
}

/** The slot ranges of each master, from CLUSTER NODES ("id ip:port@bus flags master ... from-to from-to"). */
async function slotOwners (port: number): Promise<Array<{ from: number, to: number, port: number }>> {
  const owners: Array<{ from: number, to: number, port: number }> = []
  for (const line of (await rawCommand(port, 'CLUSTER', 'NODES')).split('\n')) {
    const fields = line.trim().split(' ')
    if (fields.length < 9 || !fields[2].includes('master')) continue
    const nodePort = Number(/:(\d+)@/.exec(fields[1])![1])
    for (const range of fields.slice(8)) {
      const [from, to = from] = range.split('-').map(Number)
      owners.push({ from, to, port: nodePort })
    }
  }
  return owners
}

/** A line of an instance's log (Fastify's logger, JSON). */
export interface LogLine { level: number, msg: string }

/** An app instance of test/pubsub/fixtures/instance.ts in its own process. */
export interface Instance {
  readonly port: number
  /** Every log line so far. */
  readonly logs: LogLine[]
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>
  /** POST /publish: `app.websocket.publish(topic, message)` for each message in turn; resolves with the local deliveries. */
  publish (topic: string, messages: string[]): Promise<number>
  /** Sends SIGTERM (the fixture closes the app and exits) and waits for the exit code. */
  stop (): Promise<number | null>
  /** Sends SIGKILL (the process dies at once, closing nothing) and waits for its exit. */
  kill (): Promise<number | null>
}

const INSTANCE = fileURLToPath(new URL('../pubsub/fixtures/instance.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Starts an instance (`node --import tsx test/pubsub/fixtures/instance.ts`)
 * with `env` (REDIS_URL or REDIS_ROOT_NODES, SHARDED) and waits until it
 * listens; killed at `t`'s teardown if it still runs.
 */
export async function startInstance (t: Teardown, env: Record<string, string>): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', INSTANCE], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit']
  })
  running.add(child)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    running.delete(child)
    resolve(code)
  }))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  const logs: LogLine[] = []
  let port = 0
  const listening = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const parsed = JSON.parse(line) as LogLine & { listening?: number }
      if (parsed.listening === undefined) {
        logs.push(parsed)
        return
      }
      port = parsed.listening
      resolve()
    })
    exited.then((code) => reject(new Error(`instance exited (${code}) before listening`)), reject)
  })
  await withTimeout(listening, 'the instance to listen', 60_000)
  return {
    port,
    logs,
    exited,
    async publish (topic, messages) {
      const response = await fetch(`http://127.0.0.1:${port}/publish`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic, messages })
      })
      return ((await response.json()) as { sent: number }).sent
    },
    stop () {
      child.kill('SIGTERM')
      return exited
    },
    kill () {
      child.kill('SIGKILL')
      return exited
    }
  }
}

/** An undici WebSocket on an instance's `/ws` route that records every text message it receives. */
export interface Subscriber {
  readonly received: string[]
  send (text: string): void
  close (): Promise<void>
}

/** Opens a WebSocket to the instance on `port`, subscribed to `topics`; closed at teardown. */
export async function connectSubscriber (t: Teardown, port: number, topics: string[]): Promise<Subscriber> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?topics=${topics.join(',')}`)
  const received: string[] = []
  ws.addEventListener('message', (event) => { received.push(String(event.data)) })
  const closed = new Promise<void>((resolve) => ws.addEventListener('close', () => resolve()))
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve())
    ws.addEventListener('error', () => reject(new Error('the WebSocket failed to open')))
  }), 'the WebSocket to open')
  const close = () => {
    ws.close()
    return withTimeout(closed, 'the WebSocket to close')
  }
  t.teardown(close)
  return { received, send: (text) => ws.send(text), close }
}
