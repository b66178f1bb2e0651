import diagnostics from 'node:diagnostics_channel'
import type { IncomingMessage } from 'node:http'
import type { FastifyRequest } from 'fastify'
import { http } from './builtins.js'
import type { ProtocolError } from './protocol/errors.js'
import type { WebSocket, WebSocketStats } from './socket/websocket.js'

/**
 * The `node:diagnostics_channel` channels the plugin publishes to, named as
 * undici names its own (`undici:request:create`). Subscribe with
 * `diagnostics_channel.subscribe(name, listener)`. Nothing is built or
 * published while a channel has no subscriber.
 */
export const channelNames = {
  /** A WebSocket opened: the 101 (or `:status 200`) is written, the route's handler is about to run. ConnectionOpenMessage. */
  open: 'fastify-rfc6455:connection:open',
  /** A WebSocket's transport closed, whatever the reason. ConnectionCloseMessage. */
  close: 'fastify-rfc6455:connection:close',
  /** A WebSocket failed (RFC 6455 §7.1.7): a protocol error, a limit, a throwing listener. ConnectionErrorMessage. */
  error: 'fastify-rfc6455:connection:error',
  /** An opening handshake was answered with anything but success. HandshakeRefusedMessage. */
  refused: 'fastify-rfc6455:handshake:refused'
} as const

/** What `fastify-rfc6455:connection:open` carries. */
export interface ConnectionOpenMessage {
  /** The socket the route's handler gets. */
  socket: WebSocket
  /** The handshake request, its hooks run. */
  request: FastifyRequest
  /** The route's URL pattern, such as `/chat/:room`. */
  route: string
}

/** What `fastify-rfc6455:connection:close` carries. */
export interface ConnectionCloseMessage {
  /** The socket, now CLOSED. */
  socket: WebSocket
  /** The route's URL pattern, such as `/chat/:room`. */
  route: string
  /** The handshake request's `request.id`. */
  requestId: string
  /** The peer's close code: 1005 when its close frame had none, 1006 when none came or none was read (after a failure, reading stops: RFC 6455 §7.1.5, §7.1.7). */
  code: number
  /** The peer's close reason, '' when none. */
  reason: string
  /**
   * Who sent the first close frame: `'server'` (`close()`, a failure, the app
   * closing), `'client'`, or null when the transport ended without one.
   */
  initiator: 'server' | 'client' | null
  /** Milliseconds from the 101 to the transport's close. */
  duration: number
  /** Messages and bytes each way over the connection's life. */
  stats: WebSocketStats
}

/** What `fastify-rfc6455:connection:error` carries. */
export interface ConnectionErrorMessage {
  /** The socket that failed. */
  socket: WebSocket
  /** The route's URL pattern, such as `/chat/:room`. */
  route: string
  /** The handshake request's `request.id`. */
  requestId: string
  /** The error; `error.cause` holds what a handler, listener or hook threw. */
  error: ProtocolError
  /** `error.code`, such as `WS_ERR_INVALID_UTF8`. */
  code: string
  /** The close code sent, such as 1007. */
  closeCode: number
}

/** What `fastify-rfc6455:handshake:refused` carries. */
export interface HandshakeRefusedMessage {
  /** The handshake request as Node gave it (an HTTP/1.1 upgrade or an HTTP/2 extended CONNECT). */
  request: IncomingMessage
  /** The HTTP status answered, such as 400, 403, 404 or a hook's 401. */
  status: number
  /** Why: the plugin's reason, or the status text when the application answered. */
  reason: string
}

const openChannel = diagnostics.channel(channelNames.open)
const closeChannel = diagnostics.channel(channelNames.close)
const errorChannel = diagnostics.channel(channelNames.error)
const refusedChannel = diagnostics.channel(channelNames.refused)

/** Where a refusal's reason waits on the request until the answer is written. */
const kRefusalReason = Symbol('fastify-rfc6455.refusalReason')
type ReasonedRequest = IncomingMessage & { [kRefusalReason]?: string }

export function publishOpen (socket: WebSocket, request: FastifyRequest): void {
  if (openChannel.hasSubscribers) openChannel.publish({ socket, request, route: socket.route } satisfies ConnectionOpenMessage)
}

export function publishClose (socket: WebSocket, code: number, reason: string, initiator: 'server' | 'client' | null): void {
  if (!closeChannel.hasSubscribers) return
  closeChannel.publish({
    socket,
    route: socket.route,
    requestId: socket.requestId,
    code,
    reason,
    initiator,
    duration: Date.now() - socket.openedAt,
    stats: socket.stats
  } satisfies ConnectionCloseMessage)
}

export function publishError (socket: WebSocket, error: ProtocolError): void {
  if (!errorChannel.hasSubscribers) return
  errorChannel.publish({
    socket, route: socket.route, requestId: socket.requestId, error, code: error.code, closeCode: error.closeCode
  } satisfies ConnectionErrorMessage)
}

/** Keeps the plugin's reason for a refusal answered through the reply, for `publishRefused()` once it is written. */
export function noteRefusal (request: IncomingMessage, reason: string): void {
  (request as ReasonedRequest)[kRefusalReason] = reason
}

/** A handshake was answered with `status`; `reason` defaults to the one noted, else the status text. */
export function publishRefused (request: IncomingMessage, status: number, reason?: string): void {
  if (!refusedChannel.hasSubscribers) return
  const text = reason ?? (request as ReasonedRequest)[kRefusalReason] ?? http.STATUS_CODES[status] ?? ''
  refusedChannel.publish({ request, status, reason: text } satisfies HandshakeRefusedMessage)
}
