import type { FastifyInstance, RouteOptions } from 'fastify'
import type { RouteMatcher } from './matcher.js'
import { routeHandlerError, routeMethodError, routeWsMissingError } from '../errors.js'
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
  /** @fastify/websocket's route option, which this plugin does not take (its compat entry maps it to `ws`). */
  websocket?: unknown
  /** Set by `route()` (below) on a declaration whose `handler` is its `wsHandler`. */
  [kWsHandlerOnly]?: true
}

/** Marks a declaration that `route()` gave its `wsHandler` as `handler`. */
const kWsHandlerOnly = Symbol('fastify-rfc6455.wsHandlerOnly')

/** The registration whose options apply to the routes of a scope: set on the scope's instance, inherited by its children. */
const kRegistration = Symbol('fastify-rfc6455.registration')

type Scope = FastifyInstance & { [kRegistration]?: object }

/**
 * The `onRoute` hook of the registration of the plugin on `scope`: turns a
 * route with `ws: true` (or `ws: { ...options }`) into a WebSocket route.
 * Only GET may carry it (the opening handshake is a GET, RFC 6455 §4.1);
 * Fastify's automatic HEAD route answers like a plain GET without a body.
 * With `wsHandler` the route's `handler` answers plain HTTP and `wsHandler`
 * takes WebSocket connections; without, `handler` takes them and plain HTTP
 * gets 426. A WebSocket route gets `schema.hide: true`, which keeps it out
 * of @fastify/swagger's document. A route with `websocket` or `wsHandler`
 * but no `ws` throws FST_WS_ROUTE_WS_MISSING; another GET route is noted in
 * `matcher` as an HTTP route.
 *
 * The plugin registered in a scope and again in a child scope: the hooks of
 * both run for the child's routes (the parent's first), and only the one of
 * the innermost registration acts, with its options.
 */
export function createRouteHook (
  scope: FastifyInstance,
  pluginOptions: FastifyRfc6455Options,
  bodyLimit: number,
  matcher: RouteMatcher,
  owner: SocketOwner
) {
  const registration = {}
  ;(scope as Scope)[kRegistration] = registration
  return function onRoute (this: FastifyInstance, declared: RouteOptions): void {
    if ((this as Scope)[kRegistration] !== registration) return
    const routeOptions = declared as WebSocketRouteOptions
    const ws = routeOptions.ws
    const methods = Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method]
    if (ws === undefined || ws === false) {
      const given = routeOptions.websocket !== undefined && routeOptions.websocket !== false
        ? `websocket: ${String(routeOptions.websocket)}`
        : routeOptions.wsHandler !== undefined || routeOptions[kWsHandlerOnly] === true ? 'wsHandler' : undefined
      if (given !== undefined) throw routeWsMissingError(routeOptions.url, given)
      if (methods.includes('GET')) matcher.addHttp(routeOptions.url, routeOptions.constraints)
      return
    }
    const wsOnly = routeOptions[kWsHandlerOnly] === true || routeOptions.wsHandler === undefined
    const httpHandler = wsOnly ? undefined : routeOptions.handler
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
    // @fastify/swagger's key (its types add it to FastifySchema).
    routeOptions.schema = { hide: true, ...routeOptions.schema } as RouteOptions['schema']
    matcher.add(routeOptions.url, routeOptions.constraints, options.origin)
  }
}

/** Marks a `route()` already wrapped by acceptWsHandlerOnlyRoutes. */
const kWrapped = Symbol('fastify-rfc6455.route')

/**
 * Lets `fastify.route()` declare a WebSocket-only route with `wsHandler` and
 * no `handler`. Fastify refuses a route without `handler`
 * (FST_ERR_ROUTE_MISSING_HANDLER) before any `onRoute` hook runs, so such a
 * declaration is passed on with its `wsHandler` as `handler`, marked: the same route as
 * `{ ws: true, handler }`. Wraps the instance's own `route`, which the
 * encapsulated instances created from it inherit, once.
 */
export function acceptWsHandlerOnlyRoutes (fastify: FastifyInstance): void {
  const route = fastify.route as ((this: FastifyInstance, options: RouteOptions) => FastifyInstance) & { [kWrapped]?: true }
  if (route[kWrapped] === true) return
  const wrapped = function (this: FastifyInstance, options: WebSocketRouteOptions): FastifyInstance {
    if (options.handler !== undefined || options.wsHandler === undefined) return route.call(this, options as RouteOptions)
    const { wsHandler, ...declaration } = options
    // Fastify's types take no WebSocket handler: the onRoute hook above replaces it.
    return route.call(this, { ...declaration, handler: wsHandler, [kWsHandlerOnly]: true } as unknown as RouteOptions)
  }
  fastify.route = Object.assign(wrapped, { [kWrapped]: true as const }) as unknown as FastifyInstance['route']
}
