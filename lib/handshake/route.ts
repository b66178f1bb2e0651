import type { FastifyInstance, RouteOptions } from 'fastify'
import type { RouteMatcher } from './matcher.js'
import { routeHandlerError, routeMethodError } from '../errors.js'
import { type FastifyRfc6455Options, resolveOptions, validateRouteOptions, type WebSocketOptions } from '../options.js'
import { upgradeRequired, webSocketRouteHandler, type WebSocketHandler } from './upgrade.js'
import type { SocketOwner } from '../socket/websocket.js'

/**
 * A route declaration as the `onRoute` hook sees it, with this plugin's
 * options (which lib/index.ts keeps out of Fastify's own `RouteOptions`).
 */
type WebSocketRouteOptions = Omit<RouteOptions, 'ws' | 'wsHandler'> & {
  ws?: boolean | WebSocketOptions
  wsHandler?: WebSocketHandler
}

/**
 * The `onRoute` hook: turns a route with `ws: true` (or `ws: { ...options }`)
 * into a WebSocket route. Only GET may carry it (the opening handshake is a
 * GET, RFC 6455 §4.1); Fastify's automatic HEAD route answers like a plain
 * GET without a body. With `wsHandler` the route's `handler` answers plain
 * HTTP and `wsHandler` takes WebSocket connections; without, `handler` takes
 * them and plain HTTP gets 426.
 */
export function createRouteHook (
  pluginOptions: FastifyRfc6455Options,
  bodyLimit: number,
  matcher: RouteMatcher,
  owner: SocketOwner
) {
  return function onRoute (routeOptions: WebSocketRouteOptions): void {
    const ws = routeOptions.ws
    if (ws === undefined || ws === false) return
    const methods = Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method]
    const httpHandler = routeOptions.wsHandler === undefined ? undefined : routeOptions.handler
    if (methods.length === 1 && methods[0] === 'HEAD') {
      if (httpHandler === undefined) routeOptions.handler = (_request, reply) => upgradeRequired(reply)
      return
    }
    if (methods.length !== 1 || methods[0] !== 'GET') throw routeMethodError(methods.join(','), routeOptions.url)
    const wsHandler = routeOptions.wsHandler ?? routeOptions.handler
    if (typeof wsHandler !== 'function') throw routeHandlerError(routeOptions.url)
    const messageSchema = routeOptions.schema?.message
    validateRouteOptions(ws, pluginOptions, routeOptions.url, messageSchema)
    const options = resolveOptions(pluginOptions, typeof ws === 'object' ? ws : undefined, bodyLimit, routeOptions.schema)
    routeOptions.handler = webSocketRouteHandler(wsHandler as WebSocketHandler, httpHandler, options, owner)
    matcher.add(routeOptions.url, routeOptions.constraints, options.origin)
  }
}

/**
 * Lets `fastify.route()` declare a WebSocket-only route with `wsHandler` and
 * no `handler`. Fastify refuses a route without `handler`
 * (FST_ERR_ROUTE_MISSING_HANDLER) before any `onRoute` hook runs, so such a
 * declaration is passed on with its `wsHandler` as `handler`: the same route as
 * `{ ws: true, handler }`. Wraps the instance's own `route`, which the
 * encapsulated instances created from it inherit.
 */
export function acceptWsHandlerOnlyRoutes (fastify: FastifyInstance): void {
  const route = fastify.route as (this: FastifyInstance, options: RouteOptions) => FastifyInstance
  fastify.route = function (this: FastifyInstance, options: WebSocketRouteOptions): FastifyInstance {
    if (options.handler !== undefined || options.wsHandler === undefined || options.ws === undefined || options.ws === false) {
      return route.call(this, options as RouteOptions)
    }
    const { wsHandler, ...declaration } = options
    // Fastify's types take no WebSocket handler: the onRoute hook above replaces it.
    return route.call(this, { ...declaration, handler: wsHandler } as unknown as RouteOptions)
  } as FastifyInstance['route']
}

/** A path the router takes literally: no params, wildcards, regular expressions, escapes or `;`. */
