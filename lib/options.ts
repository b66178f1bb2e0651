import type { IncomingMessage } from 'node:http'
import { inspect } from './builtins.js'
import type { FastifyRequest } from 'fastify'
import type { ConnectionLimits } from './transport/connection.js'
import { invalidOptionError, unknownOptionError } from './errors.js'
import type { InvalidMessageAction, MessageFormat, PipelineOptions } from './socket/messages.js'
import type { MessageHook, WebSocket } from './socket/websocket.js'
import type { PerMessageDeflateOptions } from './protocol/permessage-deflate.js'
import type { Broker } from './pubsub/broker.js'
import type { HistoryOption } from './pubsub/recovery.js'
import type { PresenceOptions } from './pubsub/presence.js'

/**
 * Chooses the subprotocol from those the client offered, in its order of
 * preference (RFC 6455 §4.2.2 step 5.4). Return (or resolve to) one of
 * `offered`, or undefined to select none. A throw or a rejection answers
 * the handshake with 500.
 */
export type ProtocolChooser = (offered: string[], request: FastifyRequest) => string | undefined | Promise<string | undefined>

/**
 * Decides whether a handshake's `Origin` (undefined when absent) is allowed
 * (RFC 6455 §4.2.2, §10.2): true, or a promise of true, to accept; else 403.
 * It runs before Fastify routes the request, so that a refused handshake
 * runs none of the route's hooks: `request` is Node's raw request
 * (`headers`, `url`, `socket`), as `ws` gives `verifyClient`. A throw or a
 * rejection answers the handshake with 500, logged at error level.
 */
export type OriginCheck = (origin: string | undefined, request: IncomingMessage) => boolean | Promise<boolean>

/**
 * Options of the plugin that a `ws: { ... }` route may override. Checked
 * when the plugin is registered and when a route declares them: sizes in
 * bytes and times in milliseconds are integers from 0 (bytes at most 2^53-1,
 * milliseconds at most 2^31-1, Node's timer limit), where 0 means no limit
 * or off (as in `ws`), except `closeTimeout`, from 1; `highWaterMark` at most
 * `maxBackpressure`, subprotocol names are tokens,
 * listed origins are lowercase `scheme://host[:port]` or 'null'. A bad value
 * throws FST_WS_INVALID_OPTION, an unknown name FST_WS_UNKNOWN_OPTION
 * (FastifyWebSocketError).
 */
export interface WebSocketOptions {
  /**
   * Bytes of one reassembled message; over it the connection closes with
   * 1009 (RFC 6455 §7.4.1, §10.4), as soon as a frame header declares it.
   * 0: no limit, as in `ws`. Default: the app's `bodyLimit` (Fastify's default is 1 MiB).
   */
  maxPayload?: number
  /** Milliseconds the closing handshake may take before the TCP connection is destroyed, from 1. Default 5000. */
  closeTimeout?: number
  /**
   * Bytes of unsent backlog past which `send()` returns false (resume on
   * `drain`) and the connection stops reading. A threshold, not a limit:
   * 0 makes `send()` return false whenever anything is left unwritten, as a
   * Node stream's `highWaterMark` of 0 does. Default 65536.
   */
  highWaterMark?: number
  /**
   * Bytes of unsent backlog past which a further `send()` fails the
   * connection with 1008 instead of queueing. 0: no limit. Default 16 MiB.
   */
  maxBackpressure?: number
  /**
   * Milliseconds without a byte read or written after which the server
   * closes the connection with 1001. 0 turns it off. Default 0.
   */
  idleTimeout?: number
  /**
   * Topics one socket may be subscribed to at once; `subscribe()` to one
   * more throws FST_WS_TOO_MANY_TOPICS (each subscription costs memory on
   * the server, about 230 bytes, and a broker subscription for a new topic).
   * Default: no limit.
   */
  maxTopics?: number
  /**
   * Subprotocols: the names this server speaks (the first the client offers
   * among them is chosen) or a chooser. Default: none chosen.
   */
  protocols?: string[] | ProtocolChooser
  /**
   * Which `Origin` a handshake may carry; a refused one gets 403 (RFC 6455
   * §4.2.2, §10.2: a browser page of any site may open a WebSocket to any
   * server, with the user's cookies; the `Origin` header says which site).
   * Default (unset): same host only: an `Origin`'s host and port must be the
   * request's `Host` (`request.hostname` and `request.port`, so
   * `X-Forwarded-Host` behind a trusted proxy), whatever the scheme,
   * case-insensitively, a missing port being the scheme's default (80, 443).
   * '*' or true: every origin. A list: exact `Origin` values such as
   * 'https://app.example.com', or one such value as a string. A check: its
   * answer. Without a check, a handshake without `Origin` (not from a
   * browser) is allowed. Decided before any of the route's hooks runs
   * (docs/security.md).
   */
  origin?: true | string | string[] | OriginCheck
  /**
   * permessage-deflate (RFC 7692): true or options to accept it when a client
   * offers it. Off by default: each compressing connection holds zlib contexts
   * (see PerMessageDeflateOptions for their sizes).
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /**
   * Route only: what the listeners get. 'buffer' (default): the payload as a
   * Buffer. 'json': a text message parsed as JSON, validated by the route's
   * `schema.message` if it has one (compiled by the route's validator
   * compiler); a binary message is refused with 1003 (RFC 6455 §7.4.1).
   * A route with `schema.message` must set 'json'.
   */
  messages?: MessageFormat
  /**
   * A message refused by a JSON route (not JSON, failing `schema.message`, or
   * binary): 'close' (default) fails the connection with 1007 (1003 for
   * binary) and logs it through `request.log` at info; 'emit' drops it and
   * emits `invalid` with a MessageValidationError, keeping the connection.
   */
  invalidMessages?: InvalidMessageAction
  /**
   * Per-message hooks, run in order after parsing and validation and before
   * the listeners (see MessageHook); the plugin's run before the route's.
   */
  onMessage?: MessageHook | MessageHook[]
  /**
   * Whether `sendJSON()` checks its value against the route's `schema.send`
   * (compiled by the route's validator compiler) before sending it; a value
   * that fails throws FST_WS_INVALID_SEND and nothing is sent. A development
   * aid: set false in production to skip the check. Default true.
   */
  validateSend?: boolean
}

