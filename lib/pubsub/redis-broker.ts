/**
 * The Redis broker (RedisBroker): carries topic publishes, topic histories,
 * presence and cluster-wide requests between the instances of an app through
 * Redis, with node-redis (the `redis` package, an optional peer dependency).
 * Exported by the `fastify-rfc6455/redis` entry (redis.ts).
 */
import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { inspect } from '../builtins.js'
import {
  createClient, createCluster, RESP_TYPES,
  type RedisClientOptions, type RedisClusterOptions
} from 'redis'
import {
  clusterUnavailableError, FastifyWebSocketError, historyUnavailableError, invalidOptionError, presenceFullError, presenceUnavailableError, unknownOptionError
} from '../errors.js'
import { parsePosition, type Position } from '../socket/position.js'
import { presenceTopic } from '../socket/presence.js'
import {
  newEpoch, type Broker, type BrokerCluster, type BrokerContext, type BrokerHistory, type BrokerMessage, type BrokerPresence,
  type ClusterReply, type ClusterRequest, type HistoryRead, type HistorySettings, type PresenceSettings
} from './broker.js'
import { checkMatch, disconnectRequest } from './cluster.js'
import { FLAG_HISTORY, historyKeys, PUBLISH_SCRIPT, publishedPosition, READ_SCRIPT, readAnswer, type Script } from './redis-history.js'
import { JOIN_SCRIPT, LEAVE_SCRIPT, MEMBERS_SCRIPT, membersAnswer, presenceKeys, REFRESH_SCRIPT } from './redis-presence.js'

/** node-redis's per-command options the broker gives: replies of bulk strings as Buffers (history reads). */
export interface CommandOptions {
  /** node-redis's RESP type mapping: `{ [RESP_TYPES.BLOB_STRING]: Buffer }` makes bulk strings Buffers. */
  typeMapping?: Record<number, unknown>
}
import { type BrokerDropStats, EnvelopeChecks } from './envelope-checks.js'

/** Listener of channel messages in node-redis's buffer mode: the message and its channel, as bytes. */
type MessageListener = (message: Buffer, channel: Buffer) => void

/** The commands and events of a node-redis client or cluster client the broker uses. */
interface RedisConnection {
  /** The socket to Redis is open (connected, or reconnecting after a drop). */
  readonly isOpen: boolean
  /** Connected and ready for commands; a cluster client has it from node-redis 6 (before, `isOpen` stands for it). */
  readonly isReady?: boolean
  /** Subscribes to a sharded channel (Redis 7 `SSUBSCRIBE`), the listener getting messages as bytes. */
  SSUBSCRIBE (channels: string, listener: MessageListener, bufferMode: true): Promise<void>
  /** Leaves a sharded channel (`SUNSUBSCRIBE`). */
  SUNSUBSCRIBE (channels: string): Promise<void>
  /** Subscribes to a classic channel (`SUBSCRIBE`), the listener getting messages as bytes. */
  SUBSCRIBE (channels: string, listener: MessageListener, bufferMode: true): Promise<void>
  /** Leaves a classic channel (`UNSUBSCRIBE`). */
  UNSUBSCRIBE (channels: string): Promise<void>
  /** Opens the connection; node-redis rejects when Redis cannot be reached or refuses it. */
  connect (): Promise<unknown>
  /** Closes the connection once the commands sent are answered (`quit()` before node-redis 5). */
  close (): Promise<void>
  /** Closes the connection at once, failing the commands not yet answered. */
  destroy (): void
  /** Listens to a connection event: `error`, `ready`, `end`... */
  on (event: string, listener: (value: unknown) => void): unknown
  /** Removes a listener added with `on`. */
  off (event: string, listener: (value: unknown) => void): unknown
}

/**
 * The part of a node-redis client (`createClient()` of the `redis` package,
 * 5 or 6, with or without modules) the broker uses.
 */
export interface RedisBrokerClient extends RedisConnection {
  /** Connected and ready for commands. */
  readonly isReady: boolean
  /** Sends a raw command (`['SPUBLISH', channel, payload]`), answered with Redis's reply. */
  sendCommand (args: Array<string | Buffer>, options?: CommandOptions): Promise<unknown>
  /** A new client with the same options, not yet connected: the broker's subscriber connection. */
  duplicate (): RedisBrokerClient
}

/** The part of a node-redis cluster client (`createCluster()`) the broker uses. */
export interface RedisBrokerCluster extends RedisConnection {
  /** Sends a raw command to the node that owns `firstKey`'s hash slot (`isReadonly`: a replica may answer). */
  sendCommand (firstKey: string, isReadonly: boolean, args: Array<string | Buffer>, options?: CommandOptions): Promise<unknown>
  /** node-redis 6.1 and later; before 6.2, `sendCommand` routes every command by its first key. */
  getNodeClientForKey? (key: string, isReadonly: boolean): Promise<Pick<RedisBrokerClient, 'sendCommand'>>
}

/**
 * Options of `new RedisBroker(options)`. Give exactly one of `url`,
 * `clientOptions`, `cluster`, `client` and `clusterClient`: with the first
 * three the broker creates its connections and closes them when the app
 * closes; with the last two the connections are yours (connected before the
 * app starts, closed by you after `app.close()`).
 */
