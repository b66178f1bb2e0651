/**
 * `fastify-rfc6455/compat`: @fastify/websocket 11's options, route options,
 * decorators and handler signature, mapped onto fastify-rfc6455, so that an
 * app moves over by changing its import. See docs/migrating.md for the
 * mapping and what differs.
 */
import { EventEmitter } from 'node:events'
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type {
  ContextConfigDefault, FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest,
  FastifyTypeProvider, FastifyTypeProviderDefault, HookHandlerDoneFunction, onRequestHookHandler, preCloseAsyncHookHandler,
  preCloseHookHandler, preHandlerHookHandler, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase,
  RawServerDefault, RouteGenericInterface, RouteOptions
} from 'fastify'
import fp from 'fastify-plugin'
import { FastifyWebSocketError, HandshakeRefusedError } from './errors.js'
import type { InjectedWebSocket, InjectWSOptions } from './handshake/inject.js'
import { type HandshakeRequest, kHandshake } from './handshake/upgrade.js'
import fastifyRfc6455 from './index.js'
import { http } from './builtins.js'
import type { FastifyRfc6455Options } from './options.js'
import type { PerMessageDeflateOptions } from './protocol/permessage-deflate.js'
import type { WebSocket } from './socket/websocket.js'

/** `ws`'s default `maxPayload`: 100 MiB. */
const WS_MAX_PAYLOAD = 100 * 1024 * 1024

/**
 * @fastify/websocket's `options.verifyClient`, as `ws` calls it:
 * synchronous `(info) => boolean`, or with a callback `(info, done)` when it
 * declares two parameters. `done(false, code?, message?, headers?)` refuses
 * the handshake with `code` (401 by default).
 */
export type VerifyClient =
  (info: VerifyClientInfo, done: (verified: boolean, code?: number, message?: string, headers?: Record<string, string>) => void) => boolean | void

/** What `verifyClient` gets: the handshake's `Origin`, whether it came over TLS, and the raw request. */
export interface VerifyClientInfo {
  /** The handshake's `Origin` header, undefined when absent (not a browser). */
  origin: string | undefined
  /** Whether the handshake came over TLS. */
  secure: boolean
  /** The handshake request, after the route's hooks ran. */
  req: IncomingMessage
}

/** permessage-deflate as `ws` takes it: `zlibDeflateOptions.level` and `.memLevel` are mapped, the rest of zlib's options ignored. */
export interface WsPerMessageDeflateOptions {
  /** Reset the compressor after each message (RFC 7692 §7.1.1.1). */
  serverNoContextTakeover?: boolean
  /** Ask the client to reset its compressor after each message (§7.1.1.2). */
  clientNoContextTakeover?: boolean
  /** The compressor's window, 8-15 bits (§7.1.2.1). */
  serverMaxWindowBits?: number
  /** The window asked of the client, 8-15 bits (§7.1.2.2); `true` leaves the default. */
  clientMaxWindowBits?: number | boolean
  /** zlib's options of the compressor: `level` and `memLevel` are mapped. */
  zlibDeflateOptions?: WsZlibDeflateOptions
  /** zlib's options of the decompressor: ignored. */
  zlibInflateOptions?: Record<string, unknown>
  /** Bytes: messages shorter than this are sent uncompressed. */
  threshold?: number
  /** `ws`'s limit of concurrent zlib calls: ignored. */
  concurrencyLimit?: number
}

/** zlib's options of `ws`'s compressor: `level` and `memLevel` are mapped, the others ignored. */
export interface WsZlibDeflateOptions {
  /** zlib compression level, 0-9, or -1 for zlib's default (6). */
  level?: number
  /** zlib memLevel, 1-9. */
  memLevel?: number
  /** zlib's other options (`windowBits`, `strategy`...): ignored. */
  [option: string]: unknown
}

/**
 * @fastify/websocket's `options`, the options of `ws`'s `WebSocketServer`.
 * Mapped: `maxPayload` (bytes, 0 for no limit; default 100 MiB as in `ws`),
 * `perMessageDeflate`, `handleProtocols`, `verifyClient`, `closeTimeout`
 * (ms), `server` (a second HTTP server whose upgrades are taken too).
 * `noServer`, `port` and `host` throw FST_WS_INVALID_OPTION; `path` is
 * ignored with @fastify/websocket's warning; `clientTracking` needs nothing
 * (`websocketServer.clients` always holds the open sockets); the others
 * (`backlog`, `skipUTF8Validation`, `autoPong`, `allowSynchronousEvents`,
 * `maxBufferedChunks`, `maxFragments`, `WebSocket`) have no equivalent and are
 * ignored with a warning.
 */