/** Options of `app.register(fastifyRfc6455, options)`: those of WebSocketOptions but `messages`, which the route's types must see. */
export interface FastifyRfc6455Options extends Omit<WebSocketOptions, 'messages'> {
  /**
   * Carries topic publishes to the app's other instances (see Broker).
   * Default: in-process only (LocalBroker). `fastify-rfc6455/redis` has a Redis broker.
   */
  broker?: Broker
  /**
   * Milliseconds between heartbeat pings to every connection; a connection
   * whose pong has not come back by the next ping is terminated (close event
   * code 1006), so a peer that vanished without a FIN (a dropped network, a
   * sleeping laptop) is noticed within two intervals. 0 turns it off.
   * Default 30000 (30 s), as uWebSockets.js and socket.io ping by default;
   * `ws` and @fastify/websocket do not.
   */
  heartbeatInterval?: number
  /**
   * Which topics keep a history, and how much (see TopicHistory and
   * docs/recovery.md): called with a topic, answers `{ size, ttl, encode? }`
   * or null for none. Needs a broker with history (LocalBroker and
   * RedisBroker have one). Default: no topic has history.
   */
  history?: HistoryOption
  /**
   * Messages a resume (`socket.subscribe(topic, { since })`) or a gap's fill
   * replays at most; further back, it replays nothing (`recovered: false`).
   * Default 1000.
   */
  maxRecovery?: number
  /**
   * WebSockets one HTTP/2 connection may carry at once (RFC 8441): its
   * extended CONNECT streams, open or being answered. A stream over it is
   * reset with REFUSED_STREAM (RFC 9113 §5.1.2), logged once per connection
   * at warn level. One TCP connection, which is what firewalls and proxies
   * count, then costs no more than this many. When the app's HTTP/2
   * settings give no `maxConcurrentStreams`, the server advertises this
   * plus 100 (for requests) instead of Node's 2^32-1. Default 100.
   */
  maxHttp2WebSockets?: number
  /**
   * Bytes of one publish's payload (`app.websocket.publish()`,
   * `socket.publish()`), at most; a bigger one throws
   * FST_WS_PUBLISH_TOO_LARGE and goes nowhere. With the Redis broker keep it
   * under Redis's `client-output-buffer-limit pubsub` hard limit (32 MB by
   * default): past it Redis disconnects the subscribers, and every topic of
   * those instances loses cross-instance delivery until they reconnect.
   * Default: the plugin's `maxPayload` (the app's `bodyLimit` unless set),
   * at most 16 MiB.
   */
  maxPublishPayload?: number
  /**
   * Presence in topics (`socket.track()`, `socket.subscribePresence()`,
   * `app.websocket.cluster.presence()`, docs/presence-and-control.md): its
   * ttl, bounds and event encoder (PresenceOptions); `{}` for the defaults.
   * Needs a broker with presence and history (LocalBroker and RedisBroker
   * have them). Default: off (the presence methods throw FST_WS_NO_PRESENCE).
   */
  presence?: PresenceOptions
  /**
   * Closes the open WebSockets a batch at a time when the app closes, so
   * that thousands of clients do not all reconnect to the other instances
   * at once: at most `sockets` sockets (with 1001, as without it) every
   * `interval` ms, each batch logged at info level. New handshakes are
   * refused from the start; `app.close()` resolves once every connection
   * has closed. With `n` open sockets the drain takes about
   * ceil(n / sockets) × interval ms, plus the last closing handshakes (up
   * to `closeTimeout`): Fastify's close has no time limit of its own, so
   * keep it within what your process manager waits before it kills the
   * process. Default: every socket at once.
   */
  drain?: DrainOptions
}

