import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteGenericInterface } from 'fastify'
import { Connection } from '../transport/connection.js'
import { noteRefusal, publishOpen, publishRefused } from '../diagnostics.js'
import { bounded, notWebSocketRouteError, protocolChoiceError } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import { http } from '../builtins.js'
import { negotiateDeflate, PerMessageDeflate } from '../protocol/permessage-deflate.js'
import {
  type HandshakeAccept, type HandshakeOffer, type HandshakeRefusal, isRefusal, refusalResponse, switchingProtocols,
  validateHandshake
} from '../protocol/handshake.js'
import type { RouteLookup, RouteMatcher } from './matcher.js'
import { checkOrigin, pathOf, sameHost } from './origin.js'
import { TcpTransport, type MemoryTransport, type Transport } from '../transport/transport.js'
import { compileSendSchema, createPipeline } from '../socket/messages.js'
import { type SocketOwner, WebSocket } from '../socket/websocket.js'

/**
 * What the listener that took a handshake leaves on the request for the
 * route handler: the HTTP/1.1 upgrade here, the HTTP/2 extended CONNECT in
 * lib/http2.ts. How the handshake is checked and answered is all that differs.
 */
export interface PendingHandshake {
  /** Checks the request's handshake headers (RFC 6455 §4.2.1, or RFC 8441 §4-5). */
  validate (request: IncomingMessage): HandshakeOffer | HandshakeRefusal
  /** Whether the client can still be answered (it may have gone while hooks ran). */
  readonly answerable: boolean
  /**
   * Answers the handshake validated last with success (101, or `:status 200`)
   * with the chosen subprotocol and extensions ('' for none), and gives the
   * transport the WebSocket runs on. `response` has left Fastify (hijacked).
   */
  open (response: FastifyReply['raw'], protocol: string | undefined, extensions: string): Transport
  /** Bytes read past the handshake: the start of the first frames. */
  readonly head: Buffer
}

export const kHandshake = Symbol('fastify-rfc6455.handshake')

export type HandshakeRequest = IncomingMessage & { [kHandshake]?: PendingHandshake }

/**
 * An HTTP/1.1 upgrade (RFC 6455 §4): answered with a 101 written to the
 * transport's byte stream, a TCP socket taken over from the HTTP server or
 * the server's end of an in-memory pair (`app.injectWS()`).
 */
export class UpgradeHandshake implements PendingHandshake {
  readonly socket: Socket
  readonly head: Buffer
  private readonly transport: TcpTransport | MemoryTransport
  private accept = ''

  constructor (transport: TcpTransport | MemoryTransport, head: Buffer) {
    this.transport = transport
    // Both are the socket a ServerResponse writes to.
    this.socket = transport.stream as Socket
    this.head = head
  }

  validate (request: IncomingMessage): HandshakeAccept | HandshakeRefusal {
    const handshake = validateHandshake(request)
    if (!isRefusal(handshake)) this.accept = handshake.accept
    return handshake
  }

  get answerable (): boolean {
    return this.socket.writable
  }

  open (response: FastifyReply['raw'], protocol: string | undefined, extensions: string): Transport {
    (response as ServerResponse).detachSocket(this.socket)
    this.socket.write(switchingProtocols(this.accept, protocol, extensions))
    return this.transport
  }
}

/**
 * A `ws: true` route's handler, called once the 101 is written. `this` is the
 * Fastify instance the route was declared in; `request` is the handshake
 * request, hooks run. The return value is ignored, except that a promise's
 * rejection, like a throw, closes the connection with 1011 and is logged
 * through `request.log`: `(socket) => socket.send('hi')` and async handlers
 * both fit.
 *
 * A route declaration types its handler itself; to declare one apart, give
 * the generics: `RouteGeneric`, the route's `{ Params, Querystring, Headers }`;
 * `Message`, what the socket's messages carry: a Buffer, or on a route with
 * `messages: 'json'` the parsed value (`unknown`, or the type of its
 * `schema.message`), so `WebSocketHandler<RouteGenericInterface, unknown>`
 * for a JSON route without a schema; `Send`, what `sendJSON()` takes (the
 * type of `schema.send`); `Request`, the request (FastifyRequest of the route
 * generic by default; with a type provider, the route's request as
 * `FastifyRequest<RouteGeneric, RawServer, RawRequest, Schema, TypeProvider>`).
 */
export type WebSocketHandler<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, Message = Buffer, Send = unknown,
  Request = FastifyRequest<RouteGeneric>> =
  (this: FastifyInstance, socket: WebSocket<Message, Send>, request: Request) => unknown

/**
 * The server's `upgrade` listener. An upgrade whose path matches a `ws: true`
 * route, with GET and an allowed origin (checked here, before any hook:
 * lib/handshake/origin.ts), goes through Fastify's router, so that params,
 * prefixes and the route's `onRequest`/`preValidation`/`preHandler` hooks
 * run before the 101 and may answer over plain HTTP. Any other upgrade is
 * left to the server's other `upgrade` listeners, or answered 404 when there
 * are none.
 */
