/**
 * Topics with history (`--cases recovery`, docs/recovery.md), in this
 * process against a redis-server of its own (no persistence), with the
 * built package:
 * - deliveries per second and publish-to-delivery latency through Redis, two
 *   instances (apps with their RedisBroker), SUBSCRIBERS `ws` clients on one,
 *   publishes from the other with WINDOW in flight: a topic with history
 *   (`publishStored`) against the same topic without (`publish`);
 * - the time a client takes to resume 1,000 missed messages through Redis:
 *   from the WebSocket's creation to its 1,000th replayed message, p50 and p95;
 * - the memory (JS heap and Buffers) a history topic holding 1,000 messages
 *   of 128 bytes costs in the LocalBroker.
 * Server and clients share this process: the figures compare the two kinds
 * of topic with each other, not with the other cases' separate processes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455, { formatPosition, LocalBroker } from 'fastify-rfc6455'
import { RedisBroker } from 'fastify-rfc6455/redis'
import WebSocket from 'ws'
import { freePort, waitForPort } from './launch.js'

const SUBSCRIBERS = 100
const WINDOW = 16
const SIZE = 128
const MISSED = 1000
const TOPICS_FOR_MEMORY = 100

/** The figures of the case. */
export interface RecoveryResults {
  plain: Throughput
  history: Throughput
  /** Milliseconds to resume 1,000 missed messages. */
  recovery: { p50: number, p95: number, runs: number }
  /** Bytes (JS heap and Buffers) per history topic of 1,000 messages of 128 bytes in the LocalBroker. */
  bytesPerTopic: number
}

interface Throughput {
  deliveriesPerSecond: number
  /** Publish-to-delivery latency, ms. */
  p50: number
  p99: number
}

/** Runs the case: `seconds` of load per kind of topic, `runs` resumes. */
export async function runRecovery (seconds: number, runs: number, log: (line: string) => void): Promise<RecoveryResults> {
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--logfile', ''], { stdio: 'ignore' })
  try {
    await waitForPort(port, 10_000)
    const url = `redis://127.0.0.1:${port}`
    const publishing = await instance(url)
    const subscribing = await instance(url)
    try {
      const plain = await throughput(publishing, subscribing, 'plain', seconds)
      log(`recovery: plain topic through Redis: ${Math.round(plain.deliveriesPerSecond)} deliveries/s, p50 ${plain.p50.toFixed(2)} ms`)
      const history = await throughput(publishing, subscribing, 'h:bench', seconds)
      log(`recovery: history topic through Redis: ${Math.round(history.deliveriesPerSecond)} deliveries/s, p50 ${history.p50.toFixed(2)} ms`)
      const recovery = await resumeTimes(publishing, subscribing, runs)
      log(`recovery: ${MISSED} missed messages resumed in ${recovery.p50.toFixed(1)} ms (p50)`)
      return { plain, history, recovery, bytesPerTopic: await localMemory() }
    } finally {
      await Promise.all([publishing.app.close(), subscribing.app.close()])
    }
  } finally {
    await stop(redis)
  }
}

/** The case's lines of the report. */
export function renderRecovery (r: RecoveryResults): string {
  const ratio = r.history.deliveriesPerSecond / r.plain.deliveriesPerSecond
  return [
    `Topics with history (${SUBSCRIBERS} subscribers on one instance, publishes of ${SIZE} B from another, ${WINDOW} in flight, through Redis):`,
    `  plain topic     ${Math.round(r.plain.deliveriesPerSecond).toLocaleString('en')} deliveries/s, latency p50 ${r.plain.p50.toFixed(2)} ms, p99 ${r.plain.p99.toFixed(2)} ms`,
    `  history topic   ${Math.round(r.history.deliveriesPerSecond).toLocaleString('en')} deliveries/s, latency p50 ${r.history.p50.toFixed(2)} ms, p99 ${r.history.p99.toFixed(2)} ms` +
      ` (${ratio.toFixed(2)}x plain; target >= 0.5: ${ratio >= 0.5 ? 'met' : 'not met'})`,
    `  resume of ${MISSED} missed messages: p50 ${r.recovery.p50.toFixed(1)} ms, p95 ${r.recovery.p95.toFixed(1)} ms over ${r.recovery.runs} runs (target p50 < 50 ms: ${r.recovery.p50 < 50 ? 'met' : 'not met'})`,
    `  LocalBroker: a history topic of ${MISSED} messages of ${SIZE} B costs ${(r.bytesPerTopic / 1024).toFixed(0)} KiB (JS heap and Buffers)`
  ].join('\n')
}

interface Instance {
  app: FastifyInstance
  port: number
}