export interface WebSocketServerOptions {
  /** Bytes of one message; 0 for no limit. Default 100 MiB, as in `ws`. Over it the connection closes with 1009. */
  maxPayload?: number
  /** permessage-deflate (RFC 7692): true, or `ws`'s options of it. Default off. */
  perMessageDeflate?: boolean | WsPerMessageDeflateOptions
  /** Chooses the subprotocol from the client's offers; false chooses none. Default: the client's first offer. */
  handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false
  /** Accepts or refuses a handshake, after the route's hooks (see VerifyClient). */
  verifyClient?: VerifyClient
  /** Milliseconds the closing handshake may take before the connection is destroyed. Default 5000 (`ws`'s is 30000). */
  closeTimeout?: number
  /** A second HTTP server whose upgrades are taken too. */
  server?: Server
  /** Needs nothing: `websocketServer.clients` always holds the open sockets. */
  clientTracking?: boolean
  /** Ignored, with @fastify/websocket's warning: routes have paths. */
  path?: string
  /** Refused (FST_WS_INVALID_OPTION): the plugin takes the upgrades of the app's server. */
  noServer?: boolean
  /** Refused (FST_WS_INVALID_OPTION): the app's server listens. */
  port?: number
  /** Refused (FST_WS_INVALID_OPTION): the app's server listens. */
  host?: string
  /** Ignored with a warning: the app's server listens. */
  backlog?: number
  /** Ignored with a warning: text is always checked as it arrives. */
  skipUTF8Validation?: boolean
  /** Ignored with a warning: pings are always answered. */
  autoPong?: boolean
  /** Ignored with a warning: messages are emitted as they are parsed. */
  allowSynchronousEvents?: boolean
  /** Ignored with a warning: a message's memory is bounded by `maxPayload`. */
  maxBufferedChunks?: number
  /** Ignored with a warning: a message's memory is bounded by `maxPayload`. */
  maxFragments?: number
  /** Ignored with a warning: the socket class is fastify-rfc6455's `WebSocket`. */
  WebSocket?: unknown
}

/**
 * @fastify/websocket's `errorHandler`: called with what a WebSocket handler
 * threw or rejected with, and with the socket's `error` events (a
 * ProtocolError: the connection has failed and sent its close code). `this`
 * is the route's Fastify instance; `reply` has been hijacked. The default
 * logs the error through `request.log` (error level) and, for a handler's
 * error, terminates the socket (no close frame: the peer sees 1006), as
 * @fastify/websocket's does.
 */
export type ErrorHandler = (this: FastifyInstance, error: Error, socket: WebSocket, request: FastifyRequest, reply: FastifyReply) => void

/**
 * The options of `app.register(fastifyWebsocket, options)` from
 * `fastify-rfc6455/compat`: @fastify/websocket 11's (`options`,
 * `errorHandler`, `preClose`; `connectionOptions`, gone since its version
 * 10, is ignored with a warning), and any option of fastify-rfc6455 itself
 * (`heartbeatInterval`, `origin`...), which wins over a mapped one.
 */
export interface FastifyWebsocketOptions extends FastifyRfc6455Options {
  /** The options of `ws`'s `WebSocketServer`, mapped (see WebSocketServerOptions). */
  options?: WebSocketServerOptions
  /** See ErrorHandler. Not a function: the registration fails with `invalid errorHandler function`. */
  errorHandler?: ErrorHandler
  /**
   * A `preClose` hook run when the app closes, instead of @fastify/websocket's
   * default one (close every socket with no code); the sockets it leaves
   * open are then closed with 1001 as fastify-rfc6455 does. Not a function:
   * the registration fails with `invalid preClose function`.
   */
  preClose?: preCloseHookHandler | preCloseAsyncHookHandler
  /** @fastify/websocket 9's stream options; ignored with a warning, as @fastify/websocket 10 and 11 ignore them. */
  connectionOptions?: unknown
}

/**
 * A `websocket: true` route's handler (or a route's `wsHandler`), as in
 * @fastify/websocket 10 and 11: `(socket, request)`, `this` the route's
 * Fastify instance. A throw or a rejection goes to the `errorHandler`.
 */