export function createUpgradeListener (fastify: FastifyInstance, matcher: RouteMatcher) {
  const server = fastify.server
  return function onUpgrade (request: HandshakeRequest, duplex: Duplex, head: Buffer): void {
    const socket = duplex as Socket
    // Node removed its own error listener before emitting 'upgrade': without
    // one, a reset would crash the process, whichever listener takes the socket.
    socket.on('error', ignore)
    const lookup = matcher.lookup(fastify, request)
    if (lookup.kind !== 'websocket') {
      if (server.listenerCount('upgrade') > 1) return
      refuse(request, socket, notFound(fastify, matcher, request, lookup))
      return
    }
    if (request.method !== 'GET') {
      fastify.log.info({ method: bounded(request.method ?? ''), path: pathOf(request) }, 'WebSocket handshake refused: method is not GET')
      refuse(request, socket, { status: 405, headers: { allow: 'GET' }, reason: 'WebSocket handshake must use GET' })
      return
    }
    checkOrigin(lookup.policies, request, fastify.log, () => {
      const response = new http.ServerResponse(request)
      response.shouldKeepAlive = false
      try {
        response.assignSocket(socket)
      } catch (error) {
        // Another 'upgrade' listener of the app answers this socket (ERR_HTTP_SOCKET_ASSIGNED): it is theirs.
        fastify.log.warn({ code: (error as { code?: unknown }).code, path: pathOf(request) }, "WebSocket handshake left to another 'upgrade' listener, which took the socket")
        return
      }
      request[kHandshake] = new UpgradeHandshake(new TcpTransport(socket), head)
      response.on('finish', answeredOverHttp)
      fastify.routing(request, response)
    }, (refusal) => refuse(request, socket, refusal))
  }
}

/**
 * 'finish' of an upgrade's ServerResponse: a hook or a refusal answered over
 * HTTP, the last thing on this connection. One function for all, no closure per handshake.
 */
function answeredOverHttp (this: ServerResponse): void {
  const socket = ((this.req as HandshakeRequest)[kHandshake] as UpgradeHandshake).socket
  this.detachSocket(socket)
  endSoon(socket)
  publishRefused(this.req, this.statusCode)
}

/**
 * The 404 of a handshake to a path no `ws: true` route takes (`lookup`),
 * logged with the code FST_WS_NOT_WEBSOCKET_ROUTE when an HTTP route takes
 * it: at warn level, once per route and without a stack, when that route
 * could have been meant as a WebSocket route (see RouteLookup), else at
 * debug level, as any client can send such a request. A path no route takes
 * logs at info level, as Fastify logs its own 404s.
 */
export function notFound (fastify: FastifyInstance, matcher: RouteMatcher, request: IncomingMessage, lookup: RouteLookup): HandshakeRefusal {
  const path = pathOf(request)
  if (lookup.kind === 'http') {
    // Fastify keeps no route options, so this is where a misregistration shows.
    const error = notWebSocketRouteError(path, lookup.suspect)
    if (lookup.suspect && matcher.firstWarning(lookup.route)) fastify.log.warn({ code: error.code, path, route: lookup.route }, error.message)
    else fastify.log.debug({ code: error.code, path, route: lookup.route }, error.message)
  } else {
    fastify.log.info({ path }, 'WebSocket handshake refused: no WebSocket route')
  }
  return { status: 404, headers: {}, reason: 'Not Found' }
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
  owner: SocketOwner
) {
  return function handler (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): unknown {
    const upgrade = (request.raw as HandshakeRequest)[kHandshake]
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
    return accept(this, request, reply, upgrade, wsHandler, options, owner) ?? reply
  }
}

/**
 * 426 for a plain HTTP request to a WebSocket-only route (RFC 7231 §6.5.15,
 * RFC 6455 §4.2.2). Over HTTP/2, which forbids `Upgrade` and `Connection`
 * (RFC 7540 §8.1.2.2), only `Sec-WebSocket-Version` says how to come back.
 */
export function upgradeRequired (reply: FastifyReply): FastifyReply {
  if (!isHttp2(reply.request.raw)) reply.header('upgrade', 'websocket').header('connection', 'Upgrade')
  return reply.code(426)
    .header('sec-websocket-version', '13')
    .type('text/plain; charset=utf-8')
    .send('Upgrade Required: this route speaks WebSocket (RFC 6455)')
}

/** Whether a request came over HTTP/2: `request.raw.httpVersion` '2.0', which is also how an app tells a socket's transport. */
function isHttp2 (request: IncomingMessage): boolean {
  return request.httpVersionMajor === 2
}