/** The `drain` option: close at most `sockets` sockets every `interval` milliseconds. */
export interface DrainOptions {
  /** Sockets closed per batch, an integer from 1. */
  sockets: number
  /** Milliseconds between two batches, an integer from 1 to 2^31-1. */
  interval: number
}

/** Options resolved for one route: every limit set. */
export interface ResolvedOptions extends ConnectionLimits, PipelineOptions<WebSocket<unknown>> {
  protocols: WebSocketOptions['protocols']
  origin: WebSocketOptions['origin']
  /** null when permessage-deflate is off. */
  perMessageDeflate: PerMessageDeflateOptions | null
  /** The route's `schema.send` when `validateSend` is on; undefined otherwise. */
  sendSchema: unknown
}

export const DEFAULTS = {
  closeTimeout: 5000,
  highWaterMark: 64 * 1024,
  maxBackpressure: 16 * 1024 * 1024,
  idleTimeout: 0,
  heartbeatInterval: 30_000,
  maxHttp2WebSockets: 100,
  /** The highest default of maxPublishPayload: half Redis's default pub/sub hard limit. */
  maxPublishPayload: 16 * 1024 * 1024
}

/**
 * Merges route options over plugin options over defaults; `bodyLimit` is the
 * app's, `schema` the route's (its `message` and `send`). Hooks add up: the
 * plugin's, then the route's.
 */
export function resolveOptions (
  plugin: WebSocketOptions, route: WebSocketOptions | undefined, bodyLimit: number, schema?: { message?: unknown, send?: unknown }
): ResolvedOptions {
  const merged = { ...plugin, ...route }
  return {
    maxPayload: unlimitedAtZero(merged.maxPayload ?? bodyLimit),
    closeTimeout: merged.closeTimeout ?? DEFAULTS.closeTimeout,
    highWaterMark: merged.highWaterMark ?? DEFAULTS.highWaterMark,
    maxBackpressure: unlimitedAtZero(merged.maxBackpressure ?? DEFAULTS.maxBackpressure),
    idleTimeout: merged.idleTimeout ?? DEFAULTS.idleTimeout,
    maxTopics: merged.maxTopics ?? Infinity,
    protocols: merged.protocols,
    // One origin as a string is a list of one; '*' stands for every origin.
    origin: typeof merged.origin === 'string' && merged.origin !== '*' ? [merged.origin] : merged.origin,
    perMessageDeflate: merged.perMessageDeflate === true ? {} : merged.perMessageDeflate || null,
    messages: merged.messages ?? 'buffer',
    invalidMessages: merged.invalidMessages ?? 'close',
    onMessage: [...hookList(plugin.onMessage), ...hookList(route?.onMessage)],
    messageSchema: schema?.message,
    sendSchema: merged.validateSend === false ? undefined : schema?.send
  }
}

/** A size limit where 0 means none, as in `ws`. */
function unlimitedAtZero (bytes: number): number {
  return bytes === 0 ? Number.MAX_SAFE_INTEGER : bytes
}

function hookList (hooks: MessageHook | MessageHook[] | undefined): MessageHook[] {
  if (hooks === undefined) return []
  return typeof hooks === 'function' ? [hooks] : hooks
}

