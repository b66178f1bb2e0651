import type { IncomingMessage } from 'node:http'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { ResolvedOptions } from '../options.js'

/** A route's `origin` option as resolved (undefined: the same-host default). */
export type OriginPolicy = ResolvedOptions['origin']

/** Where the app's router takes an upgrade request (or an HTTP/2 extended CONNECT). */
export type RouteLookup =
  | {
    kind: 'websocket'
    /**
     * The origin policies of the `ws: true` routes it matches, each of which
     * the handshake must pass (see `checkOrigin`): more than one when routes
     * of different policies take it the same way (`/a/:x` beside `/a/:x` under
     * another host constraint), as the matcher cannot tell which the app picks.
     */
    policies: OriginPolicy[]
  }
  | { kind: 'none' }
  | {
    kind: 'http'
    /**
     * Whether the HTTP route could have been meant as a WebSocket route: it
     * was declared where the plugin did not see it (before it was registered,
     * or in a scope without it), or it takes a path that a WebSocket route
     * matches too.
     */
    suspect: boolean
    /** The route's path as the params tell it (`/chat/:room`), to log it once. */
    route: string
  }

const NO_ROUTE: RouteLookup = { kind: 'none' }

/** HTTP routes warned about, at most: past it, the 404s of further routes log at debug level. */
const MAX_WARNED_ROUTES = 1000

/**
 * The paths of the `ws: true` routes and their origin policies, in routers
 * of their own (Fastify instances that never listen, so matching follows
 * Fastify's rules for params, wildcards and constraints), one per distinct
 * policy, and in another the GET routes the plugin saw declared without
 * `ws`. The upgrade listeners ask it where the app's router takes an upgrade
 * request, and under which policies, before handing it to that router,
 * which then routes it for real: a request the app's router would give to
 * another route than the WebSocket route that matches it (an HTTP route
 * `/http` beside a WebSocket route `/*`) is no WebSocket request. It ignores
 * trailing slashes: Fastify adds `prefix + '/'` for a prefixed '/' route
 * without telling `onRoute`, and a path the app's router does not take still
 * gets the app's 404.
 */
export class RouteMatcher {
  private readonly routerOptions: object
  /** A router per distinct origin policy (lists compared by content), with the policy. */
  private readonly groups = new Map<unknown, { policy: OriginPolicy, router: FastifyInstance }>()
  private readonly httpRouter: FastifyInstance
  /**
   * The plain paths of routes without constraints (`/chat`, not `/chat/:room`):
   * while every route has the same policy, a request for one of these exact
   * paths matches without a router lookup, which the router would answer the same way.
   */
  private readonly plainPaths = new Set<string>()
  private readonly warned = new Set<string>()

  constructor (routerOptions: object | undefined) {
    this.routerOptions = { ...routerOptions, ignoreTrailingSlash: true }
    this.httpRouter = Fastify({ routerOptions: this.routerOptions })
  }

  /** A WebSocket route, with its origin policy. */
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

  /** A GET route declared without `ws`, after the plugin. */
  addHttp (url: string, constraints: RouteOptions['constraints']): void {
    if (this.httpRouter.hasRoute({ method: 'GET', url, constraints })) return
    this.httpRouter.get(url, { constraints }, noop)
  }

  /** Where `app`'s router takes the upgrade request `request`. */
  lookup (app: FastifyInstance, request: IncomingMessage): RouteLookup {
    // An Accept-Version header keeps the routes without a version from matching (find-my-way's version constraint).
    if (this.groups.size === 1 && this.plainPaths.size > 0 && request.headers['accept-version'] === undefined) {
      if (this.plainPaths.has(pathOf(request))) return { kind: 'websocket', policies: [this.groups.values().next().value!.policy] }
    }
    const route = routeOf(request)
    const found = app.findRoute(route)
    let matched = false
    let policies: OriginPolicy[] | null = null
    for (const { policy, router } of this.groups.values()) {
      const ours = router.findRoute(route)
      if (ours === null) continue
      matched = true
      if (found === null || sameRoute(ours.params, found.params)) (policies ??= []).push(policy)
    }
    if (policies !== null) return { kind: 'websocket', policies }
    if (found === null) return NO_ROUTE
    const declared = this.httpRouter.findRoute(route)
    const suspect = matched || declared === null || !sameRoute(declared.params, found.params)
    return { kind: 'http', suspect, route: patternOf(route.url, found.params) }
  }

  /** Whether this is the first warning about the HTTP route `route` (for at most 1000 routes). */
  firstWarning (route: string): boolean {
    if (this.warned.has(route) || this.warned.size >= MAX_WARNED_ROUTES) return false
    this.warned.add(route)
    return true
  }
}

/**
 * Whether two routers' matches of one request are the same route, by the
 * names of their params: a static route has none, `/:room` has `room`, `/*`
 * has `*`. (Their values may differ by a trailing slash, which one router ignores.)
 */
function sameRoute (a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a)
  const other = Object.keys(b)
  return keys.length === other.length && keys.every((key, i) => key === other[i])
}

/** `path` with its params' segments named as in the route (`/chat/:room`, `/files/*`). */
function patternOf (path: string, params: Record<string, string | undefined>): string {
  const names = Object.keys(params)
  if (names.length === 0) return path
  let segments = path.split('/')
  const wildcard = params['*']
  if (wildcard !== undefined) segments = [...segments.slice(0, segments.length - wildcard.split('/').length), '*']
  const named = new Map(names.filter((name) => name !== '*').map((name) => [params[name], name]))
  return segments.map((segment) => {
    const name = named.get(decode(segment))
    return name === undefined ? segment : `:${name}`
  }).join('/')
}

function decode (segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
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

/** A path the router takes literally: no params, wildcards, regular expressions, escapes or `;`. */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~/]*$/

function noop (): void {}
