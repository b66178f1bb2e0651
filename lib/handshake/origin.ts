import type { IncomingMessage } from 'node:http'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { HandshakeRefusal } from '../protocol/handshake.js'
import type { OriginPolicy } from './matcher.js'
import { bounded } from '../errors.js'

/**
 * The origin check of a handshake (RFC 6455 §4.2.2, §10.2), made by the
 * listener that took it (HTTP/1.1 upgrade, HTTP/2 extended CONNECT,
 * `injectWS`) before Fastify routes the request: a refused cross-site
 * handshake runs none of the route's hooks (`onRequest`, `preValidation`,
 * `preHandler`, the app's and its plugins' alike), whose side effects a page
 * of another site could otherwise trigger with the user's cookies
 * (cross-site WebSocket hijacking). `policies`: those of the routes the
 * request matches, each of which must allow it.
 *
 * Calls `allowed()` when every policy allows the handshake, now or once an
 * async check has settled; `refused(refusal)` otherwise: 403 for a refused
 * origin, 500 when a check throws or rejects (logged at error level).
 */
export function checkOrigin (
  policies: OriginPolicy[], request: IncomingMessage, log: FastifyBaseLogger,
  allowed: () => void, refused: (refusal: HandshakeRefusal) => void
): void {
  const origin = request.headers.origin
  const failed = (err: unknown): void => {
    log.error({ err, path: pathOf(request) }, 'WebSocket handshake refused: the origin check failed')
    refused({ status: 500, headers: {}, reason: 'Internal Server Error' })
  }
  const decide = (answers: boolean[]): void => {
    if (answers.every((answer) => answer)) {
      allowed()
      return
    }
    log.info({ statusCode: 403, path: pathOf(request), origin: bounded(String(origin)) }, 'WebSocket handshake refused: Origin not allowed')
    refused(FORBIDDEN)
  }
  let answers: Array<boolean | PromiseLike<boolean>>
  try {
    answers = policies.map((policy) => allowedBy(policy, origin, request))
  } catch (err) {
    failed(err)
    return
  }
  if (answers.every((answer) => typeof answer === 'boolean')) decide(answers as boolean[])
  else Promise.all(answers).then(decide, failed)
}

const FORBIDDEN: HandshakeRefusal = { status: 403, headers: {}, reason: 'Origin not allowed' }

/**
 * One policy's answer. The same-host default allows an `Origin` whose host
 * and port are those of the `Host` header (`:authority` over HTTP/2) or of
 * the last `X-Forwarded-Host` entry: a browser page of another site can set
 * neither. Which of the two is the request's host depends on Fastify's
 * `trustProxy`, which only the route knows: the route handler checks the
 * exact rule (`sameHost`) once routed. Every other policy is decided here.
 */
function allowedBy (policy: OriginPolicy, origin: string | undefined, request: IncomingMessage): boolean | PromiseLike<boolean> {
  if (policy === '*' || policy === true) return true
  if (typeof policy === 'function') return policy(origin, request)
  if (origin === undefined) return true
  if (policy !== undefined) return policy.includes(origin)
  const host = request.headers.host ?? request.headers[':authority']
  if (typeof host === 'string' && originOnHost(origin, host)) return true
  const forwarded = request.headers['x-forwarded-host']
  return typeof forwarded === 'string' && originOnHost(origin, forwarded.slice(forwarded.lastIndexOf(',') + 1).trim())
}

/**
 * Whether `origin` names the host the request was sent to, as Fastify
 * reads it: `request.hostname` and `request.port` (the `Host` header, or
 * `X-Forwarded-Host` behind a trusted proxy). See `originMatches`.
 */
export function sameHost (origin: string, request: FastifyRequest): boolean {
  return originMatches(origin, request.hostname, request.port)
}

/** `originMatches` against a `Host` value: `name[:port]`, `[v6][:port]`. */
function originOnHost (origin: string, host: string): boolean {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':') === -1 ? host.length : host.indexOf(':')
  const port = host.slice(end + 1)
  return originMatches(origin, host.slice(0, end), port === '' ? null : Number(port))
}

/** Default ports of the schemes an `Origin` carries (RFC 6454 §4: the URL parser leaves them out). */
const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 }

/**
 * Whether `origin` is on `hostname` and `port`, whatever the scheme. Host
 * names compare case-insensitively. A host without a port matches an origin
 * without one (on its scheme's default port); a host with a port, an origin
 * on that port, written out or its scheme's default (`app.example:443`
 * matches `https://app.example`). An `Origin` that is not a URL ('null')
 * never matches.
 */
function originMatches (origin: string, hostname: string, port: number | null): boolean {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false
  }
  if (url.hostname !== hostname.toLowerCase()) return false
  if (port === null) return url.port === ''
  return port === (url.port === '' ? DEFAULT_PORTS[url.protocol] : Number(url.port))
}

/** The request-target without its query, cut for a log line. */
export function pathOf (request: IncomingMessage): string {
  const url = request.url ?? '/'
  const query = url.indexOf('?')
  return bounded(query === -1 ? url : url.slice(0, query))
}