// Validation: every option is checked when the plugin is registered and when
// a route declares `ws: { ... }`, so that a bad value fails at startup with
// FST_WS_INVALID_OPTION or FST_WS_UNKNOWN_OPTION instead of on a connection.

/** What one option must be. */
interface Rule {
  /** What the value must be, in words, for the error message ("it must be ..."). */
  allowed: string
  /**
   * Whether `value` is valid. A rule for a list or an object checks the
   * values in it itself and throws for the first bad one, named by its path.
   */
  test (value: unknown, path: string, url: string | undefined): boolean
}

/** The longest delay Node's timers take (about 24.8 days); a longer one fires after 1 ms instead. */
const MAX_DELAY = 2 ** 31 - 1

function integer (min: number, max: number, unit: string): Rule {
  return {
    allowed: `an integer from ${min} to ${max}${unit}`,
    test: (value) => Number.isInteger(value) && (value as number) >= min && (value as number) <= max
  }
}

const BOOLEAN: Rule = { allowed: 'true or false', test: (value) => typeof value === 'boolean' }
const BYTES = integer(0, Number.MAX_SAFE_INTEGER, ' (bytes)')
const MILLISECONDS = integer(0, MAX_DELAY, ' (milliseconds)')
/**
 * A window of 8 to 15 bits (RFC 7692 §7.1.2.1, §7.1.2.2). Node's raw deflate
 * turns 8 into 9, whose farthest match (512 - 262 bytes) still fits the
 * 256-byte window the peer was told of.
 */
const WINDOW_BITS = integer(8, 15, ' (bits, RFC 7692 §7.1.2)')

/**
 * A subprotocol name: a token (RFC 6455 §4.1, RFC 2616 §2.2), one or more
 * visible ASCII characters other than separators.
 */
const SUBPROTOCOL: Rule = {
  allowed: 'a token (RFC 6455 §4.1): one or more visible ASCII characters other than ()<>@,;:\\"/[]?={}',
  test: (value) => typeof value === 'string' && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value)
}

/**
 * An `Origin` value as browsers send it: the ASCII serialization of an origin
 * (RFC 6454 §6.2), lowercase scheme "://" host [":" port] with no path, or
 * "null". Anything else would never match.
 */
