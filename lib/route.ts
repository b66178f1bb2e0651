import type { IncomingMessage } from 'node:http'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import { routeHandlerError, routeMethodError } from './errors.js'
import { type FastifyRfc6455Options, resolveOptions, type WebSocketOptions } from './options.js'
import { upgradeRequired, webSocketRouteHandler, type WebSocketHandler } from './upgrade.js'
import type { WebSocket } from './websocket.js'

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

  constructor (routerOptions: object | undefined) {
    this.router = Fastify({ routerOptions: { ...routerOptions, ignoreTrailingSlash: true } })
  }

  add (url: string, constraints: RouteOptions['constraints']): void {
    if (this.router.hasRoute({ method: 'GET', url, constraints })) return
    this.router.get(url, { constraints }, noop)
  }

  matches (request: IncomingMessage): boolean {
    const url = request.url ?? '/'
    const query = url.indexOf('?')
    const constraints: Record<string, string> = {}
    if (request.headers.host !== undefined) constraints.host = request.headers.host
    const version = request.headers['accept-version']
    if (typeof version === 'string') constraints.version = version
    return this.router.findRoute({
      method: 'GET',
      url: query === -1 ? url : url.slice(0, query),
      constraints
    }) !== null
  }
}

/** A route declaration as the `onRoute` hook sees it, with this plugin's options. */
type WebSocketRouteOptions = RouteOptions & {
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
  registry: Set<WebSocket>
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
    const options = resolveOptions(pluginOptions, typeof ws === 'object' ? ws : undefined, bodyLimit)
    routeOptions.handler = webSocketRouteHandler(wsHandler as WebSocketHandler, httpHandler, options, registry)
    matcher.add(routeOptions.url, routeOptions.constraints)
  }
}

function noop (): void {}
