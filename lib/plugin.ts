import type { FastifyInstance } from 'fastify'
import { CloseCode } from './protocol/constants.js'
import { DEFAULTS, type FastifyRfc6455Options, validatePluginOptions } from './options.js'
import { RouteMatcher } from './handshake/matcher.js'
import { acceptWsHandlerOnlyRoutes, createRouteHook } from './handshake/route.js'
import { createUpgradeListener } from './handshake/upgrade.js'
import { http2WebSockets } from './handshake/http2.js'
import { createInjector } from './handshake/inject.js'
import type { SendOptions, WebSocketData } from './socket/payload.js'
import type { WebSocket } from './socket/websocket.js'
import { LocalBroker } from './pubsub/broker.js'
import { TopicTable } from './pubsub/topics.js'
import { SocketRegistry, type WebSocketAppStats } from './registry.js'

/** Fastify's default bodyLimit, for apps that report none. */
const DEFAULT_BODY_LIMIT = 1024 * 1024

/**
 * The plugin: an `onRoute` hook that turns `ws: true` routes into WebSocket
 * routes, the server's `upgrade` listener (and on an HTTP/2 server its
 * `connect` listener, RFC 8441), the optional heartbeat, and a
 * `preClose` hook that closes every open WebSocket with 1001 (Going Away)
 * when the app closes, waiting for the closing handshakes up to the close
 * timeout. Register it before the routes that use it.
 */
export async function plugin (fastify: FastifyInstance, options: FastifyRfc6455Options): Promise<void> {
  validatePluginOptions(options)
  const broker = options.broker ?? new LocalBroker()
  const topics = new TopicTable(broker)
  const registry = new SocketRegistry(topics)
  const sockets = registry.sockets
  await broker.start({ deliver: (message) => topics.deliver(message), log: fastify.log })
  const config = fastify.initialConfig as { bodyLimit?: number, routerOptions?: object }
  const matcher = new RouteMatcher(config.routerOptions)
  fastify.decorate('websocketClients', { getter: () => sockets as ReadonlySet<WebSocket> })
  const websocket: WebSocketApp = {
    publish: (topic, data, sendOptions) => topics.publish(topic, data, sendOptions, undefined),
    subscriberCount: (topic) => topics.subscriberCount(topic),
    stats: () => registry.stats()
  }
  fastify.decorate('websocket', websocket)
  fastify.decorate('injectWS', createInjector(fastify, matcher))
  acceptWsHandlerOnlyRoutes(fastify)
  fastify.addHook('onRoute', createRouteHook(options, config.bodyLimit ?? DEFAULT_BODY_LIMIT, matcher, registry))

  const onUpgrade = createUpgradeListener(fastify, matcher)
  fastify.server.on('upgrade', onUpgrade)
  const http2 = http2WebSockets(fastify, matcher, options.highWaterMark ?? DEFAULTS.highWaterMark)

  const interval = options.heartbeatInterval ?? DEFAULTS.heartbeatInterval
  const heartbeat = interval > 0
    ? setInterval(() => { for (const socket of sockets) socket.heartbeat() }, interval).unref()
    : undefined

  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    fastify.server.off('upgrade', onUpgrade)
    // GOAWAY lets the closing handshakes below finish on their streams.
    http2?.close()
    const closed: Array<Promise<void>> = []
    for (const socket of sockets) {
      // Not the socket's 'close' event: its listeners may throw or be removed.
      closed.push(socket.whenClosed())
      socket.close(CloseCode.GoingAway, 'server shutting down')
    }
    await Promise.all(closed)
  })
  // onClose runs after every preClose hook: the sockets have left their topics.
  fastify.addHook('onClose', async () => { await broker.close() })
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
  /** How many sockets of this instance are subscribed to `topic`. */
  subscriberCount (topic: string): number
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
