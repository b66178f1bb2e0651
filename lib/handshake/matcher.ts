import type { IncomingMessage } from 'node:http'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { ResolvedOptions } from '../options.js'

/** A route's `origin` option as resolved (undefined: the same-host default). */
export type OriginPolicy = ResolvedOptions['origin']

/**
 * The paths of the `ws: true` routes and their origin policies, in routers
 * of their own (Fastify instances that never listen, so matching follows
 * Fastify's rules for params, wildcards and constraints), one per distinct
 * policy. The upgrade listeners ask it whether an upgrade request is ours,
 * and under which policy, before handing it to the app's router, which
 * then routes it for real. It ignores trailing slashes: Fastify adds
 * `prefix + '/'` for a prefixed '/' route without telling `onRoute`, and a
 * path the app's router does not take still gets the app's 404.
 */
export class RouteMatcher {
  private readonly routerOptions: object
  /** A router per distinct origin policy (lists compared by content), with the policy. */
  private readonly groups = new Map<unknown, { policy: OriginPolicy, router: FastifyInstance }>()
  /**
   * The plain paths of routes without constraints (`/chat`, not `/chat/:room`):
   * while every route has the same policy, a request for one of these exact
   * paths matches without a router lookup, which the router would answer the same way.
   */
  private readonly plainPaths = new Set<string>()

  constructor (routerOptions: object | undefined) {
    this.routerOptions = { ...routerOptions, ignoreTrailingSlash: true }
  }

  add (url: string, constraints: RouteOptions['constraints'], policy: OriginPolicy): void {
    if ((constraints === undefined || Object.keys(constraints).length === 0) && PLAIN_PATH.test(url)) this.plainPaths.add(url)
    const key = Array.isArray(policy) ? `list:${JSON.stringify(policy)}` : policy === true ? '*' : policy
    let group = this.groups.get(key)
    if (group === undefined) {
      group = { policy, router: Fastify({ routerOptions: this.routerOptions }) }
      this.groups.set(key, group)
    }
    if (group.router.hasRoute({ method: 'GET', url, constraints })) return
    group.router.get(url, { constraints }, noop)
  }

  /**
   * The origin policies of the `ws: true` routes the request matches, or
   * null when it matches none. More than one when routes of different
   * policies overlap (`/chat/lobby` and `/chat/:room`): the handshake must
   * then pass each, as the matcher cannot tell which the app's router picks.
   */
  match (request: IncomingMessage): OriginPolicy[] | null {
    // An Accept-Version header keeps the routes without a version from matching (find-my-way's version constraint).
    if (this.groups.size === 1 && this.plainPaths.size > 0 && request.headers['accept-version'] === undefined) {
      if (this.plainPaths.has(pathOf(request))) return [this.groups.values().next().value!.policy]
    }
    const route = routeOf(request)
    let found: OriginPolicy[] | null = null
    for (const { policy, router } of this.groups.values()) {
      if (router.findRoute(route) !== null) (found ??= []).push(policy)
    }
    return found
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

const PLAIN_PATH = /^\/[A-Za-z0-9\-._~/]*$/

function noop (): void {}