export type WebsocketHandler<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> =
  (this: FastifyInstance, socket: WebSocket, request: FastifyRequest<RouteGeneric>) => void | Promise<unknown>

/** `app.injectWS()`'s second argument, @fastify/websocket's `upgradeContext`: the request's headers. */
export interface UpgradeContext {
  /** Request headers sent with the handshake; the handshake's own are set for you. */
  headers?: IncomingHttpHeaders
}

/** `app.injectWS()`'s third argument: `onInit(ws)` before the handshake, `onOpen(ws)` once it is answered with 101. */
export interface InjectWSHooks {
  /** Called with the client socket before the handshake is sent. */
  onInit?: (socket: InjectedWebSocket) => void
  /** Called with the client socket once the handshake is answered with 101, before the promise resolves. */
  onOpen?: (socket: InjectedWebSocket) => void
}

/** The events of `app.websocketServer`. */
export interface CompatWebSocketServerEvents {
  /** A handshake was answered (101): the socket and the raw request, before the route's handler runs. */
  connection: [socket: WebSocket, request: IncomingMessage]
}

/** `app.websocketServer`: what a @fastify/websocket app reads of `ws`'s `WebSocketServer`. */
export interface CompatWebSocketServer extends EventEmitter<CompatWebSocketServerEvents> {
  /** The open sockets of the app (`app.websocketClients`). */
  readonly clients: ReadonlySet<WebSocket>
  /** The `options` given at registration. */
  readonly options: WebSocketServerOptions
}

/**
 * `app.websocketServer`: `clients` (the app's open sockets), `options`,
 * and the `connection` event `(socket, rawRequest)` emitted before each handler runs.
 */
class WebSocketServerView extends EventEmitter<CompatWebSocketServerEvents> implements CompatWebSocketServer {
  readonly options: WebSocketServerOptions
  private readonly app: FastifyInstance

  constructor (app: FastifyInstance, options: WebSocketServerOptions) {
    super()
    this.app = app
    this.options = options
  }

  get clients (): ReadonlySet<WebSocket> {
    return this.app.websocketClients
  }
}

/** `ws` options with no equivalent here: ignored, with a warning naming them. */
const IGNORED_WS_OPTIONS: Record<string, string> = {
  backlog: 'Fastify listens',
  skipUTF8Validation: 'text is always checked as it arrives (RFC 6455 §8.1)',
  autoPong: 'pings are always answered (RFC 6455 §5.5.2)',
  allowSynchronousEvents: 'messages are emitted as they are parsed',
  maxBufferedChunks: 'a message\'s memory is bounded by maxPayload, whatever its fragments',
  maxFragments: 'a message\'s memory is bounded by maxPayload, whatever its fragments',
  WebSocket: 'the socket class is fastify-rfc6455\'s WebSocket'
}

/** The `ws` options mapped onto options of fastify-rfc6455. */
const MAPPED_WS_OPTIONS = new Set(['maxPayload', 'perMessageDeflate', 'handleProtocols', 'verifyClient', 'closeTimeout', 'server',
  'clientTracking', 'path'])

function optionError (message: string): FastifyWebSocketError {
  return new FastifyWebSocketError('FST_WS_INVALID_OPTION', message)
}

/** The options of fastify-rfc6455 that `ws`'s options come to: `maxPayload`, `perMessageDeflate`, `protocols`, `closeTimeout`. */
function mapServerOptions (options: WebSocketServerOptions, log: FastifyBaseLogger): FastifyRfc6455Options {
  if (options.noServer !== undefined && options.noServer !== false) {
    throw optionError('fastify-rfc6455/compat: options.noServer is not supported: the plugin takes the upgrades of the app\'s server; ' +
      'for a WebSocket server apart from Fastify, use the ws library directly')
  }
  for (const name of ['port', 'host'] as const) {
    if (options[name] !== undefined) {
      throw optionError(`fastify-rfc6455/compat: options.${name} is not supported: WebSockets are served on the app's own server ` +
        '(app.listen()), or on options.server')
    }
  }
  if (options.path !== undefined) log.warn('ws server path option shouldn\'t be provided, use a route instead')
  for (const name of Object.keys(options)) {
    if (MAPPED_WS_OPTIONS.has(name) || name === 'noServer' || name === 'port' || name === 'host') continue
    const why = IGNORED_WS_OPTIONS[name] ?? 'no such option'
    log.warn(`fastify-rfc6455/compat: options.${name} is ignored: ${why}`)
  }
  const mapped: FastifyRfc6455Options = {
    maxPayload: options.maxPayload === undefined ? WS_MAX_PAYLOAD : options.maxPayload === 0 ? Number.MAX_SAFE_INTEGER : options.maxPayload,
    protocols: protocolChooser(options.handleProtocols)
  }
  if (options.closeTimeout !== undefined) mapped.closeTimeout = options.closeTimeout
  if (options.perMessageDeflate !== undefined) mapped.perMessageDeflate = mapDeflate(options.perMessageDeflate)
  return mapped
}