const ORIGIN: Rule = {
  allowed: "an origin as browsers send it (RFC 6454 §6.2): lowercase scheme://host[:port] with no path, such as 'https://example.com', or 'null'",
  test: (value) => typeof value === 'string' && /^(?:null|[a-z][a-z0-9+.-]*:\/\/[^\sA-Z/?#@]+)$/.test(value)
}

/** The methods of a Broker (lib/pubsub/broker.ts). */
const BROKER_METHODS: Array<keyof Broker> = ['start', 'subscribe', 'unsubscribe', 'publish', 'close']

const DEFLATE_RULES: Record<keyof PerMessageDeflateOptions, Rule> = {
  threshold: BYTES,
  serverNoContextTakeover: BOOLEAN,
  clientNoContextTakeover: BOOLEAN,
  serverMaxWindowBits: WINDOW_BITS,
  clientMaxWindowBits: WINDOW_BITS,
  memLevel: integer(1, 9, ''),
  level: integer(0, 9, '')
}

const DRAIN_RULES: Record<keyof DrainOptions, Rule> = {
  sockets: integer(1, Number.MAX_SAFE_INTEGER, ' (sockets per batch)'),
  interval: integer(1, MAX_DELAY, ' (milliseconds)')
}

const FUNCTION: Rule = { allowed: 'a function', test: (value) => typeof value === 'function' }

/** The options of WebSocketOptions that the plugin takes too. */
const SHARED_RULES: Record<Exclude<keyof WebSocketOptions, 'messages'>, Rule> = {
  maxPayload: BYTES,
  closeTimeout: integer(1, MAX_DELAY, ' (milliseconds)'),
  highWaterMark: BYTES,
  maxBackpressure: BYTES,
  idleTimeout: MILLISECONDS,
  maxTopics: integer(1, Number.MAX_SAFE_INTEGER, ' (topics per socket)'),
  protocols: {
    allowed: 'an array of subprotocol names or a function (offered, request) => string | undefined',
    test: (value, path, url) => typeof value === 'function' || everyElement(SUBPROTOCOL, value, path, url)
  },
  origin: {
    allowed: "an origin, an array of origins, a function (origin, request) => boolean, or '*' or true for every origin",
    test: (value, path, url) => value === '*' || value === true || typeof value === 'function' ||
      (typeof value === 'string' ? ORIGIN.test(value, path, url) : everyElement(ORIGIN, value, path, url))
  },
  perMessageDeflate: {
    allowed: `true, false or an object of ${Object.keys(DEFLATE_RULES).join(', ')}`,
    test: (value, path, url) => typeof value === 'boolean' || checkObject(DEFLATE_RULES, value, `${path}.`, url, '')
  },
  invalidMessages: { allowed: "'close' or 'emit'", test: (value) => value === 'close' || value === 'emit' },
  onMessage: {
    allowed: 'a function (message, socket, request) or an array of them',
    test: (value, path, url) => typeof value === 'function' || everyElement(FUNCTION, value, path, url)
  },
  validateSend: BOOLEAN
}

const WEBSOCKET_RULES: Record<keyof WebSocketOptions, Rule> = {
  ...SHARED_RULES,
  messages: { allowed: "'buffer' or 'json'", test: (value) => value === 'buffer' || value === 'json' }
}

const PRESENCE_RULES: Record<keyof PresenceOptions, Rule> = {
  ttl: integer(3, MAX_DELAY, ' (milliseconds)'),
  maxMembers: integer(1, 2 ** 31 - 1, ' (members per topic)'),
  maxInfoBytes: integer(2, 2 ** 20, ' (bytes)'),
  encode: { allowed: 'a function (event) => string | Buffer', test: (value) => typeof value === 'function' }
}

const PLUGIN_RULES: Record<keyof FastifyRfc6455Options, Rule> = {
  ...SHARED_RULES,
  heartbeatInterval: MILLISECONDS,
  history: { allowed: 'a function (topic) => ({ size, ttl, encode? }) | null', test: (value) => typeof value === 'function' },
  maxRecovery: integer(1, 2 ** 31 - 1, ' (messages)'),
  maxHttp2WebSockets: integer(1, MAX_DELAY, ' (WebSockets per HTTP/2 connection)'),
  maxPublishPayload: BYTES,
  presence: {
    allowed: `an object of ${Object.keys(PRESENCE_RULES).join(', ')}`,
    test: (value, path, url) => checkObject(PRESENCE_RULES, value, `${path}.`, url, '')
  },
  drain: {
    allowed: 'an object { sockets, interval }: sockets per batch and milliseconds between batches, integers from 1',
    test: (value, path, url) => checkObject(DRAIN_RULES, value, `${path}.`, url, '') && everyEntry(DRAIN_RULES, value, `${path}.`, url)
  },
  broker: {
    allowed: `an object with the methods ${BROKER_METHODS.join(', ')} (the Broker interface)`,
    test: (value) => typeof value === 'object' && value !== null &&
      BROKER_METHODS.every((name) => typeof (value as Record<string, unknown>)[name] === 'function')
  }
}

/** Options of Fastify's own `register()`, which it leaves in the plugin's options. */
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])

/** The `ws` of a route declaration. */
const ROUTE_RULE: Rule = {
  allowed: `true, false or an object of ${Object.keys(WEBSOCKET_RULES).join(', ')}`,
  test: (value, path, url) => typeof value === 'boolean' ||
    checkObject(WEBSOCKET_RULES, value, `${path}.`, url, ' (broker, heartbeatInterval, history, maxRecovery, maxHttp2WebSockets, maxPublishPayload, presence and drain are plugin options only)')
}

/**
 * Checks the options given to `app.register(fastifyRfc6455, options)`: the
 * type and range of each (see the README's Options table), no unknown name,
 * and `highWaterMark` at most `maxBackpressure`. Fastify's own register
 * options (`prefix`, `logLevel`, `logSerializers`) pass.
 * Throws FST_WS_INVALID_OPTION or FST_WS_UNKNOWN_OPTION (FastifyWebSocketError).
 */
export function validatePluginOptions (options: FastifyRfc6455Options): void {
  const known = Object.keys(PLUGIN_RULES).join(', ') + ' (messages is a route option only)'
  for (const key of Object.keys(options)) {
    if (REGISTER_OPTIONS.has(key)) continue
    checkEntry(PLUGIN_RULES, options as Record<string, unknown>, key, '', undefined, known)
  }
  checkBackpressure(options, options, '', undefined)
}

