/**
 * Errors this plugin throws at the application, each with a stable `code`
 * (`FST_WS_*`, in the style of Fastify's own `FST_ERR_*`). Errors found on the
 * wire are ProtocolErrors (`WS_ERR_*`, lib/protocol/errors.ts), which carry
 * the close code instead.
 */
import { Buffer } from 'node:buffer'

/**
 * An error thrown at the application's code: at startup for a bad option or
 * route, or by a call given a bad argument (`socket.close(999)`,
 * `send(undefined)`). Never carries a close code: nothing was sent.
 */
export class FastifyWebSocketError extends Error {
  /** A stable `FST_WS_*` string, such as `FST_WS_INVALID_OPTION`; the message says more and may change. */
  readonly code: string

  /** `options.cause`: the error that led to this one (a Redis client's, for FST_WS_REDIS_CONNECT). */
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
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

/**
 * A route declared with `websocket: true` (@fastify/websocket's option) or
 * with `wsHandler` but without `ws`: Fastify would keep it as a plain HTTP route.
 */
export function routeWsMissingError (url: string, given: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_ROUTE_WS_MISSING', `route ${url} has ${given} but no ws: did you mean \`ws: true\`? ` +
    '(fastify-rfc6455 takes ws: true or ws: { ...options }; fastify-rfc6455/compat takes @fastify/websocket\'s route options)')
}

/**
 * A later registration of the plugin on the same server with a `broker` or a
 * `heartbeatInterval` other than the first's: those two serve the whole
 * server, the other options apply to the registration's scope.
 */
export function serverOptionError (name: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_SERVER_OPTION', `fastify-rfc6455 is already registered on this server with another ${name}: ` +
    `${name} serves every route of the server and comes from the first registration; a later registration (in a child or sibling ` +
    'plugin) may set only the options of its routes (maxPayload, origin, protocols...)')
}

/** A broker given to a second app, or to an app after the one it served closed. */
export function brokerStartedError (): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_BROKER_STARTED', 'this broker was already started by an app: a broker serves one app ' +
    'once (its start() and close() are called once); create a new broker for each app, and after app.close()')
}

/** A close code an application may not send (RFC 6455 §7.4.1, §7.4.2). */
export function closeCodeError (code: unknown): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_CLOSE_CODE', `invalid close code ${String(code)}: use 1000-1003, 1007-1014 or 3000-4999`)
}

/** A close reason over 123 bytes, or given without a code (RFC 6455 §5.5, §7.1.6). */
export function closeReasonError (message: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_CLOSE_REASON', message)
}

/** A `closeAt()` time that is neither a valid Date nor a finite number of milliseconds since the epoch. */
export function closeTimeError (time: unknown): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_CLOSE_TIME', `invalid close time ${String(time)}: use a Date, a number of milliseconds since the epoch, or null`)
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
 * A WebSocket handshake to a GET route that is no WebSocket route, logged
 * (not thrown). `suspect`: the route could have been meant as one, the
 * likely cause being a route declared with `ws: true` before the plugin was
 * registered, which Fastify then keeps as a plain HTTP route.
 */
export function notWebSocketRouteError (url: string, suspect: boolean): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_NOT_WEBSOCKET_ROUTE', suspect
    ? `WebSocket handshake to GET ${url}, an HTTP route: ` +
      'a route declared with ws: true is a WebSocket route only if fastify-rfc6455 was registered, and awaited, before it ' +
      '(await app.register(fastifyRfc6455), then declare the routes), and an HTTP route takes a path before a WebSocket route ' +
      'that matches it less closely'
    : `WebSocket handshake refused: GET ${url} is an HTTP route`)
}

/**
 * `app.injectWS()` refused: the handshake was answered with an HTTP status
 * other than 101 (a hook's 401, 404 for a path with no WebSocket route, 426,
 * 403 for a refused origin...). `statusCode`, `headers` (names in lower case)
 * and `body` (as UTF-8 text) are the answer's; `statusCode` is 0 when the
 * server's end closed with no answer.
 */
export class HandshakeRefusedError extends FastifyWebSocketError {
  /** The HTTP status of the answer, such as 401, 403 or 404. */
  readonly statusCode: number
  /** The answer's headers, names in lowercase. */
  readonly headers: Record<string, string>
  /** The answer's body as text, `''` when none. */
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
 * A topic's history could not be written or read (the broker is down, or
 * answered with an error, `cause`): a publish to a history topic that then
 * reached no subscriber, or a resume that did not subscribe.
 */
export function historyUnavailableError (topic: string, cause: unknown): FastifyWebSocketError {
  const error = new FastifyWebSocketError('FST_WS_HISTORY_UNAVAILABLE',
    `the history of topic ${JSON.stringify(bounded(topic))} is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`)
  error.cause = cause
  return error
}

/** `publishStored()` to a topic the `history` option gives no history. */
export function noHistoryError (topic: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_NO_HISTORY',
    `topic ${JSON.stringify(bounded(topic))} has no history (the plugin's history option gives it none): use publish()`)
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

/** A join (`socket.track()`) past the `presence` option's `maxMembers` members of a topic. */
export function presenceFullError (topic: string, max: number): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_PRESENCE_FULL',
    `topic ${JSON.stringify(bounded(topic))} already has ${max} members present (the presence option's maxMembers)`)
}

/** Presence info (`socket.track()`) that is not JSON-serialisable or is over the `presence` option's `maxInfoBytes`. */
export function presenceInfoError (why: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_PRESENCE_INFO', `presence info ${why}`)
}

/** The presence store (Redis) could not be reached or refused the command. */
export function presenceUnavailableError (topic: string, cause: unknown): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_PRESENCE_UNAVAILABLE',
    `the presence of topic ${JSON.stringify(bounded(topic))} is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
}

/** A cluster request (count, disconnect, unsubscribe) that could not be sent to the other instances. */
export function clusterUnavailableError (cause: unknown): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_CLUSTER_UNAVAILABLE',
    `the cluster request could not be sent: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
}

/** A presence method called on an app registered without the `presence` option. */
export function noPresenceError (): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_NO_PRESENCE', 'presence needs the plugin\'s presence option (presence: {} for the defaults)')
}

/** A publish to a presence events topic (`presenceTopic()`): only the presence store writes its joins and leaves. */
export function reservedTopicError (topic: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_TOPIC', `topic ${JSON.stringify(bounded(topic))} carries a topic's presence events: only the presence store publishes to it`)
}