/**
 * `handleProtocols(protocols, request)` as a chooser: false chooses none.
 * Without it, `ws` takes the first subprotocol the client offers.
 */
function protocolChooser (handleProtocols: WebSocketServerOptions['handleProtocols']): FastifyRfc6455Options['protocols'] {
  if (handleProtocols === undefined) return (offered) => offered[0]
  return (offered, request) => {
    const chosen = handleProtocols(new Set(offered), request.raw)
    return chosen === false ? undefined : chosen
  }
}

/** `ws`'s permessage-deflate options as fastify-rfc6455's; zlib's default level (-1) is level 6. */
function mapDeflate (options: boolean | WsPerMessageDeflateOptions): boolean | PerMessageDeflateOptions {
  if (typeof options === 'boolean') return options
  const mapped: PerMessageDeflateOptions = {}
  if (options.threshold !== undefined) mapped.threshold = options.threshold
  if (options.serverNoContextTakeover !== undefined) mapped.serverNoContextTakeover = options.serverNoContextTakeover
  if (options.clientNoContextTakeover !== undefined) mapped.clientNoContextTakeover = options.clientNoContextTakeover
  if (options.serverMaxWindowBits !== undefined) mapped.serverMaxWindowBits = options.serverMaxWindowBits
  if (typeof options.clientMaxWindowBits === 'number') mapped.clientMaxWindowBits = options.clientMaxWindowBits
  const level = options.zlibDeflateOptions?.level
  if (level !== undefined) mapped.level = level === -1 ? 6 : level
  const memLevel = options.zlibDeflateOptions?.memLevel
  if (memLevel !== undefined) mapped.memLevel = memLevel
  return mapped
}

/** A route declaration as the `onRoute` hook sees it, with both plugins' route options. */
type CompatRouteOptions = Omit<RouteOptions, 'ws' | 'wsHandler' | 'websocket'> & {
  websocket?: boolean
  ws?: unknown
  wsHandler?: unknown
}

/** Whether a request is a WebSocket handshake taken by fastify-rfc6455 (HTTP/1.1 upgrade, HTTP/2 extended CONNECT or injectWS). */
function isHandshake (request: FastifyRequest): boolean {
  return (request.raw as HandshakeRequest)[kHandshake] !== undefined
}

