import { type IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteGenericInterface } from 'fastify'
import { Connection } from './connection.js'
import { protocolChoiceError } from './errors.js'
import type { ResolvedOptions } from './options.js'
import { negotiateDeflate, PerMessageDeflate } from './protocol/permessage-deflate.js'
import {
  type HandshakeRefusal, isRefusal, refusalResponse, switchingProtocols, validateHandshake
} from './protocol/handshake.js'
import type { RouteMatcher } from './route.js'
import { WebSocket } from './websocket.js'

/** What the upgrade listener leaves on the request for the route handler. */
interface PendingUpgrade {
  socket: Socket
  /** Bytes read past the handshake: the start of the first frames. */
  head: Buffer
}

const kUpgrade = Symbol('fastify-rfc6455.upgrade')

type UpgradeRequest = IncomingMessage & { [kUpgrade]?: PendingUpgrade }

/**
 * A `ws: true` route's handler, called once the 101 is written. `this` is the
 * Fastify instance the route was declared in; `request` is the handshake
 * request, hooks run. A throw or a rejection closes the connection with 1011
 * and is logged through `request.log`.
 */
export type WebSocketHandler<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> =
  (this: FastifyInstance, socket: WebSocket, request: FastifyRequest<RouteGeneric>) => void | Promise<void>

/**
 * The server's `upgrade` listener. An upgrade whose path matches a `ws: true`
 * route goes through Fastify's router, so that params, prefixes and the
 * route's `onRequest`/`preValidation`/`preHandler` hooks run before the 101
 * and may answer over plain HTTP. Any other upgrade is left to the server's
 * other `upgrade` listeners, or answered 404 when there are none.
 */
export function createUpgradeListener (fastify: FastifyInstance, matcher: RouteMatcher) {
  const server = fastify.server
  return function onUpgrade (request: UpgradeRequest, duplex: Duplex, head: Buffer): void {
    const socket = duplex as Socket
    // Node removed its own error listener before emitting 'upgrade': without
    // one, a reset would crash the process, whichever listener takes the socket.
    socket.on('error', ignore)
    if (!matcher.matches(request)) {
      if (server.listenerCount('upgrade') > 1) return
      fastify.log.info({ url: request.url }, 'WebSocket handshake refused: no WebSocket route')
      refuse(socket, { status: 404, headers: {}, reason: 'Not Found' })
      return
    }
    if (request.method !== 'GET') {
      fastify.log.info({ method: request.method, url: request.url }, 'WebSocket handshake refused: method is not GET')
      refuse(socket, { status: 405, headers: { allow: 'GET' }, reason: 'WebSocket handshake must use GET' })
      return
    }
    request[kUpgrade] = { socket, head }
    const response = new ServerResponse(request)
    response.shouldKeepAlive = false
    response.assignSocket(socket)
    response.on('finish', () => {
      // A hook or a refusal answered over HTTP: that is the last thing on this connection.
      response.detachSocket(socket)
      endSoon(socket)
    })
    fastify.routing(request, response)
  }
}

/**
 * The handler installed on a `ws: true` GET route: completes the handshake of
 * an upgrade request, or answers a plain request with the route's HTTP
 * handler, or with 426 when it has none.
 */
export function webSocketRouteHandler (
  wsHandler: WebSocketHandler,
  httpHandler: ((this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) => unknown) | undefined,
  options: ResolvedOptions,
  registry: Set<WebSocket>
) {
  return function handler (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): unknown {
    const upgrade = (request.raw as UpgradeRequest)[kUpgrade]
    if (upgrade === undefined) {
      if (httpHandler !== undefined) return httpHandler.call(this, request, reply)
      // Node emits 'upgrade' only with a Connection: Upgrade token, so a
      // handshake without one arrives here: refuse it as the handshake it is.
      if (request.headers.upgrade !== undefined) {
        const handshake = validateHandshake(request.raw)
        if (isRefusal(handshake)) return refuseWithReply(request, reply, handshake)
      }
      return upgradeRequired(reply)
    }
    accept(this, request, reply, upgrade, wsHandler, options, registry)
    return reply
  }
}

