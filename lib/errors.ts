/**
 * Errors this plugin throws at the application, each with a stable `code`
 * (`FST_WS_*`, in the style of Fastify's own `FST_ERR_*`). Errors found on the
 * wire are ProtocolErrors (`WS_ERR_*`, lib/protocol/errors.ts), which carry
 * the close code instead.
 */
import { Buffer } from 'node:buffer'

export class FastifyWebSocketError extends Error {
  readonly code: string

  constructor (code: string, message: string) {
    super(message)
    this.name = 'FastifyWebSocketError'
    this.code = code
  }
}

/** A `ws: true` route declared with a method other than GET (RFC 6455 §4.1: the handshake is a GET). */
export function routeMethodError (method: string, url: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_ROUTE_METHOD', `WebSocket route ${method} ${url}: only GET routes may set ws: true`)
}

/** A `ws: true` route without a WebSocket handler. */
export function routeHandlerError (url: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_ROUTE_HANDLER', `WebSocket route GET ${url}: wsHandler must be a function`)
}

/** A close code an application may not send (RFC 6455 §7.4.1, §7.4.2). */
export function closeCodeError (code: unknown): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_CLOSE_CODE', `invalid close code ${String(code)}: use 1000-1003, 1007-1014 or 3000-4999`)
}

/** A close reason over 123 bytes, or given without a code (RFC 6455 §5.5, §7.1.6). */
export function closeReasonError (message: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_CLOSE_REASON', message)
}

/** A ping or pong payload over 125 bytes (RFC 6455 §5.5). */
export function controlPayloadError (): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_CONTROL_PAYLOAD_TOO_LONG', 'ping and pong payloads are at most 125 bytes')
}

/** `send()` given something other than a string, Buffer, ArrayBuffer or ArrayBufferView. */
export function sendDataError (): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_DATA',
    'send() takes a string, a Buffer, an ArrayBuffer or a TypedArray/DataView; sendJSON() a value JSON.stringify turns into a string')
}

/** A subprotocol chooser that returned a name the client did not offer (RFC 6455 §4.2.2). */
export function protocolChoiceError (chosen: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_PROTOCOL_CHOICE', `chosen subprotocol "${chosen}" was not offered by the client`)
}

/**
 * An option of the plugin, or of the `ws: { ... }` of the route at `url`, of
 * the wrong type or out of range: `path` names it (`perMessageDeflate.level`),
 * `value` is the value given as shown to a person, `allowed` what it must be.
 */
export function invalidOptionError (path: string, value: string, allowed: string, url: string | undefined): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_OPTION', `${optionScope(url)}option ${path} is ${value}; it must be ${allowed}`)
}

/** An option name the plugin does not know (a typo, or a plugin-only option on a route); `allowed` lists the known ones. */
export function unknownOptionError (path: string, value: string, allowed: string, url: string | undefined): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_UNKNOWN_OPTION', `${optionScope(url)}unknown option ${path} (given ${value}); the options are ${allowed}`)
}

function optionScope (url: string | undefined): string {
  return url === undefined ? 'fastify-rfc6455: ' : `WebSocket route GET ${url}: `
}

/** A topic that is not a string of at most `max` bytes of UTF-8. */
export function topicError (topic: unknown, max: number): FastifyWebSocketError {
  const shown = typeof topic === 'string' ? `a string of ${Buffer.byteLength(topic)} bytes` : typeof topic
  return new FastifyWebSocketError('FST_WS_INVALID_TOPIC', `invalid topic (${shown}): a topic is a string of at most ${max} bytes of UTF-8`)
}

/**
 * A WebSocket handshake to a GET route that is no WebSocket route: logged, as
 * the likely cause is a route declared with `ws: true` before the plugin was
 * registered, which Fastify then keeps as a plain HTTP route.
 */
export function notWebSocketRouteError (url: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_NOT_WEBSOCKET_ROUTE', `WebSocket handshake to GET ${url}, an HTTP route: ` +
    'a route declared with ws: true is a WebSocket route only if fastify-rfc6455 was registered, and awaited, before it ' +
    '(await app.register(fastifyRfc6455), then declare the routes)')
}

/**
 * `app.injectWS()` refused: the handshake was answered with an HTTP status
 * other than 101 (a hook's 401, 404 for a path with no WebSocket route, 426,
 * 403 for a refused origin...). `statusCode`, `headers` (names in lower case)
 * and `body` (as UTF-8 text) are the answer's; `statusCode` is 0 when the
 * server's end closed with no answer.
 */
export class HandshakeRefusedError extends FastifyWebSocketError {
  readonly statusCode: number
  readonly headers: Record<string, string>
  readonly body: string

  constructor (statusCode: number, headers: Record<string, string>, body: string) {
    super('FST_WS_HANDSHAKE_REFUSED', `WebSocket handshake refused with ${statusCode}${body === '' ? '' : `: ${body}`}`)
    this.name = 'HandshakeRefusedError'
    this.statusCode = statusCode
    this.headers = headers
    this.body = body
  }
}

/** Longest client-derived string (a path, an origin, a validation message) the plugin puts in a log line, in UTF-16 code units. */
export const MAX_LOGGED_TEXT = 200

/**
 * `text` as the plugin logs a string a client chose: at most
 * MAX_LOGGED_TEXT code units, a cut one ending in '…' and its full length,
 * so that a 900,000-character JSON key or path makes a short log line.
 */
export function bounded (text: string): string {
  if (text.length <= MAX_LOGGED_TEXT) return text
  return `${text.slice(0, MAX_LOGGED_TEXT)}… (${text.length} characters)`
}

/**
 * A publish whose payload is over `maxPublishPayload` bytes: refused before
 * any socket or the broker sees it (a Redis subscriber whose output buffer
 * passes `client-output-buffer-limit pubsub` is disconnected by Redis).
 */
export function publishSizeError (bytes: number, max: number): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_PUBLISH_TOO_LARGE', `publish of ${bytes} bytes refused: maxPublishPayload is ${max} bytes`)
}

/** `subscribe()` on a socket that holds `max` topics already (the `maxTopics` option). */
export function topicLimitError (max: number): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_TOO_MANY_TOPICS', `subscribe refused: this socket is subscribed to maxTopics (${max}) topics already`)
}
