import type { IncomingMessage } from 'node:http'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import { routeHandlerError, routeMethodError } from './errors.js'
import { type FastifyRfc6455Options, resolveOptions, validateRouteOptions, type WebSocketOptions } from './options.js'
import { upgradeRequired, webSocketRouteHandler, type WebSocketHandler } from './upgrade.js'
import type { SocketRegistry } from './registry.js'

/**
 * The paths of the `ws: true` routes, in a router of their own (a Fastify
 * instance that never listens, so matching follows Fastify's rules for
 * params, wildcards and constraints). The upgrade listener asks it whether
 * an upgrade request is ours before handing it to the app's router, which
 * then routes it for real. It ignores trailing slashes: Fastify adds
 * `prefix + '/'` for a prefixed '/' route without telling `onRoute`, and a
 * path the app's router does not take still gets the app's 404.
 */
export class RouteMatcher {
  private readonly router: FastifyInstance
  /**
   * The plain paths of routes without constraints (`/chat`, not `/chat/:room`):
   * a request for one of these exact paths matches without a router lookup,
   * which the router would answer the same way.
   */
  private readonly plainPaths = new Set<string>()

  constructor (routerOptions: object | undefined) {
    this.router = Fastify({ routerOptions: { ...routerOptions, ignoreTrailingSlash: true } })
  }

  add (url: string, constraints: RouteOptions['constraints']): void {
    if ((constraints === undefined || Object.keys(constraints).length === 0) && PLAIN_PATH.test(url)) this.plainPaths.add(url)
    if (this.router.hasRoute({ method: 'GET', url, constraints })) return
    this.router.get(url, { constraints }, noop)
  }

  matches (request: IncomingMessage): boolean {
    // An Accept-Version header keeps the routes without a version from matching (find-my-way's version constraint).
    if (this.plainPaths.size > 0 && request.headers['accept-version'] === undefined) {
      if (this.plainPaths.has(pathOf(request))) return true
    }
    return this.router.findRoute(routeOf(request)) !== null
  }

  /**
   * Whether `app` routes the upgrade request to a GET route of its own: one
   * declared without `ws`, or with it before the plugin could see it.
   */
  appMatches (app: FastifyInstance, request: IncomingMessage): boolean {
    return app.findRoute(routeOf(request)) !== null
  }
}

/**
 * What a router matches an upgrade request (or an HTTP/2 extended CONNECT)
 * against, for `findRoute()`: GET, the path without the query, and the host
 * and version constraints.
 */
function routeOf (request: IncomingMessage): { method: 'GET', url: string, constraints: Record<string, string> } {
  const constraints: Record<string, string> = {}
  // HTTP/2 carries the host in :authority (RFC 7540 §8.1.2.3).
  const host = request.headers.host ?? request.headers[':authority']
  if (typeof host === 'string') constraints.host = host
  const version = request.headers['accept-version']
  if (typeof version === 'string') constraints.version = version
  return { method: 'GET', url: pathOf(request), constraints }
}

/** The request-target without its query. */
function pathOf (request: IncomingMessage): string {
  const url = request.url ?? '/'
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

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
  registry: SocketRegistry
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
    routeOptions.handler = webSocketRouteHandler(wsHandler as WebSocketHandler, httpHandler, options, registry)
    matcher.add(routeOptions.url, routeOptions.constraints)
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
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~/]*$/

function noop (): void {}
