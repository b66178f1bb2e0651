import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { CloseCode } from './protocol/constants.js'
import { DEFAULTS, type DrainOptions, type FastifyRfc6455Options, validatePluginOptions } from './options.js'
import { RouteMatcher } from './handshake/matcher.js'
import { acceptWsHandlerOnlyRoutes, createRouteHook } from './handshake/route.js'
import { createUpgradeListener } from './handshake/upgrade.js'
import { http2WebSockets } from './handshake/http2.js'
import { createInjector } from './handshake/inject.js'
import type { SendOptions, WebSocketData } from './socket/payload.js'
import { WebSocket } from './socket/websocket.js'
import { type Broker, LocalBroker } from './pubsub/broker.js'
import { brokerStartedError, invalidOptionError, noPresenceError, serverOptionError } from './errors.js'
import { TopicTable } from './pubsub/topics.js'
import { DEFAULT_MAX_RECOVERY, type HistoryOption, TopicHistories } from './pubsub/recovery.js'
import { PresenceTable } from './pubsub/presence.js'
import { ClusterControl, ClusterRequests, type WebSocketCluster } from './pubsub/cluster.js'
import { presenceOf } from './socket/presence.js'
import type { Position } from './socket/position.js'
import { SocketRegistry, type WebSocketAppStats } from './registry.js'

/** Fastify's default bodyLimit, for apps that report none. */
const DEFAULT_BODY_LIMIT = 1024 * 1024

/**
 * What every registration of the plugin on one server shares: one `upgrade`
 * listener (and one `connect` listener on HTTP/2), one router of WebSocket
 * routes, the open sockets, the topics and their broker, the heartbeat and
 * the decorators. Created by the first registration, which runs it until the
 * app closes.
 */
interface ServerState {
  readonly matcher: RouteMatcher
  readonly registry: SocketRegistry
  /** The first registration's SERVER_OPTIONS, with their defaults. */
  readonly options: ServerOptions
  readonly websocket: WebSocketApp
  readonly injectWS: ReturnType<typeof createInjector>
}

/** Options that serve every route of a server: the first registration's hold, a later one may only repeat them. */
const SERVER_OPTIONS = ['broker', 'heartbeatInterval', 'history', 'maxRecovery', 'maxHttp2WebSockets', 'maxPublishPayload', 'presence', 'drain'] as const

type ServerOptions = Pick<FastifyRfc6455Options, typeof SERVER_OPTIONS[number]>

/** The state of each server the plugin is registered on. */
const servers = new WeakMap<object, ServerState>()

/** Every broker started by an app: a broker serves one app, once. */
const startedBrokers = new WeakSet<Broker>()

/**
 * The plugin: an `onRoute` hook that turns `ws: true` routes into WebSocket
 * routes, the server's `upgrade` listener (and on an HTTP/2 server its
 * `connect` listener, RFC 8441), the optional heartbeat, and a
 * `preClose` hook that closes every open WebSocket with 1001 (Going Away)
 * when the app closes (all at once, or in batches with `drain`), waiting
 * for the closing handshakes up to the close timeout. Register it before
 * the routes that use it.
 *
 * Registered again in a child or sibling plugin, it shares the first
 * registration's listeners, sockets, topics and broker, and its options
 * apply to the routes of its own scope (the innermost registration wins).
 * `broker`, `heartbeatInterval`, `history`, `maxRecovery`,
 * `maxHttp2WebSockets`, `maxPublishPayload` and `drain` serve the whole
 * server: a later registration that sets another throws
 * FST_WS_SERVER_OPTION. A broker already started by an app throws
 * FST_WS_BROKER_STARTED.
 */
export async function plugin (fastify: FastifyInstance, options: FastifyRfc6455Options): Promise<void> {
  validatePluginOptions(options)
  const state = servers.get(fastify.server) ?? await startServer(fastify, options)
  for (const name of SERVER_OPTIONS) {
    if (options[name] !== undefined && !repeats(name, options[name], state.options[name])) throw serverOptionError(name)
  }
  if (!fastify.hasDecorator('websocket')) {
    const sockets = state.registry.sockets
    fastify.decorate('websocketClients', { getter: () => sockets as ReadonlySet<WebSocket> })
    fastify.decorate('websocket', state.websocket)
    fastify.decorate('injectWS', state.injectWS)
  }
  acceptWsHandlerOnlyRoutes(fastify)
  const config = fastify.initialConfig as { bodyLimit?: number }
  fastify.addHook('onRoute', createRouteHook(fastify, options, config.bodyLimit ?? DEFAULT_BODY_LIMIT, state.matcher, state.registry))
}