/** 426 for a plain HTTP request to a WebSocket-only route (RFC 7231 §6.5.15, RFC 6455 §4.2.2). */
export function upgradeRequired (reply: FastifyReply): FastifyReply {
  return reply.code(426)
    .header('upgrade', 'websocket')
    .header('connection', 'Upgrade')
    .header('sec-websocket-version', '13')
    .type('text/plain; charset=utf-8')
    .send('Upgrade Required: this route speaks WebSocket (RFC 6455)')
}

function accept (
  instance: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  upgrade: PendingUpgrade,
  wsHandler: WebSocketHandler,
  options: ResolvedOptions,
  registry: Set<WebSocket>
): void {
  const handshake = validateHandshake(request.raw)
  if (isRefusal(handshake)) {
    refuseWithReply(request, reply, handshake)
    return
  }
  const origin = request.headers.origin
  if (options.origin !== undefined && !originAllowed(options.origin, origin, request)) {
    refuseWithReply(request, reply, { status: 403, headers: {}, reason: 'Origin not allowed' })
    return
  }
  const socket = upgrade.socket
  if (!socket.writable) {
    // The client went away while hooks ran: there is no one to answer.
    reply.hijack()
    request.log.info('WebSocket handshake abandoned: the connection closed before the 101')
    return
  }
  const protocol = chooseProtocol(options.protocols, handshake.protocols, request)
  const negotiated = options.perMessageDeflate === null ? null : negotiateDeflate(handshake.extensions, options.perMessageDeflate)
  const deflate = negotiated === null
    ? null
    : new PerMessageDeflate(negotiated.params, options.perMessageDeflate ?? {}, options.maxPayload)
  const extensions = negotiated?.response ?? ''
  reply.hijack()
  reply.raw.detachSocket(socket)
  socket.write(switchingProtocols(handshake.accept, protocol, extensions))
  const ws = new WebSocket(protocol ?? '', extensions, request.log, registry)
  ws.attach(new Connection(socket, ws, options, deflate))
  try {
    const result = wsHandler.call(instance, ws, request)
    if (result !== undefined && typeof result.then === 'function') result.then(undefined, (error: unknown) => ws.fail(error))
  } catch (error) {
    ws.fail(error)
  }
  if (upgrade.head.length > 0) ws.receive(upgrade.head)
}

function originAllowed (check: NonNullable<ResolvedOptions['origin']>, origin: string | undefined, request: FastifyRequest): boolean {
  if (typeof check === 'function') return check(origin, request)
  return origin === undefined || check.includes(origin)
}

function chooseProtocol (choice: ResolvedOptions['protocols'], offered: string[], request: FastifyRequest): string | undefined {
  if (choice === undefined || offered.length === 0) return undefined
  if (typeof choice !== 'function') return offered.find((name) => choice.includes(name))
  const chosen = choice(offered, request)
  if (chosen !== undefined && !offered.includes(chosen)) throw protocolChoiceError(chosen)
  return chosen
}

function refuseWithReply (request: FastifyRequest, reply: FastifyReply, refusal: HandshakeRefusal): FastifyReply {
  request.log.info({ statusCode: refusal.status }, `WebSocket handshake refused: ${refusal.reason}`)
  // "When Upgrade is sent, the sender MUST also send a Connection header field
  // that contains an 'upgrade' connection option" (RFC 7230 §6.7).
  const connection = 'upgrade' in refusal.headers ? 'Upgrade, close' : 'close'
  return reply.code(refusal.status).headers({ ...refusal.headers, connection })
    .type('text/plain; charset=utf-8').send(refusal.reason)
}

/** Writes a refusal straight to a socket that left the HTTP server, then ends it. */
function refuse (socket: Socket, refusal: HandshakeRefusal): void {
  socket.write(refusalResponse(refusal))
  endSoon(socket)
}

/**
 * Ends the socket after an HTTP answer: reads on (and discards) so that the
 * peer's FIN is seen, destroys it then, or 5 s later if the peer stays.
 */
function endSoon (socket: Socket): void {
  socket.once('end', () => socket.destroy())
  socket.resume()
  socket.end()
  setTimeout(() => socket.destroy(), 5000).unref()
}

function ignore (): void {}
