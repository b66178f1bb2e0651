/**
 * The fan-out across instances (`--cases redis`): a redis-server of its own
 * on a free loopback port (no persistence), two instances of our fan-out
 * server with the Redis broker (`fastify-rfc6455/redis`), all three pinned
 * to the server core; the load client's publisher connects to one instance,
 * its subscribers to the other, so every delivery has crossed Redis.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { BENCH, PINNING, ROOT, freePort, pin, stderrTail, waitForPort } from './launch.js'
import { LoadClient } from './load.js'
import { Server, type ServerSpec } from './servers.js'
import type { FanoutPhase, PhaseResult } from './types.js'

/** Why the case cannot run here (no redis-server, broker not built), or null. */
export function redisMissing (): string | null {
  if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not on the PATH'
  if (!existsSync(`${ROOT}dist/lib/pubsub/redis.js`)) return 'the Redis broker (dist/lib/pubsub/redis.js) is not built'
  return null
}

/** Starts redis-server on `port`, pinned to the server core, and resolves once it accepts connections. */
async function startRedis (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--logfile', ''
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  const stderr = stderrTail(child)
  const exited = new Promise<never>((_resolve, reject) => child.once('exit', (code) => {
    reject(new Error(`redis-server exited (${code}) before listening: ${stderr()}`))
  }))
  exited.catch(() => {})
  await Promise.race([waitForPort(port, 10000), exited])
  pin(child.pid!, PINNING?.server ?? 0)
  return child
}

/**
 * Runs `phases` (their `publishPort` is filled in here) through two
 * instances and a redis-server started for them, and stops them all. In
 * each result serverCpu is the subscribers' instance's; peerCpu holds the
 * publishing instance's and redis-server's.
 */
export async function runRedisFanout (phases: FanoutPhase[]): Promise<PhaseResult[]> {
  const redisPort = await freePort()
  const redis = await startRedis(redisPort)
  const spec: ServerSpec = {
    name: 'rfc6455-redis',
    label: 'fastify-rfc6455 + RedisBroker',
    script: `${BENCH}fanout-server.ts`,
    args: ['rfc6455'],
    raw: false,
    env: { REDIS_URL: `redis://127.0.0.1:${redisPort}` }
  }
  const started: Server[] = []
  try {
    const subscribing = await Server.start(spec)
    started.push(subscribing)
    const publishing = await Server.start(spec)
    started.push(publishing)
    const client = new LoadClient(subscribing, phases.map((phase) => ({ ...phase, publishPort: publishing.port })), {
      peerPids: [publishing.pid, redis.pid!]
    })
    return await client.phases(phases.length, () => {})
  } finally {
    await Promise.all(started.map((server) => server.stop()))
    redis.kill('SIGTERM')
    await new Promise((resolve) => redis.exitCode === null ? redis.once('exit', resolve) : resolve(null))
  }
}