async function compat (fastify: FastifyInstance, options: FastifyWebsocketOptions): Promise<void> {
  const { options: serverOptions = {}, errorHandler = defaultErrorHandler, preClose, connectionOptions, ...native } = options
  if (typeof errorHandler !== 'function') throw optionError('invalid errorHandler function')
  if (preClose !== undefined && typeof preClose !== 'function') throw optionError('invalid preClose function')
  if (connectionOptions !== undefined) fastify.log.warn('fastify-rfc6455/compat: connectionOptions is ignored (gone since @fastify/websocket 10)')
  const mapped = mapServerOptions(serverOptions, fastify.log)
  const verifyClient = serverOptions.verifyClient
  const server = new WebSocketServerView(fastify, serverOptions)
  /** The reply of each handshake, for the errorHandler. */
  const replies = new WeakMap<FastifyRequest, FastifyReply>()

  fastify.decorateRequest('ws', false)
  const markHandshake: onRequestHookHandler = (request, reply, done) => {
    if (isHandshake(request)) {
      request.ws = true
      replies.set(request, reply)
    }
    done()
  }
  fastify.addHook('onRequest', markHandshake)

  /** Calls the errorHandler; one that throws is logged and the socket terminated. */
  function handleError (instance: FastifyInstance, error: unknown, socket: WebSocket, request: FastifyRequest): void {
    try {
      errorHandler.call(instance, error as Error, socket, request, replies.get(request) as FastifyReply)
    } catch (thrown) {
      request.log.error({ err: thrown }, 'fastify-rfc6455/compat: errorHandler threw')
      socket.terminate()
    }
  }

  function wrap (handler: WebsocketHandler): WebsocketHandler {
    return function compatHandler (this: FastifyInstance, socket, request) {
      server.emit('connection', socket, request.raw)
      socket.on('error', (error) => {
        // The connection has already failed with its close code: the default handler only logs, terminating would lose that frame.
        if (errorHandler === defaultErrorHandler) request.log.error(error)
        else handleError(this, error, socket, request)
      })
      let result: unknown
      try {
        result = handler.call(this, socket, request)
      } catch (error) {
        handleError(this, error, socket, request)
        return
      }
      if (isThenable(result)) result.then(undefined, (error: unknown) => handleError(this, error, socket, request))
    }
  }

  const verify: preHandlerHookHandler | undefined = verifyClient === undefined
    ? undefined
    : function verifyHandshake (request, reply, done) {
      if (!request.ws) {
        done()
        return
      }
      const socket = request.raw.socket as Partial<Socket & { authorized: boolean, encrypted: boolean }> | null
      const info: VerifyClientInfo = {
        origin: request.headers.origin,
        secure: socket?.authorized === true || socket?.encrypted === true,
        req: request.raw
      }
      const answer = (verified: boolean, code?: number, message?: string, headers?: Record<string, string>): void => {
        if (verified) done()
        else refuseClient(reply, code ?? 401, message, headers)
      }
      // As ws: a function of one parameter answers by its return value, one of two through the callback.
      const verified = verifyClient(info, answer)
      if (verifyClient.length < 2) answer(verified === true)
    }

  fastify.addHook('onRoute', (routeOptions: CompatRouteOptions) => {
    const websocket = routeOptions.websocket === true
    if (!websocket && routeOptions.wsHandler === undefined) return
    delete routeOptions.websocket
    if (routeOptions.ws === undefined || routeOptions.ws === false) routeOptions.ws = true
    const methods = Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method]
    // Fastify's HEAD route for a GET: fastify-rfc6455 answers it as the GET's plain HTTP requests.
    if (methods.every((method) => method === 'HEAD')) {
      if (websocket) delete routeOptions.wsHandler
      return
    }
    if (methods.some((method) => method !== 'GET' && method !== 'HEAD')) {
      throw new FastifyWebSocketError('FST_WS_ROUTE_METHOD', 'websocket handler can only be declared in GET method')
    }
    // ['GET', 'HEAD'] declares its HEAD route itself, which Fastify then does not add: HEAD gets 404, as in @fastify/websocket.
    routeOptions.method = 'GET'
    if (websocket) {
      routeOptions.schema = Object.assign(routeOptions.schema ?? {}, { hide: true })
      // The handler takes the socket; plain HTTP gets fastify-rfc6455's 426.
      delete routeOptions.wsHandler
      routeOptions.handler = wrap(checkHandler(routeOptions.handler)) as unknown as RouteOptions['handler']
    } else {
      routeOptions.wsHandler = wrap(checkHandler(routeOptions.wsHandler))
    }
    if (verify !== undefined) routeOptions.preHandler = [...hookList(routeOptions.preHandler), verify]
  })

  if (preClose !== undefined) fastify.addHook('preClose', preClose as preCloseAsyncHookHandler)
  await fastify.register(fastifyRfc6455, { ...mapped, ...native })

  const inject = fastify.injectWS
  fastify.injectWS = async function injectWS (this: FastifyInstance, path = '/', upgradeContext: UpgradeContext = {}, hooks: InjectWSHooks = {}) {
    const injectOptions: InjectWSOptions & InjectWSHooks = { ...hooks }
    if (upgradeContext.headers !== undefined) injectOptions.headers = requestHeaders(upgradeContext.headers)
    try {
      return await inject.call(this, path, injectOptions)
    } catch (error) {
      if (!(error instanceof HandshakeRefusedError)) throw error
      // @fastify/websocket's rejection, with fastify-rfc6455's (statusCode, headers, body) as its cause.
      throw new Error(`Unexpected server response: ${error.statusCode}`, { cause: error })
    }
  } as FastifyInstance['injectWS']
  fastify.decorate('websocketServer', server as CompatWebSocketServer)

  const upgrades = serverOptions.server
  if (upgrades !== undefined && upgrades !== fastify.server) {
    const forward = (request: IncomingMessage, socket: unknown, head: Buffer): void => { fastify.server.emit('upgrade', request, socket, head) }
    upgrades.on('upgrade', forward)
    fastify.addHook('preClose', (done: HookHandlerDoneFunction) => {
      upgrades.off('upgrade', forward)
      done()
    })
  }
}