/** The first registration on `fastify.server`: starts the broker, listens for handshakes, and stops it all when the app closes. */
async function startServer (fastify: FastifyInstance, options: FastifyRfc6455Options): Promise<ServerState> {
  const broker = options.broker ?? new LocalBroker()
  if (startedBrokers.has(broker)) throw brokerStartedError()
  if (options.history !== undefined && broker.history === undefined) {
    throw invalidOptionError('history', 'given', 'used with a broker that keeps history (Broker.history, as LocalBroker and RedisBroker have)', undefined)
  }
  if (options.presence !== undefined && (broker.presence === undefined || broker.history === undefined)) {
    throw invalidOptionError('presence', 'given', 'used with a broker that keeps presence and history (Broker.presence and Broker.history, as LocalBroker and RedisBroker have)', undefined)
  }
  startedBrokers.add(broker)
  const bodyLimit = (fastify.initialConfig as { bodyLimit?: number }).bodyLimit ?? DEFAULT_BODY_LIMIT
  const serverOptions: ServerOptions = {
    broker,
    heartbeatInterval: options.heartbeatInterval ?? DEFAULTS.heartbeatInterval,
    history: options.history,
    maxRecovery: options.maxRecovery ?? DEFAULT_MAX_RECOVERY,
    maxHttp2WebSockets: options.maxHttp2WebSockets ?? DEFAULTS.maxHttp2WebSockets,
    maxPublishPayload: options.maxPublishPayload ?? Math.min(options.maxPayload ?? bodyLimit, DEFAULTS.maxPublishPayload),
    presence: options.presence,
    // A copy: the app may change its object after registering it.
    drain: options.drain === undefined ? undefined : { sockets: options.drain.sockets, interval: options.drain.interval }
  }
  let presence: PresenceTable | null = null
  const histories = options.history === undefined && options.presence === undefined
    ? null
    : new TopicHistories(historyOption(options.history, () => presence), broker.history!, serverOptions.maxRecovery!, fastify.log)
  const topics = new TopicTable(broker, serverOptions.maxPublishPayload!, histories)
  if (options.presence !== undefined) presence = new PresenceTable(options.presence, broker.presence!, fastify.log, topics)
  const registry = new SocketRegistry(topics, presence, (fastify.initialConfig as { disableRequestLogging?: unknown }).disableRequestLogging !== true)
  const sockets = registry.sockets
  const control = new ClusterControl(topics, presence, sockets)
  const cluster = new ClusterRequests(broker.cluster ?? { request: async (request) => ({ instances: 1, sockets: control.run(request) }) }, async (topic) => {
    if (presence === null) throw noPresenceError()
    return await presence.members(topic)
  })
  await broker.start({
    deliver: (message) => topics.deliver(message),
    resubscribed: (topic) => topics.resubscribed(topic),
    control: (request) => control.run(request),
    log: fastify.log
  })
  const config = fastify.initialConfig as { routerOptions?: object }
  const matcher = new RouteMatcher(config.routerOptions)
  const heartbeatInterval = serverOptions.heartbeatInterval!
  const drain = serverOptions.drain
  const state: ServerState = {
    matcher,
    registry,
    options: serverOptions,
    websocket: {
      publish: (topic, data, sendOptions) => topics.publish(topic, data, sendOptions, undefined),
      publishStored: (topic, data, sendOptions) => topics.publishStored(topic, data, sendOptions),
      subscriberCount: (topic) => topics.subscriberCount(topic),
      cluster,
      stats: () => registry.stats()
    },
    injectWS: createInjector(fastify, matcher)
  }
  servers.set(fastify.server, state)

  const onUpgrade = createUpgradeListener(fastify, matcher)
  fastify.server.on('upgrade', onUpgrade)
  const http2 = http2WebSockets(fastify, matcher, serverOptions.maxHttp2WebSockets!, options.highWaterMark ?? DEFAULTS.highWaterMark)

  const heartbeat = heartbeatInterval > 0
    ? setInterval(() => {
      for (const socket of sockets) {
        if (socket.heartbeat()) socket.log.info({ heartbeatInterval }, 'WebSocket terminated: no pong to the last heartbeat ping')
      }
    }, heartbeatInterval).unref()
    : undefined

  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    fastify.server.off('upgrade', onUpgrade)
    // GOAWAY lets the closing handshakes below finish on their streams.
    http2?.close()
    if (drain !== undefined) {
      await drainSockets(sockets, drain, fastify.log)
      return
    }
    const closed: Array<Promise<void>> = []
    for (const socket of sockets) {
      // Not the socket's 'close' event: its listeners may throw or be removed.
      closed.push(socket.whenClosed())
      socket.close(CloseCode.GoingAway, 'server shutting down')
    }
    await Promise.all(closed)
  })
  // onClose runs after every preClose hook: the sockets have left their topics.
  fastify.addHook('onClose', async () => {
    servers.delete(fastify.server)
    await presence?.close()
    await broker.close()
  })
  return state
}