/**
 * Checks the handshake's headers, ends the same-host origin check (see
 * lib/handshake/origin.ts), chooses the subprotocol, then answers the
 * handshake (101 over HTTP/1.1, `:status 200` over HTTP/2) and calls the
 * handler. Returns a promise when the subprotocol chooser returned one:
 * Fastify awaits it, and answers its rejection (as a throw) with 500 through
 * the app's error handling, as for any route.
 */
function accept (
  instance: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  upgrade: PendingHandshake,
  wsHandler: WebSocketHandler,
  options: ResolvedOptions,
  owner: SocketOwner
): Promise<void> | undefined {
  const handshake = upgrade.validate(request.raw)
  if (isRefusal(handshake)) {
    refuseWithReply(request, reply, handshake)
    return
  }
  // Before the answer: a schema.message the validator compiler refuses fails the handshake (500).
  const pipeline = createPipeline(options, request)
  const sendValidator = compileSendSchema(options.sendSchema, request)
  const start = (protocol: string | undefined): undefined => {
    if (protocol !== undefined && !handshake.protocols.includes(protocol)) throw protocolChoiceError(protocol)
    if (!upgrade.answerable) {
      // The client went away while hooks ran: there is no one to answer.
      reply.hijack()
      request.log.info('WebSocket handshake abandoned: the connection closed before the answer')
      return
    }
    const negotiated = options.perMessageDeflate === null ? null : negotiateDeflate(handshake.extensions, options.perMessageDeflate)
    const deflate = negotiated === null
      ? null
      : new PerMessageDeflate(negotiated.params, options.perMessageDeflate ?? {}, options.maxPayload)
    const extensions = negotiated?.response ?? ''
    reply.hijack()
    const transport = upgrade.open(reply.raw, protocol, extensions)
    const ws = new WebSocket(protocol ?? '', extensions, request, owner)
    ws.usePipeline(pipeline, sendValidator)
    ws.attach(new Connection(transport, ws, options, deflate))
    publishOpen(ws, request)
    try {
      const result = wsHandler.call(instance, ws, request)
      if (isThenable(result)) result.then(undefined, (error: unknown) => ws.fail(error))
    } catch (error) {
      ws.fail(error)
    }
    if (upgrade.head.length > 0) ws.receive(upgrade.head)
  }
  // The listener checked the origin before routing; the same-host rule is
  // finished here, where Fastify's trustProxy says which host is the request's.
  const origin = request.headers.origin
  if (options.origin === undefined && origin !== undefined && !sameHost(origin, request)) {
    refuseWithReply(request, reply, { status: 403, headers: {}, reason: 'Origin not allowed' })
    return
  }
  return whenSettled(chooseProtocol(options.protocols, handshake.protocols, request), start)
}

/** Whether an application's function returned a promise (or another thenable). */
function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function'
}

/** `next(value)` now, or once `value` has settled when it is a promise: the application's callbacks may be async. */
function whenSettled<T> (value: T | PromiseLike<T>, next: (value: T) => Promise<void> | undefined): Promise<void> | undefined {
  return isThenable(value) ? Promise.resolve(value as PromiseLike<T>).then(next) : next(value as T)
}

/** A subprotocol from the list, or the chooser's answer (checked by the caller once settled). */
function chooseProtocol (choice: ResolvedOptions['protocols'], offered: string[], request: FastifyRequest): string | undefined | PromiseLike<string | undefined> {
  if (choice === undefined || offered.length === 0) return undefined
  if (typeof choice !== 'function') return offered.find((name) => choice.includes(name))
  return choice(offered, request)
}

function refuseWithReply (request: FastifyRequest, reply: FastifyReply, refusal: HandshakeRefusal): FastifyReply {
  request.log.info({ statusCode: refusal.status }, `WebSocket handshake refused: ${refusal.reason}`)
  // A handshake Node took for plain HTTP (no `Connection: Upgrade`) has no listener waiting for its answer.
  if ((request.raw as HandshakeRequest)[kHandshake] === undefined) publishRefused(request.raw, refusal.status, refusal.reason)
  else noteRefusal(request.raw, refusal.reason)
  // Over HTTP/2 the stream ends with the answer; the connection carries on.
  if (isHttp2(request.raw)) {
    return reply.code(refusal.status).headers(refusal.headers).type('text/plain; charset=utf-8').send(refusal.reason)
  }
  // "When Upgrade is sent, the sender MUST also send a Connection header field
  // that contains an 'upgrade' connection option" (RFC 7230 §6.7).
  const connection = 'upgrade' in refusal.headers ? 'Upgrade, close' : 'close'
  return reply.code(refusal.status).headers({ ...refusal.headers, connection })
    .type('text/plain; charset=utf-8').send(refusal.reason)
}

/** Writes a refusal straight to a socket that left the HTTP server, then ends it. */
function refuse (request: IncomingMessage, socket: Socket, refusal: HandshakeRefusal): void {
  socket.write(refusalResponse(refusal))
  endSoon(socket)
  publishRefused(request, refusal.status, refusal.reason)
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