export interface RedisBrokerOptions {
  /** `redis[s]://[[user][:password]@]host[:port][/db]` of one Redis server. */
  url?: string
  /** node-redis `createClient()` options (`url`, `socket`, `password`, `RESP`...) of one Redis server. */
  clientOptions?: RedisClientOptions
  /** node-redis `createCluster()` options of a Redis Cluster: `rootNodes` (and `defaults` for every node). */
  cluster?: RedisClusterOptions
  /**
   * Your connected node-redis client (`createClient()` of the `redis` package, not ioredis).
   * Publishes go through it; subscriptions through `subscriber`.
   */
  client?: RedisBrokerClient
  /**
   * With `client`: your connected client for subscriptions, which it then
   * holds in subscriber mode. Default: `client.duplicate()`, which the broker
   * connects and closes itself.
   */
  subscriber?: RedisBrokerClient
  /** Your connected node-redis cluster client (`createCluster()`). */
  clusterClient?: RedisBrokerCluster
  /**
   * true (default): sharded pub/sub of Redis 7 (`SPUBLISH`/`SSUBSCRIBE`), where a
   * topic's messages stay on the shard that owns its channel's hash slot.
   * false: classic `PUBLISH`/`SUBSCRIBE`, which a cluster copies to every node
   * (and which Redis before 7 has).
   */
  sharded?: boolean
  /** Prepended to a topic to make its channel: topic `room:1` is channel `ws:room:1`. Default `'ws:'`. */
  prefix?: string
  /**
   * Milliseconds `start()` waits for the broker's connections to be ready
   * before failing the plugin's registration (FST_WS_REDIS_CONNECT), well
   * inside Fastify's `pluginTimeout` (10 s by default). A connection refused
   * or failed (an unknown host, a wrong password, a database index out of
   * range) fails it at once, with the Redis client's error as `cause`. Default 5000.
   */
  connectTimeout?: number
  /**
   * Milliseconds `close()` waits for the broker's own connections to finish
   * their pending commands (`QUIT`-like close) before destroying them. Default 2000.
   */
  closeTimeout?: number
  /**
   * Bytes of a message's payload that the broker takes from its channels,
   * at most: a bigger one is dropped and counted (`dropped.oversized`), never
   * sent to a socket. Keep it at least the plugin's `maxPublishPayload`, and
   * both under Redis's `client-output-buffer-limit pubsub` hard limit (32 MB
   * by default), past which Redis closes the subscriber's connection.
   * Default 16 MiB.
   */
  maxPayload?: number
  /**
   * Publishes sent to Redis and not yet answered, at most. Past it (Redis
   * stalled or far slower than the app), further publishes are not sent to
   * the other instances, like during an outage. Default 10000.
   */
  maxPendingPublishes?: number
  /**
   * Milliseconds a history topic's meta (its epoch and last offset, key
   * `<tag>:m`) lives after its last publish, at least its history's `ttl`:
   * while it lives, the topic's offsets go on even when its messages have
   * expired; once it is gone, the next publish starts a new epoch. Default
   * 30 days.
   */
  historyMetaTtl?: number
  /**
   * Milliseconds a cluster request (`app.websocket.cluster`: counts,
   * disconnect, unsubscribe) waits for the instances' answers: it resolves
   * when every instance that received it answered, or after this long with
   * those that did (`instances` says how many). Default 5000.
   */
  requestTimeout?: number
}

/** Envelope format version: the first byte of every channel message. */
const VERSION = 1
/** Flags byte: a binary message (else text). */
const FLAG_BINARY = 0b001
/** Flags byte: the publisher gave `compress`... */
const FLAG_COMPRESS_SET = 0b010
/** ...and it was true. */
const FLAG_COMPRESS = 0b100
/** Bytes of the random id of an instance (its broker). */
const ID_BYTES = 16
/** Flags byte: a cluster request or its answer (control and reply channels), JSON. */
const FLAG_CONTROL = 0b10000
/** version (1) + flags (1) + origin id (16): the payload follows. */
const HEADER_BYTES = 2 + ID_BYTES

const DEFAULTS = {
  sharded: true,
  prefix: 'ws:',
  connectTimeout: 5000,
  closeTimeout: 2000,
  maxPendingPublishes: 10_000,
  historyMetaTtl: 30 * 24 * 3600 * 1000,
  requestTimeout: 5000,
  maxPayload: 16 * 1024 * 1024
}

const CONNECTIONS = ['url', 'clientOptions', 'cluster', 'client', 'clusterClient'] as const
const KNOWN = [...CONNECTIONS, 'subscriber', 'sharded', 'prefix', 'connectTimeout', 'closeTimeout', 'maxPendingPublishes', 'historyMetaTtl', 'requestTimeout', 'maxPayload']

/** Replies of history commands: bulk strings as Buffers (payloads are bytes). */
const BUFFERS: CommandOptions = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }

/**
 * The connections of one broker: one Redis server (a publishing client and a
 * subscribing one) or one Redis Cluster (node-redis keeps, per master, a
 * connection for commands and one for sharded subscriptions).
 */
interface Link {
  /** Whether a publish can be sent now. */
  publishReady (): boolean
  /** Whether a subscribe or unsubscribe can be sent now. */
  subscribeReady (): boolean
  /** `SPUBLISH`/`PUBLISH channel frame` on the one connection that carries this channel's publishes. */
  publish (channel: string, frame: Buffer): Promise<unknown>
  /** A command of a topic's history, sent with the publishes (on the connection of `key`'s slot), its bulk strings as Buffers. */
  command (key: string, args: Array<string | Buffer>): Promise<unknown>
  /** `SSUBSCRIBE`/`SUBSCRIBE channel`, messages to `listener`. */
  subscribe (channel: string, listener: MessageListener): Promise<void>
  /** `SUNSUBSCRIBE`/`UNSUBSCRIBE channel`. */
  unsubscribe (channel: string): Promise<void>
  /** Every emitter whose `error`, `ready` and `node-ready` events the broker follows. */
  emitters: RedisConnection[]
  /** The connections the broker created, which it connects and closes; yours are not in it. */
  owned: RedisConnection[]
}