/** A route's WebSocket handler, which must be a function. */
function checkHandler (handler: unknown): WebsocketHandler {
  if (typeof handler !== 'function') throw new FastifyWebSocketError('FST_WS_ROUTE_HANDLER', 'invalid wsHandler function')
  return handler as WebsocketHandler
}

/** A handshake refused by `verifyClient`: `code` (401 by default) and its text, over plain HTTP. */
function refuseClient (reply: FastifyReply, code: number, message?: string, headers?: Record<string, string>): void {
  reply.code(code).headers(headers ?? {}).type('text/plain; charset=utf-8').send(message ?? http.STATUS_CODES[code] ?? '')
}

/** @fastify/websocket's default errorHandler for a handler's throw or rejection: log, and terminate the socket. */
function defaultErrorHandler (this: FastifyInstance, error: Error, socket: WebSocket, request: FastifyRequest): void {
  request.log.error(error)
  socket.terminate()
}

/** Header values as fastify-rfc6455's injectWS takes them: strings, lists of strings, none undefined. */
function requestHeaders (headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const result: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) result[name] = Array.isArray(value) ? value.map(String) : String(value)
  }
  return result
}

function hookList<T> (hooks: T | T[] | undefined): T[] {
  if (hooks === undefined) return []
  return Array.isArray(hooks) ? hooks : [hooks]
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function'
}

/**
 * The plugin: @fastify/websocket 11's API on fastify-rfc6455. Register it
 * (and await it) before the routes, as @fastify/websocket; it registers
 * fastify-rfc6455 itself, with the options mapped (FastifyWebsocketOptions).
 * Named `@fastify/websocket`, so that plugins that declare it as a
 * dependency find it.
 *
 * ```ts
 * import fastifyWebsocket from 'fastify-rfc6455/compat'
 * await app.register(fastifyWebsocket, { options: { maxPayload: 1048576 } })
 * app.get('/echo', { websocket: true }, (socket, request) => {
 *   socket.on('message', (message) => socket.send(message))
 * })
 * ```
 */
const fastifyWebsocket: FastifyPluginAsync<FastifyWebsocketOptions> = fp(compat, { fastify: '5.x', name: '@fastify/websocket' })

export default fastifyWebsocket
export { fastifyWebsocket }

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /** fastify-rfc6455/compat: `clients` (the open sockets), `options`, and the `connection` event. */
    websocketServer: CompatWebSocketServer

    /**
     * fastify-rfc6455/compat: @fastify/websocket's `injectWS(path = '/',
     * upgradeContext, { onInit, onOpen })`. A refused handshake rejects with
     * `Error('Unexpected server response: <status>')`, its `cause` the HandshakeRefusedError.
     */
    injectWS (path?: string, upgradeContext?: UpgradeContext, hooks?: InjectWSHooks): Promise<InjectedWebSocket>

    /** fastify-rfc6455/compat: a `websocket: true` route, whose `handler` takes the socket. */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      opts: Omit<RouteOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>,
        'handler' | 'websocket' | 'ws' | 'wsHandler'> & {
        websocket: true
        handler: WebsocketHandler<RouteGeneric>
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>

    /** fastify-rfc6455/compat: a route whose `handler` answers plain HTTP and `wsHandler` takes WebSocket upgrades. */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      opts: Omit<RouteOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>,
        'websocket' | 'ws' | 'wsHandler'> & {
        wsHandler: WebsocketHandler<RouteGeneric>
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }

  interface FastifyRequest {
    /** fastify-rfc6455/compat: whether this request is a WebSocket handshake. */
    ws: boolean
  }

  interface RouteShorthandOptions<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    /** fastify-rfc6455/compat: @fastify/websocket's route option, the same as `ws: true`. */
    websocket?: boolean
  }

  interface RouteShorthandMethod<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    /** fastify-rfc6455/compat: `app.get(path, { websocket: true }, handler)`, `handler` taking the socket and the request. */
    <RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      path: string,
      opts: RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger> & {
        websocket: true
      },
      handler: WebsocketHandler<RouteGeneric>
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }
}