/**
 * Checks the `ws` of the route declared at `url`: true, false or an object of
 * route options, checked as the plugin's are (the server options, such as
 * `heartbeatInterval` and `broker`, are plugin options only), with `highWaterMark` at most
 * `maxBackpressure` once merged over the plugin's options, and
 * `messages: 'json'` when the route has a `schema.message` (`messageSchema`).
 * Throws FST_WS_INVALID_OPTION or FST_WS_UNKNOWN_OPTION (FastifyWebSocketError).
 */
export function validateRouteOptions (ws: unknown, plugin: WebSocketOptions, url: string, messageSchema?: unknown): void {
  check(ROUTE_RULE, ws, 'ws', url)
  if (typeof ws === 'object') checkBackpressure(ws as WebSocketOptions, { ...plugin, ...ws }, 'ws.', url)
  const messages = typeof ws === 'object' && ws !== null ? (ws as WebSocketOptions).messages : undefined
  if (messageSchema !== undefined && messages !== 'json') {
    throw invalidOptionError('ws.messages', describe(messages), "'json' on a route with schema.message (the schema validates parsed JSON)", url)
  }
}

function check (rule: Rule, value: unknown, path: string, url: string | undefined): void {
  if (!rule.test(value, path, url)) throw invalidOptionError(path, describe(value), rule.allowed, url)
}

/** An undefined value is an option left unset, as `resolveOptions` reads it. */
function checkEntry (rules: Record<string, Rule>, options: Record<string, unknown>, key: string, prefix: string, url: string | undefined, known: string): void {
  const value = options[key]
  if (!Object.hasOwn(rules, key)) throw unknownOptionError(prefix + key, describe(value), known, url)
  if (value !== undefined) check(rules[key], value, prefix + key, url)
}

/** False unless `value` is an object; throws for its first unknown or invalid entry. */
function checkObject (rules: Record<string, Rule>, value: unknown, prefix: string, url: string | undefined, note: string): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const known = Object.keys(rules).join(', ') + note
  for (const key of Object.keys(value)) checkEntry(rules, value as Record<string, unknown>, key, prefix, url, known)
  return true
}

/** Checks every entry `rules` names, an unset one included: for an object whose entries are all required. */
function everyEntry (rules: Record<string, Rule>, value: unknown, prefix: string, url: string | undefined): boolean {
  for (const key of Object.keys(rules)) check(rules[key], (value as Record<string, unknown>)[key], prefix + key, url)
  return true
}

/** False unless `value` is an array; throws for its first element that `rule` refuses. */
function everyElement (rule: Rule, value: unknown, path: string, url: string | undefined): boolean {
  if (!Array.isArray(value)) return false
  for (let i = 0; i < value.length; i++) check(rule, value[i], `${path}[${i}]`, url)
  return true
}

/**
 * Past `highWaterMark` `send()` returns false; past `maxBackpressure` it
 * closes with 1008. The other way round an application would be closed
 * before it is ever told to wait. The error names the option `own` set.
 */
function checkBackpressure (own: WebSocketOptions, merged: WebSocketOptions, prefix: string, url: string | undefined): void {
  const highWaterMark = merged.highWaterMark ?? DEFAULTS.highWaterMark
  const maxBackpressure = merged.maxBackpressure ?? DEFAULTS.maxBackpressure
  if (highWaterMark <= maxBackpressure || maxBackpressure === 0) return
  if (own.maxBackpressure !== undefined) {
    throw invalidOptionError(`${prefix}maxBackpressure`, describe(maxBackpressure), `at least highWaterMark (${highWaterMark} bytes)`, url)
  }
  throw invalidOptionError(`${prefix}highWaterMark`, describe(highWaterMark), `at most maxBackpressure (${maxBackpressure} bytes)`, url)
}

/** Characters of a value an error message shows at most: an http.Server given by mistake is not printed whole. */
const MAX_SHOWN = 200

/**
 * A value as the error message shows it: short, on one line; an instance of
 * a class (a broker, a server) by its class's name alone.
 */
function describe (value: unknown): string {
  const prototype = typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.getPrototypeOf(value) : null
  if (prototype !== null && prototype !== Object.prototype) return `${String(prototype.constructor?.name ?? 'object')} {…}`
  const shown = inspect(value, { depth: 1, breakLength: Infinity, maxArrayLength: 10, maxStringLength: 80 })
  return shown.length <= MAX_SHOWN ? shown : `${shown.slice(0, MAX_SHOWN - 3)}...`
}