/**
 * A Broker (lib/pubsub/broker.ts) over Redis pub/sub.
 *
 * Each topic with a local subscriber is one channel, `prefix + topic`,
 * subscribed with `SSUBSCRIBE` (sharded, default) or `SUBSCRIBE` while the
 * topic has a subscriber on this instance and unsubscribed
 * (`SUNSUBSCRIBE`/`UNSUBSCRIBE`) when its last one leaves; a topic that gains
 * a subscriber again subscribes once Redis answered that. A publish is one
 * `SPUBLISH`/`PUBLISH channel envelope` on one connection (per cluster
 * shard), pipelined, so one instance's messages to one topic arrive
 * everywhere in the order it published them.
 *
 * The envelope, in bytes: the version (1), flags (bit 0: binary, else text;
 * bit 1: `compress` given; bit 2: its value), the 16-byte random id of the
 * publishing broker, then the message's payload as is. A broker drops the
 * messages whose id is its own (Redis sends a publisher's messages back to it
 * when it subscribes to the same channel); and, counted in `dropped`,
 * published on the `fastify-rfc6455:broker:dropped` diagnostics channel and
 * logged at most once per 10 s, an envelope of another version, a payload
 * over `maxPayload`, and text that is not UTF-8 (RFC 6455 §8.1).
 *
 * Outages: publishes are never queued while Redis is unreachable, nor beyond
 * `maxPendingPublishes` unanswered ones; they reach this instance's
 * subscribers only (at most once delivery across instances). The outage is
 * logged once through the app's logger (error level), its end once (info).
 * node-redis reconnects with backoff (its `reconnectStrategy`: by default 50 ms
 * doubling to 2 s, with jitter) and subscribes again to its channels; the
 * broker then brings the subscriptions in line with the topics that gained or
 * lost their last subscriber meanwhile.
 *
 * Topics with history (`history`, docs/recovery.md) are kept in Redis
 * Streams (see lib/pubsub/redis-history.ts): a publish to one is a Lua
 * script that stores it, gives it its offset and publishes it, so that every
 * instance, this one included, delivers it from the channel with its
 * position. While Redis is unreachable such a publish rejects with
 * FST_WS_HISTORY_UNAVAILABLE instead of reaching this instance only.
 */
export class RedisBroker implements Broker {
  private readonly options: RedisBrokerOptions
  private readonly sharded: boolean
  private readonly prefix: string
  private readonly prefixBytes: number
  private readonly connectTimeout: number
  private readonly closeTimeout: number
  private readonly maxPendingPublishes: number
  private readonly historyMetaTtl: number
  private readonly requestTimeout: number
  /** The channel of cluster requests, which every instance subscribes to. */
  private readonly controlChannel: string
  /** This broker's channel for the answers to its cluster requests. */
  private readonly replyChannel: string
  /** Cluster requests waiting for answers, by number. */
  private readonly requests = new Map<number, PendingRequest>()
  private lastRequest = 0
  /** The epoch a history script gives a topic that has none; replaced once a script has used it. */
  private epoch = newEpoch()
  /** This broker's origin id, in every envelope it publishes. */
  private readonly id = randomBytes(ID_BYTES)
  /** The topics with a local subscriber: what Redis should have us subscribed to. */
  private readonly topics = new Set<string>()
  /** Topics whose subscription state on Redis may differ from `topics`: sent again when the connection is ready. */
  private readonly unsynced = new Set<string>()
  /** Per topic, its unsubscribe that Redis has not answered yet; settled either way. */
  private readonly leaving = new Map<string, Promise<void>>()
  private link: Link | undefined
  /** What arrives from the channels is checked before any socket sees it. */
  private readonly checks: EnvelopeChecks
  private context: BrokerContext | undefined
  private pending = 0
  private down = false
  private closed = false
  private retryTimer: NodeJS.Timeout | undefined

  /**
   * Topic histories on Redis (BrokerHistory): per topic a stream of its
   * last messages and a hash of its epoch and last offset, written by one
   * Lua script that also publishes, so that every instance sees each message
   * once with the same position; read back with XRANGE.
   */
  readonly history: BrokerHistory = {
    publish: (message, settings) => this.publishHistory(message, settings),
    read: (topic, since, limit) => this.readHistory(topic, since, limit)
  }

  /**
   * Cluster requests (BrokerCluster) through Redis pub/sub: a request is
   * published on the channel `prefix + '\0control'`, which every instance
   * subscribes to; each runs it and publishes its answer on the requester's
   * own channel. SPUBLISH (or PUBLISH on one server) answers how many
   * instances received it: the request resolves once they all answered, or
   * after `requestTimeout`.
   */
  readonly cluster: BrokerCluster = {
    request: (request) => this.request(request)
  }

  /**
   * Presence on Redis (BrokerPresence; lib/pubsub/redis-presence.ts): per
   * topic a sorted set of (instance, member) entries that expire unless
   * refreshed, a count of instances and the info per member, changed by Lua
   * scripts that append each join and leave to the topic's events topic.
   */
  readonly presence: BrokerPresence = {
    join: async (topic, id, info, settings) => Number(await this.presenceScript(topic, JOIN_SCRIPT, settings, [id, info, String(settings.maxMembers)])) === 1,
    leave: async (topic, id, settings) => Number(await this.presenceScript(topic, LEAVE_SCRIPT, settings, [id])) === 1,
    members: async (topic, settings) => membersAnswer(await this.presenceScript(topic, MEMBERS_SCRIPT, settings, [])),
    refresh: async (topic, members, settings) => {
      await this.presenceScript(topic, REFRESH_SCRIPT, settings, members.flatMap(({ id, info }) => [id, info]))
    }
  }