/**
 * The history option the topic table uses: the app's `history`, and the
 * events topics of presence (presenceTopic()) with the presence table's.
 */
function historyOption (history: HistoryOption | undefined, presence: () => PresenceTable | null): HistoryOption {
  return (topic) => {
    const of = presenceOf(topic)
    if (of === null) return history?.(topic) ?? null
    return presence()?.events(of) ?? null
  }
}

/** Whether a later registration's value of the server option `name` repeats the one in effect: the same value, or a `drain` of the same numbers. */
function repeats (name: typeof SERVER_OPTIONS[number], given: unknown, held: unknown): boolean {
  if (name !== 'drain' || held === undefined) return given === held
  const a = given as DrainOptions
  const b = held as DrainOptions
  return a.sockets === b.sockets && a.interval === b.interval
}

/**
 * The `drain` option at `app.close()`: closes the sockets still OPEN with
 * 1001, `drain.sockets` at a time every `drain.interval` ms, and resolves
 * once every connection has closed. A socket that closes on its own (or
 * began to) is neither closed again nor counted; one opened meanwhile (its
 * handshake was under way) is taken by the next batch, if one comes. Logs
 * each batch (`closed` so far, `remaining` OPEN) and the end.
 */
async function drainSockets (sockets: ReadonlySet<WebSocket>, drain: DrainOptions, log: FastifyBaseLogger): Promise<void> {
  const started = Date.now()
  let closed = 0
  for (;;) {
    let batch = 0
    let remaining = 0
    for (const socket of sockets) {
      if (socket.readyState !== WebSocket.OPEN) continue
      if (batch < drain.sockets) {
        socket.close(CloseCode.GoingAway, 'server shutting down')
        batch++
      } else {
        remaining++
      }
    }
    if (batch === 0) break
    closed += batch
    log.info({ closed, remaining }, 'closing WebSockets in batches')
    if (remaining === 0) break
    await sleep(drain.interval)
  }
  // Not the sockets' 'close' events: their listeners may throw or be removed.
  await Promise.all(Array.from(sockets, (socket) => socket.whenClosed()))
  log.info({ closed, duration: Date.now() - started }, 'WebSockets drained')
}

/** `app.websocket`: publishing to the topics of every socket of the app. */
export interface WebSocketTopics {
  /**
   * Sends a message to every subscriber of `topic`, on this instance and,
   * through the broker, on every other. A string goes as text, bytes as
   * binary, framed once for all; `options.compress` as in `send()`. Never
   * blocks: a slow subscriber's backlog is bounded by its own `maxBackpressure`
   * (1008 past it). Returns how many sockets of this instance took it.
   * Throws FST_WS_INVALID_TOPIC unless `topic` is a string of at most 1024 bytes of UTF-8.
   */
  publish (topic: string, data: WebSocketData, options?: SendOptions): number
  /**
   * Publishes to a topic with history (the `history` option,
   * docs/recovery.md): resolves with the message's position once the broker
   * has stored it and handed it to every instance, this one included, whose
   * subscribers then receive it (its `encode()`d form). Throws
   * FST_WS_INVALID_TOPIC as `publish()` and FST_WS_NO_HISTORY for a topic
   * without history; rejects with FST_WS_HISTORY_UNAVAILABLE when the broker
   * cannot store it (Redis unreachable): it then reached no one.
   * `publish()` on a history topic does the same without waiting: it
   * returns 0 and logs a failure.
   */
  publishStored (topic: string, data: WebSocketData, options?: SendOptions): Promise<Position>
  /** How many sockets of this instance are subscribed to `topic` (`cluster.subscriberCount()`: on every instance). */
  subscriberCount (topic: string): number
  /**
   * Requests every instance of the app runs (docs/presence-and-control.md):
   * subscriber counts, disconnecting or unsubscribing the sockets that match,
   * and the members present in a topic. Through the broker: with the
   * LocalBroker, this instance alone.
   */
  cluster: WebSocketCluster
}

/** `app.websocket`: the topics of the app's sockets, and their gauges and counters. */
export interface WebSocketApp extends WebSocketTopics {
  /**
   * Open sockets (in all and per route) and the messages and bytes each way
   * over every connection since the plugin was registered, on this
   * instance: what a metrics endpoint reads. Walks the open sockets once.
   */
  stats (): WebSocketAppStats
}
