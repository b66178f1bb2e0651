import type { FastifyInstance } from 'fastify'
import { CloseCode } from './protocol/constants.js'
import { DEFAULTS, type FastifyRfc6455Options } from './options.js'
import { createRouteHook, RouteMatcher } from './route.js'
import { createUpgradeListener } from './upgrade.js'
import type { WebSocket } from './websocket.js'

/** Fastify's default bodyLimit, for apps that report none. */
const DEFAULT_BODY_LIMIT = 1024 * 1024

/**
 * The plugin: an `onRoute` hook that turns `ws: true` routes into WebSocket
 * routes, the server's `upgrade` listener, the optional heartbeat, and a
 * `preClose` hook that closes every open WebSocket with 1001 (Going Away)
 * when the app closes, waiting for the closing handshakes up to the close
 * timeout. Register it before the routes that use it.
 */
export async function plugin (fastify: FastifyInstance, options: FastifyRfc6455Options): Promise<void> {
  const registry = new Set<WebSocket>()
  const config = fastify.initialConfig as { bodyLimit?: number, routerOptions?: object }
  const matcher = new RouteMatcher(config.routerOptions)
  fastify.decorate('websocketClients', { getter: () => registry as ReadonlySet<WebSocket> })
  fastify.addHook('onRoute', createRouteHook(options, config.bodyLimit ?? DEFAULT_BODY_LIMIT, matcher, registry))

  const onUpgrade = createUpgradeListener(fastify, matcher)
  fastify.server.on('upgrade', onUpgrade)

  const interval = options.heartbeatInterval ?? DEFAULTS.heartbeatInterval
  const heartbeat = interval > 0
    ? setInterval(() => { for (const socket of registry) socket.heartbeat() }, interval).unref()
    : undefined

  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    fastify.server.off('upgrade', onUpgrade)
    const closed: Array<Promise<void>> = []
    for (const socket of registry) {
      closed.push(new Promise((resolve) => socket.once('close', () => resolve())))
      socket.close(CloseCode.GoingAway, 'server shutting down')
    }
    await Promise.all(closed)
  })
}