  /** Throws FST_WS_INVALID_OPTION or FST_WS_UNKNOWN_OPTION for bad options (see RedisBrokerOptions). */
  constructor (options: RedisBrokerOptions) {
    if (typeof options !== 'object' || options === null) {
      throw invalidOptionError('RedisBroker', inspect(options), `an object with one of ${CONNECTIONS.join(', ')}`, undefined)
    }
    for (const key of Object.keys(options)) {
      if (!KNOWN.includes(key)) throw unknownOptionError(`RedisBroker.${key}`, inspect((options as Record<string, unknown>)[key]), KNOWN.join(', '), undefined)
    }
    const given = CONNECTIONS.filter((key) => options[key] !== undefined)
    if (given.length !== 1) {
      throw invalidOptionError('RedisBroker', given.length === 0 ? 'without a connection' : `given ${given.join(' and ')}`, `given exactly one of ${CONNECTIONS.join(', ')}`, undefined)
    }
    check('url', options.url, typeof options.url === 'string' && /^rediss?:\/\//.test(options.url), 'a redis:// or rediss:// URL')
    check('clientOptions', options.clientOptions, isObject(options.clientOptions), 'an object of node-redis createClient() options')
    check('cluster', options.cluster, isObject(options.cluster) && Array.isArray(options.cluster.rootNodes) && options.cluster.rootNodes.length > 0,
      'an object of node-redis createCluster() options with a non-empty rootNodes')
    check('client', options.client, isClient(options.client), 'a node-redis client (createClient() of the redis package)')
    check('clusterClient', options.clusterClient, isClient(options.clusterClient), 'a node-redis cluster client (createCluster() of the redis package)')
    check('subscriber', options.subscriber, options.client !== undefined && isClient(options.subscriber), 'a node-redis client, given with client')
    check('sharded', options.sharded, typeof options.sharded === 'boolean', 'true or false')
    check('prefix', options.prefix, typeof options.prefix === 'string', 'a string')
    for (const key of ['connectTimeout', 'closeTimeout', 'maxPendingPublishes', 'requestTimeout', 'maxPayload'] as const) {
      const value = options[key]
      check(key, value, Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 2 ** 31 - 1, 'an integer from 1 to 2147483647')
    }
    check('historyMetaTtl', options.historyMetaTtl, Number.isSafeInteger(options.historyMetaTtl) && options.historyMetaTtl! >= 1,
      `an integer from 1 to ${Number.MAX_SAFE_INTEGER} (milliseconds)`)
    this.options = options
    this.sharded = options.sharded ?? DEFAULTS.sharded
    this.prefix = options.prefix ?? DEFAULTS.prefix
    this.prefixBytes = Buffer.byteLength(this.prefix)
    this.connectTimeout = options.connectTimeout ?? DEFAULTS.connectTimeout
    this.closeTimeout = options.closeTimeout ?? DEFAULTS.closeTimeout
    this.maxPendingPublishes = options.maxPendingPublishes ?? DEFAULTS.maxPendingPublishes
    this.historyMetaTtl = options.historyMetaTtl ?? DEFAULTS.historyMetaTtl
    this.requestTimeout = options.requestTimeout ?? DEFAULTS.requestTimeout
    this.controlChannel = `${this.prefix}\u0000control`
    this.replyChannel = `${this.prefix}\u0000reply\u0000${this.id.toString('hex')}`
    check('maxPayload', options.maxPayload, Number.isInteger(options.maxPayload) && (options.maxPayload as number) >= 0, 'an integer of at least 0 (bytes)')
    this.checks = new EnvelopeChecks(options.maxPayload ?? DEFAULTS.maxPayload)
  }

  /**
   * Creates and connects the broker's connections (or checks yours are
   * open). Rejects with FST_WS_REDIS_CONNECT at the first error of a
   * connection (its `cause`), when they are not ready within `connectTimeout`
   * ms, or when `client`/`clusterClient` is not connected.
   */
  async start (context: BrokerContext): Promise<void> {
    await this.open(context, true)
  }

  /**
   * @internal Connects as start() does, for a RedisEmitter: it answers no
   * cluster request (it is not an instance) and subscribes to no topic.
   */
  async startEmitter (log: BrokerContext['log']): Promise<void> {
    await this.open({ deliver: () => {}, resubscribed: () => {}, control: () => 0, log }, false)
  }

  /** Connects; `instance`: an app's broker, which runs the cluster requests it receives. */
  private async open (context: BrokerContext, instance: boolean): Promise<void> {
    const { client, subscriber, clusterClient } = this.options
    for (const [name, yours] of Object.entries({ client, subscriber, clusterClient })) {
      if (yours !== undefined && !yours.isOpen) {
        throw new FastifyWebSocketError('FST_WS_REDIS_CONNECT', `RedisBroker: the ${name} given is not connected: await its connect() before starting the app`)
      }
    }
    const link = this.createLink()
    this.link = link
    for (const emitter of link.emitters) {
      emitter.on('error', this.onError)
      emitter.on('ready', this.onReady)
      emitter.on('node-ready', this.onReady)
    }
    let timer: NodeJS.Timeout | undefined
    // node-redis retries a refused connection forever: its first error fails the start, with the error as cause.
    let failed: (err: unknown) => void = () => {}
    const failure = new Promise<never>((_resolve, reject) => {
      failed = (err) => reject(new FastifyWebSocketError('FST_WS_REDIS_CONNECT',
        `RedisBroker: cannot connect to Redis: ${err instanceof Error ? err.message : String(err)}`, { cause: err }))
      timer = setTimeout(() => reject(new FastifyWebSocketError('FST_WS_REDIS_CONNECT',
        `RedisBroker: Redis not reachable within ${this.connectTimeout} ms`)), this.connectTimeout)
    })
    for (const connection of link.owned) connection.on('error', failed)
    try {
      await Promise.race([Promise.all(link.owned.map((connection) => connection.connect().catch(failed))), failure])
      const channels = instance ? [this.controlChannel, this.replyChannel] : [this.replyChannel]
      await Promise.race([Promise.all(channels.map((channel) => link.subscribe(channel, this.onControl))), failure])
    } catch (err) {
      await this.close()
      throw err
    } finally {
      clearTimeout(timer)
      for (const connection of link.owned) connection.off('error', failed)
    }
    // From here on, errors are outages (logged once), not a failed start.
    this.context = context
  }

  /** Subscribes to `prefix + topic` (`SSUBSCRIBE` or `SUBSCRIBE`); never throws. */
  subscribe (topic: string): Promise<void> | undefined {
    this.topics.add(topic)
    return this.sync(topic)
  }

  /** Unsubscribes from `prefix + topic` (`SUNSUBSCRIBE` or `UNSUBSCRIBE`); never throws. */
  unsubscribe (topic: string): void {
    this.topics.delete(topic)
    this.sync(topic)
  }

  /**
   * Sends `message` to the other instances: `SPUBLISH` (or `PUBLISH`)
   * `prefix + topic` with the envelope. Never throws nor waits: while Redis is
   * unreachable, or with `maxPendingPublishes` publishes unanswered, the
   * message is dropped (the outage is logged once).
   */
  publish (message: BrokerMessage): void {
    const link = this.link
    if (link === undefined || this.closed) return
    if (!link.publishReady() || this.pending >= this.maxPendingPublishes) {
      this.outage(new Error(link.publishReady() ? `${this.pending} publishes unanswered` : 'not connected'))
      return
    }
    this.send(link, message).catch((err: unknown) => this.outage(err))
  }

  /** @internal A RedisEmitter's publish: resolves once Redis took it, rejects (FST_WS_CLUSTER_UNAVAILABLE) when it could not be sent. */
  async publishNow (message: BrokerMessage): Promise<void> {
    const link = this.link
    if (link === undefined || this.closed || !link.publishReady()) throw clusterUnavailableError(new Error(this.closed ? 'the emitter is closed' : 'not connected'))
    try {
      await this.send(link, message)
    } catch (err) {
      this.outage(err)
      throw clusterUnavailableError(err)
    }
  }

  /** `SPUBLISH`/`PUBLISH` of the envelope of `message`. */
  private async send (link: Link, message: BrokerMessage): Promise<void> {
    const header = this.header(messageFlags(message))
    this.pending++
    try {
      await link.publish(this.prefix + message.topic, Buffer.concat([header, message.payload], HEADER_BYTES + message.payload.length))
      if (this.down && this.healthy()) this.recovered()
    } finally {
      this.pending--
    }
  }

  /** An envelope header: the version, `flags`, this broker's id. */
  private header (flags: number): Buffer {
    const header = Buffer.allocUnsafe(HEADER_BYTES)
    header[0] = VERSION
    header[1] = flags
    this.id.copy(header, 2)
    return header
  }

  /**
   * Closes the connections the broker created: waits up to `closeTimeout` ms
   * for their pending commands, then destroys them; a dead Redis is not
   * waited for. Your own `client`/`subscriber`/`clusterClient` stay open
   * (the broker's listeners are removed from them).
   */
  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.retryTimer)
    for (const number of [...this.requests.keys()]) this.answered(number)
    const link = this.link
    if (link === undefined) return
    for (const emitter of link.emitters) {
      emitter.off('ready', this.onReady)
      emitter.off('node-ready', this.onReady)
      // A connection the broker destroys may still report its end: keep it from crashing the app.
      if (!link.owned.includes(emitter)) emitter.off('error', this.onError)
    }
    await Promise.all(link.owned.map((connection) => this.closeConnection(connection)))
  }

  private async closeConnection (connection: RedisConnection): Promise<void> {
    if (!connection.isOpen) return
    if (ready(connection)) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        connection.close().catch(() => {}),
        new Promise((resolve) => { timer = setTimeout(resolve, this.closeTimeout) })
      ])
      clearTimeout(timer)
    }
    if (connection.isOpen) connection.destroy()
  }

  private createLink (): Link {
    const { url, clientOptions, cluster, client, subscriber, clusterClient } = this.options
    if (cluster !== undefined || clusterClient !== undefined) {
      const own = clusterClient === undefined
      // A node that is down rejects publishes at once instead of queueing them until it is back.
      const connection = clusterClient ?? createCluster({ ...cluster, rootNodes: cluster!.rootNodes, defaults: { disableOfflineQueue: true, ...cluster!.defaults } })
      return this.clusterLink(connection, own)
    }
    if (client !== undefined) {
      const sub = subscriber ?? client.duplicate()
      return this.serverLink(client, sub, subscriber === undefined ? [sub] : [])
    }
    const publisher = createClient({ ...(url === undefined ? clientOptions : { url }), disableOfflineQueue: true })
    const sub = publisher.duplicate()
    return this.serverLink(publisher, sub, [publisher, sub])
  }

  private serverLink (publisher: RedisBrokerClient, subscriber: RedisBrokerClient, owned: RedisBrokerClient[]): Link {
    const command = this.sharded ? 'SPUBLISH' : 'PUBLISH'
    return {
      publishReady: () => publisher.isReady,
      subscribeReady: () => subscriber.isReady,
      publish: (channel, frame) => publisher.sendCommand([command, channel, frame]),
      command: (_key, args) => publisher.sendCommand(args, BUFFERS),
      subscribe: (channel, listener) => this.sharded ? subscriber.SSUBSCRIBE(channel, listener, true) : subscriber.SUBSCRIBE(channel, listener, true),
      unsubscribe: (channel) => this.sharded ? subscriber.SUNSUBSCRIBE(channel) : subscriber.UNSUBSCRIBE(channel),
      emitters: publisher === subscriber ? [publisher] : [publisher, subscriber],
      owned
    }
  }

  private clusterLink (cluster: RedisBrokerCluster, own: boolean): Link {
    const command = this.sharded ? 'SPUBLISH' : 'PUBLISH'
    return {
      publishReady: () => ready(cluster),
      subscribeReady: () => ready(cluster),
      // One connection per channel, so that publishes keep their order: SPUBLISH is routed by its
      // channel to the master of its slot. PUBLISH is sent to that master too: node-redis 6.2 and
      // later would send it to any node, whose copies then travel the cluster bus by different links.
      publish: (channel, frame) => this.sharded || cluster.getNodeClientForKey === undefined
        ? cluster.sendCommand(channel, false, [command, channel, frame])
        : cluster.getNodeClientForKey(channel, false).then((client) => client.sendCommand([command, channel, frame])),
      command: (key, args) => cluster.sendCommand(key, false, args, BUFFERS),
      subscribe: (channel, listener) => this.sharded ? cluster.SSUBSCRIBE(channel, listener, true) : cluster.SUBSCRIBE(channel, listener, true),
      unsubscribe: (channel) => this.sharded ? cluster.SUNSUBSCRIBE(channel) : cluster.UNSUBSCRIBE(channel),
      emitters: [cluster],
      owned: own ? [cluster] : []
    }
  }

  /** Sends the subscribe or unsubscribe that brings Redis in line with `topics` for `topic`, now or when the connection is ready. */
  private sync (topic: string, retry = false): Promise<void> | undefined {
    const link = this.link
    if (link === undefined || this.closed) return
    if (!link.subscribeReady()) {
      this.unsynced.add(topic)
      return
    }
    // A subscribe sent before the channel's unsubscribe is answered would be lost: node-redis takes it
    // as done (the channel still has its listener), then drops the listener with the answer.
    const leaving = this.leaving.get(topic)
    if (leaving !== undefined) return leaving.then(() => this.sync(topic, retry))
    const channel = this.prefix + topic
    const sent = this.topics.has(topic) ? link.subscribe(channel, this.onMessage) : this.leave(topic, link.unsubscribe(channel))
    return sent.then(() => {
      if (retry && this.topics.has(topic)) this.context?.resubscribed(topic)
    }, (err: unknown) => {
      this.outage(err)
      this.unsynced.add(topic)
      // Sent again on the next `ready`; or, if the connection stayed up (a cluster slot moved), after a second.
      this.retryTimer ??= setTimeout(this.resync, 1000)
    })
  }

  /** Keeps `unsubscribe` (of `topic`'s channel) in `leaving` until Redis answered it. */
  private leave (topic: string, unsubscribe: Promise<void>): Promise<void> {
    const answered = unsubscribe.then(() => {}, () => {}).then(() => {
      if (this.leaving.get(topic) === answered) this.leaving.delete(topic)
    })
    this.leaving.set(topic, answered)
    return unsubscribe
  }

  private readonly resync = (): void => {
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    const topics = [...this.unsynced]
    this.unsynced.clear()
    for (const topic of topics) this.sync(topic, true)
  }

  private readonly onReady = (): void => {
    if (this.closed) return
    this.resync()
    // node-redis subscribes again on its own when it reconnects: what was published meanwhile is missed.
    for (const topic of this.topics) this.context?.resubscribed(topic)
    if (this.down && this.healthy()) this.recovered()
  }

  private readonly onError = (err: unknown): void => {
    if (!this.closed) this.outage(err)
  }

  /** Whether both publishing and subscribing are possible. */
  private healthy (): boolean {
    return this.link !== undefined && this.link.publishReady() && this.link.subscribeReady()
  }

  private outage (err: unknown): void {
    if (this.down || this.closed) return
    this.down = true
    this.context?.log.error({ err }, 'RedisBroker: Redis unreachable; publishes reach this instance only until it is back')
  }

  private recovered (): void {
    this.down = false
    this.context?.log.info('RedisBroker: Redis reachable again; publishes reach every instance')
  }

  private readonly onMessage = (message: Buffer, channel: Buffer): void => {
    if (message.length < HEADER_BYTES || message[0] !== VERSION) {
      this.checks.malformed(channel, message.length, this.context?.log)
      return
    }
    if ((message[1] & FLAG_HISTORY) !== 0) return this.onHistoryMessage(message, channel)
    if (this.id.equals(message.subarray(2, HEADER_BYTES))) return
    this.deliverPayload(message, channel, HEADER_BYTES, undefined)
  }

  /**
   * A message of a history topic: after the header, the length of its
   * position's string form (1 byte) and that form, then the payload. This
   * instance's own are delivered too: every instance delivers a history
   * topic's messages in the order Redis gave their offsets.
   */
  private onHistoryMessage (message: Buffer, channel: Buffer): void {
    const end = HEADER_BYTES + 1 + (message[HEADER_BYTES] ?? 0)
    const position = parsePosition(message.toString('latin1', HEADER_BYTES + 1, end))
    if (position === null || end > message.length) {
      this.checks.malformed(channel, message.length, this.context?.log)
      return
    }
    this.deliverPayload(message, channel, end, position)
  }

  /**
   * Delivers the payload of the envelope `message` (from byte `start`) to
   * this instance's subscribers unless the checks drop it (EnvelopeChecks:
   * over `maxPayload`, or text that is not UTF-8); `position`: a history
   * topic's message's.
   */
  private deliverPayload (message: Buffer, channel: Buffer, start: number, position: Position | undefined): void {
    const flags = message[1]
    const payload = message.subarray(start)
    const isBinary = (flags & FLAG_BINARY) !== 0
    if (!this.checks.deliverable(payload, isBinary, channel, message.length, this.context?.log)) return
    const delivered: BrokerMessage = {
      topic: channel.toString('utf8', this.prefixBytes),
      payload,
      isBinary,
      compress: (flags & FLAG_COMPRESS_SET) === 0 ? undefined : (flags & FLAG_COMPRESS) !== 0
    }
    if (position !== undefined) delivered.position = position
    this.context?.deliver(delivered)
  }

  /**
   * PUBLISH_SCRIPT: stores the message in its topic's stream, gives it its
   * offset and publishes it, in one step on Redis. Rejects with
   * FST_WS_HISTORY_UNAVAILABLE while Redis is unreachable, past
   * `maxPendingPublishes`, or when the script fails: nothing was published.
   */
  private async publishHistory (message: BrokerMessage, settings: HistorySettings): Promise<Position> {
    const link = this.link
    if (link === undefined || this.closed || !link.publishReady() || this.pending >= this.maxPendingPublishes) {
      const err = new Error(this.closed || link === undefined ? 'the broker is closed' : link.publishReady() ? `${this.pending} publishes unanswered` : 'not connected')
      if (!this.closed) this.outage(err)
      throw historyUnavailableError(message.topic, err)
    }
    const header = this.header(FLAG_HISTORY | messageFlags(message))
    const channel = this.prefix + message.topic
    const { stream, meta } = historyKeys(channel)
    const epoch = this.epoch
    this.pending++
    try {
      const position = publishedPosition(await this.script(link, PUBLISH_SCRIPT, [stream, meta, channel], [
        header, message.payload, String(settings.size), String(settings.ttl),
        String(Math.max(this.historyMetaTtl, settings.ttl)), epoch, this.sharded ? 'SPUBLISH' : 'PUBLISH'
      ]))
      if (position.epoch === epoch) this.epoch = newEpoch()
      if (this.down && this.healthy()) this.recovered()
      return position
    } catch (err) {
      this.outage(err)
      throw historyUnavailableError(message.topic, err)
    } finally {
      this.pending--
    }
  }

  /** READ_SCRIPT: the topic's position and the messages after `since`, at most `limit`, all or none. */
  private async readHistory (topic: string, since: Position | undefined, limit: number): Promise<HistoryRead> {
    const link = this.link
    if (link === undefined || this.closed || !link.publishReady()) {
      throw historyUnavailableError(topic, new Error(this.closed || link === undefined ? 'the broker is closed' : 'not connected'))
    }
    const channel = this.prefix + topic
    const { stream, meta } = historyKeys(channel)
    const epoch = this.epoch
    let reply: unknown
    try {
      reply = await this.script(link, READ_SCRIPT, [stream, meta], [
        since === undefined ? '' : String(since.offset), String(limit), epoch, since?.epoch ?? '', String(this.historyMetaTtl)
      ])
    } catch (err) {
      throw historyUnavailableError(topic, err)
    }
    const { position, messages } = readAnswer(since, reply)
    if (position.epoch === epoch) this.epoch = newEpoch()
    return {
      position,
      messages: messages === null
        ? null
        : messages.map(({ flags, payload, position }) => ({
          topic,
          payload,
          isBinary: (flags & FLAG_BINARY) !== 0,
          compress: (flags & FLAG_COMPRESS_SET) === 0 ? undefined : (flags & FLAG_COMPRESS) !== 0,
          position
        }))
    }
  }

  /** Sends a cluster request (see `cluster`). */
  private async request (request: ClusterRequest): Promise<ClusterReply> {
    const link = this.link
    if (link === undefined || this.closed || !link.publishReady()) {
      throw clusterUnavailableError(new Error(this.closed || link === undefined ? 'the broker is closed' : 'not connected'))
    }
    const number = ++this.lastRequest
    const payload = Buffer.from(JSON.stringify({ ...request, r: number, to: this.replyChannel }))
    return await new Promise<ClusterReply>((resolve, reject) => {
      const pending: PendingRequest = { expected: Infinity, reply: { instances: 0, sockets: 0 }, resolve, timer: setTimeout(() => this.answered(number), this.requestTimeout) }
      this.requests.set(number, pending)
      link.publish(this.controlChannel, Buffer.concat([this.header(FLAG_CONTROL), payload])).then((receivers) => {
        // PUBLISH on a cluster counts the subscribers of one node only: the timeout ends that wait.
        if (this.sharded || this.options.cluster === undefined && this.options.clusterClient === undefined) pending.expected = Number(receivers)
        if (pending.reply.instances >= pending.expected) this.answered(number)
      }, (err: unknown) => {
        clearTimeout(pending.timer)
        this.requests.delete(number)
        this.outage(err)
        reject(clusterUnavailableError(err))
      })
    })
  }

  /** Resolves cluster request `number` with the answers it has. */
  private answered (number: number): void {
    const pending = this.requests.get(number)
    if (pending === undefined) return
    this.requests.delete(number)
    clearTimeout(pending.timer)
    pending.resolve(pending.reply)
  }

  /** A message on the control channel (a request: run it, answer) or on this broker's reply channel (an answer). */
  private readonly onControl = (message: Buffer, channel: Buffer): void => {
    let value: unknown
    if (message.length > HEADER_BYTES && message[0] === VERSION && message[1] === FLAG_CONTROL) {
      try {
        value = JSON.parse(message.toString('utf8', HEADER_BYTES))
      } catch {}
    }
    if (typeof value !== 'object' || value === null) {
      this.checks.malformed(channel, message.length, this.context?.log)
      return
    }
    const { r, to, n } = value as Record<string, unknown>
    if (channel.toString() === this.replyChannel) {
      const pending = typeof r === 'number' ? this.requests.get(r) : undefined
      if (pending === undefined || !Number.isSafeInteger(n) || (n as number) < 0) return
      pending.reply.instances++
      pending.reply.sockets += n as number
      if (pending.reply.instances >= pending.expected) this.answered(r as number)
      return
    }
    const request = clusterRequest(value)
    const link = this.link
    if (request === null || typeof to !== 'string' || !to.startsWith(`${this.prefix}\u0000reply\u0000`) || link === undefined || this.context === undefined) {
      this.checks.malformed(channel, message.length, this.context?.log)
      return
    }
    const answer = JSON.stringify({ r, n: this.context.control(request) })
    link.publish(to, Buffer.concat([this.header(FLAG_CONTROL), Buffer.from(answer)])).catch((err: unknown) => this.outage(err))
  }

  /** Runs a presence script on `topic`'s keys; rejects with FST_WS_PRESENCE_FULL or FST_WS_PRESENCE_UNAVAILABLE. */
  private async presenceScript (topic: string, script: Script, settings: PresenceSettings, args: string[]): Promise<unknown> {
    const link = this.link
    if (link === undefined || this.closed || !link.publishReady()) {
      throw presenceUnavailableError(topic, new Error(this.closed || link === undefined ? 'the broker is closed' : 'not connected'))
    }
    const keys = presenceKeys(this.prefix + presenceTopic(topic))
    const { events } = settings
    const epoch = this.epoch
    // A new epoch each time: one the script may have given the events topic is never given again.
    this.epoch = newEpoch()
    try {
      return await this.script(link, script, keys, [
        this.header(FLAG_HISTORY), String(events.size), String(events.ttl), String(Math.max(this.historyMetaTtl, events.ttl)), epoch,
        this.sharded ? 'SPUBLISH' : 'PUBLISH', this.id.toString('hex'), String(settings.ttl), ...args
      ])
    } catch (err) {
      if (err instanceof Error && err.message.includes('PRESENCE_FULL')) throw presenceFullError(topic, settings.maxMembers)
      throw presenceUnavailableError(topic, err)
    }
  }

  /** EVALSHA of `script`, routed by its first key; EVAL when the server does not have the script yet. */
  private async script (link: Link, script: Script, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args]
    try {
      return await link.command(keys[0], ['EVALSHA', script.sha, ...tail])
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await link.command(keys[0], ['EVAL', script.source, ...tail])
    }
  }

  /**
   * Messages dropped on arrival since the broker was created: not a version
   * 1 envelope (`malformed`), a payload over `maxPayload` (`oversized`), text
   * that is not UTF-8 (`invalidUtf8`). Each is also published on the
   * `fastify-rfc6455:broker:dropped` diagnostics channel.
   */
  get dropped (): BrokerDropStats {
    return { ...this.checks.stats }
  }
}

