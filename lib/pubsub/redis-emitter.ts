/**
 * RedisEmitter: publishes to an app's topics and sends its cluster requests
 * from a process that is not a Fastify app (a worker, a cron job), through
 * the Redis the app's RedisBrokers use. It loads node-redis, not Fastify.
 */
import { Buffer } from 'node:buffer'
import type { FastifyBaseLogger } from 'fastify'
import { FastifyWebSocketError, topicError } from '../errors.js'
import { toPayload, type SendOptions, type WebSocketData } from '../socket/payload.js'
import type { Position } from '../socket/position.js'
import type { BrokerMessage, HistorySettings } from './broker.js'
import { ClusterRequests } from './cluster.js'
import { type PresenceOptions, presenceSettings } from './presence.js'
import { RedisBroker, type RedisBrokerOptions } from './redis-broker.js'
import { MAX_TOPIC_BYTES } from './topics.js'

/** Options of `new RedisEmitter(options)`: the app's RedisBroker options (the same `prefix` and `sharded`), and a logger. */
export interface RedisEmitterOptions extends RedisBrokerOptions {
  /** Where Redis outages are logged (pino's or Fastify's logger fit). Default: errors to `console.error`, nothing else. */
  log?: Pick<FastifyBaseLogger, 'error' | 'warn' | 'info'>
  /** The app's `presence` option's `ttl` and `maxMembers`, for `presence()` (see PresenceOptions). Default: their defaults. */
  presence?: Pick<PresenceOptions, 'ttl' | 'maxMembers'>
}

/**
 * Publishes and sends cluster requests to the instances of an app whose
 * broker is a RedisBroker on the same Redis, with the same `prefix` and
 * `sharded` (docs/presence-and-control.md):
 *
 * ```ts
 * import { RedisEmitter } from 'fastify-rfc6455/redis'
 * const emitter = new RedisEmitter({ url: 'redis://127.0.0.1:6379' })
 * await emitter.connect()
 * await emitter.publish('room:1', JSON.stringify({ text: 'maintenance at 18:00' }))
 * await emitter.disconnect({ member: 'user-42' }, 4001, 'logged out')
 * await emitter.close()
 * ```
 *
 * It is not an instance: it holds no socket and answers no request. Every
 * method rejects (FST_WS_CLUSTER_UNAVAILABLE, or the history and presence
 * errors) when Redis cannot be reached: nothing is queued.
 */
export class RedisEmitter extends ClusterRequests {
  private readonly broker: RedisBroker
  private readonly log: Pick<FastifyBaseLogger, 'error' | 'warn' | 'info'>
  private started = false

  /** Throws as `new RedisBroker(options)` does. */
  constructor (options: RedisEmitterOptions) {
    const { log, presence, ...rest } = options ?? {}
    const broker = new RedisBroker(rest)
    const settings = presenceSettings(presence ?? {})
    super(broker.cluster, async (topic) => (await broker.presence.members(topic, settings)).members)
    this.broker = broker
    this.log = log ?? { error: (obj: unknown, msg?: string) => { console.error(msg ?? obj, msg === undefined ? '' : obj) }, warn () {}, info () {} } as never
  }

  /** Connects; rejects with FST_WS_REDIS_CONNECT as RedisBroker.start() does. Call it once. */
  async connect (): Promise<void> {
    if (this.started) throw new FastifyWebSocketError('FST_WS_BROKER_STARTED', 'this RedisEmitter is already connected (or closed)')
    this.started = true
    await this.broker.startEmitter(this.log as FastifyBaseLogger)
  }

  /**
   * Publishes to `topic` on every instance (a topic without history): a
   * string as text, bytes as binary; `options.compress` as in `send()`.
   * Resolves once Redis took it. Throws FST_WS_INVALID_TOPIC for a topic
   * over 1024 bytes.
   */
  async publish (topic: string, data: WebSocketData, options?: SendOptions): Promise<void> {
    await this.broker.publishNow(message(topic, data, options))
  }

  /**
   * Publishes to a topic with history (`settings`: the app's `history`
   * answer for it, its `size` and `ttl`): resolves with the message's
   * position. Rejects with FST_WS_HISTORY_UNAVAILABLE as `app.websocket.publishStored()` does.
   */
  async publishStored (topic: string, data: WebSocketData, settings: HistorySettings, options?: SendOptions): Promise<Position> {
    return await this.broker.history.publish(message(topic, data, options), settings)
  }

  /** Closes the connections it created (yours stay open). */
  async close (): Promise<void> {
    this.started = true
    await this.broker.close()
  }
}

/** A publish as the broker carries it; throws FST_WS_INVALID_TOPIC, or FST_WS_INVALID_SEND_DATA for data that is not a string or bytes. */
function message (topic: string, data: WebSocketData, options: SendOptions | undefined): BrokerMessage {
  if (typeof topic !== 'string' || Buffer.byteLength(topic) > MAX_TOPIC_BYTES) throw topicError(topic, MAX_TOPIC_BYTES)
  return { topic, payload: toPayload(data), isBinary: typeof data !== 'string', compress: options?.compress }
}