/** An app with the Redis broker whose `/s?topic=&since=` sockets subscribe (and resume); `h:` topics keep 2,000 messages. */
async function instance (url: string): Promise<Instance> {
  const app = Fastify({ logger: false })
  await app.register(fastifyRfc6455, {
    broker: new RedisBroker({ url }),
    history: (topic) => topic.startsWith('h:') ? { size: 2000, ttl: 600_000 } : null
  })
  app.get<{ Querystring: { topic: string, since?: string } }>('/s', { ws: true }, async (socket, request) => {
    const { topic, since } = request.query
    if (since === undefined && !topic.startsWith('h:')) {
      socket.subscribe(topic)
      socket.send('ready')
      return
    }
    await socket.subscribe(topic, { since })
    socket.send('ready')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

/** Opens a `ws` client to `/s` and resolves once the server said `ready`. */
function connect (port: number, topic: string, onMessage: (data: Buffer) => void, since?: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/s?topic=${topic}${since === undefined ? '' : `&since=${since}`}`)
  return new Promise((resolve, reject) => {
    ws.once('error', reject)
    ws.once('message', () => {
      ws.on('message', (data: Buffer) => onMessage(data))
      resolve(ws)
    })
  })
}

async function throughput (from: Instance, to: Instance, topic: string, seconds: number): Promise<Throughput> {
  const history = topic.startsWith('h:')
  const latencies: number[] = []
  let deliveries = 0
  let measuring = false
  let publish = (): void => {}
  const clients: WebSocket[] = []
  for (let i = 0; i < SUBSCRIBERS; i++) {
    // The first client paces the publisher: each message it gets lets one more go.
    clients.push(await connect(to.port, topic, (data) => {
      if (!measuring) return
      deliveries++
      if (i === 0) {
        latencies.push(Number(process.hrtime.bigint() - data.readBigUInt64BE(0)) / 1e6)
        publish()
      }
    }))
  }
  // Until the subscribing instance's subscription is in effect on Redis.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const payload = (): Buffer => {
    const buffer = Buffer.alloc(SIZE)
    buffer.writeBigUInt64BE(process.hrtime.bigint(), 0)
    return buffer
  }
  let running = true
  publish = () => {
    if (!running) return
    if (history) from.app.websocket.publishStored(topic, payload()).catch(() => {})
    else from.app.websocket.publish(topic, payload())
  }
  measuring = true
  const began = process.hrtime.bigint()
  for (let i = 0; i < WINDOW; i++) publish()
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  running = false
  const elapsed = Number(process.hrtime.bigint() - began) / 1e9
  const counted = deliveries
  measuring = false
  for (const client of clients) client.terminate()
  latencies.sort((a, b) => a - b)
  return { deliveriesPerSecond: counted / elapsed, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) }
}

/** Resumes of MISSED messages on the subscribing instance, published from the other one. */
async function resumeTimes (from: Instance, to: Instance, runs: number): Promise<RecoveryResults['recovery']> {
  const times: number[] = []
  const text = 'x'.repeat(SIZE)
  for (let run = 0; run < runs; run++) {
    const topic = `h:resume${run}`
    const since = formatPosition(await from.app.websocket.publishStored(topic, text))
    for (let i = 0; i < MISSED; i += 100) {
      await Promise.all(Array.from({ length: 100 }, () => from.app.websocket.publishStored(topic, text)))
    }
    const began = process.hrtime.bigint()
    await new Promise<void>((resolve, reject) => {
      let got = 0
      connect(to.port, topic, () => {
        if (++got === MISSED) {
          times.push(Number(process.hrtime.bigint() - began) / 1e6)
          resolve()
        }
      }, since).then((ws) => setTimeout(() => ws.terminate(), 50), reject)
    })
  }
  times.sort((a, b) => a - b)
  return { p50: quantile(times, 0.5), p95: quantile(times, 0.95), runs }
}

/** Bytes of JS heap and Buffers per history topic holding MISSED messages of SIZE bytes in a LocalBroker. */
async function localMemory (): Promise<number> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const app = Fastify({ logger: false })
  await app.register(fastifyRfc6455, { broker: new LocalBroker(), history: () => ({ size: MISSED, ttl: 600_000 }) })
  await app.ready()
  const text = 'x'.repeat(SIZE)
  const used = (): number => {
    const { heapUsed, arrayBuffers } = process.memoryUsage()
    return heapUsed + arrayBuffers
  }
  gc()
  const before = used()
  for (let topic = 0; topic < TOPICS_FOR_MEMORY; topic++) {
    for (let i = 0; i < MISSED; i++) app.websocket.publish(`t${topic}`, text)
  }
  gc()
  const after = used()
  await app.close()
  return (after - before) / TOPICS_FOR_MEMORY
}

function quantile (sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}