/** A cluster request waiting for the instances' answers. */
interface PendingRequest {
  /** How many instances received it; Infinity until Redis said. */
  expected: number
  readonly reply: ClusterReply
  readonly resolve: (reply: ClusterReply) => void
  readonly timer: NodeJS.Timeout
}

/** The envelope flags of a message's type and `compress`. */
function messageFlags (message: BrokerMessage): number {
  return (message.isBinary ? FLAG_BINARY : 0) | (message.compress === undefined ? 0 : FLAG_COMPRESS_SET | (message.compress ? FLAG_COMPRESS : 0))
}

/** The cluster request a control message carries, checked as the app's own are; null for anything else. */
function clusterRequest (value: object): ClusterRequest | null {
  const { action, topic, match, code, reason } = value as Record<string, unknown>
  try {
    if (action === 'count' && typeof topic === 'string') return { action, topic }
    if (action === 'unsubscribe' && typeof topic === 'string') return { action, match: checkMatch(match), topic }
    if (action === 'disconnect') return disconnectRequest(checkMatch(match), code as number, reason as string)
  } catch {}
  return null
}

function check (name: string, value: unknown, valid: boolean, allowed: string): void {
  if (value !== undefined && !valid) throw invalidOptionError(`RedisBroker.${name}`, inspect(value, { depth: 0 }), allowed, undefined)
}

function ready (connection: RedisConnection): boolean {
  return connection.isReady ?? connection.isOpen
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

function isClient (value: unknown): boolean {
  return isObject(value) && typeof value.sendCommand === 'function' && typeof value.on === 'function'
}

