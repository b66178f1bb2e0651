/**
 * The plugin, the socket, the errors and the types of a WebSocket app.
 *
 * @module fastify-rfc6455
 */
import type {
  ContextConfigDefault, FastifyBaseLogger, FastifyRequest, FastifySchema, FastifyTypeProvider, FastifyTypeProviderDefault,
  RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase, RawServerDefault, RouteGenericInterface,
  RouteOptions as FastifyRouteOptions
} from 'fastify'
import fp from 'fastify-plugin'
import type { InjectedWebSocket, InjectWSOptions } from './handshake/inject.js'
import type { WebSocketOptions } from './options.js'
import { plugin, type WebSocketApp } from './plugin.js'
import type { WebSocketHandler } from './handshake/upgrade.js'
import type { WebSocket } from './socket/websocket.js'

/**
 * fastify-rfc6455: WebSocket (RFC 6455) routes for Fastify 5.
 *
 * ```ts
 * await app.register(fastifyRfc6455, { maxPayload: 64 * 1024 })
 * app.get('/chat/:room', { ws: true }, (socket, request) => {
 *   socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
 * })
 * ```
 */
const fastifyRfc6455 = fp(plugin, { fastify: '5.x', name: 'fastify-rfc6455' })

export default fastifyRfc6455
export { fastifyRfc6455 }
export { WebSocket, type MessageHook, type WebSocketEvents, type WebSocketStats } from './socket/websocket.js'
export type { SendOptions, WebSocketData } from './socket/payload.js'
export {
  MessageValidationError, SendValidationError, type InvalidMessageAction, type MessageFormat, type WebSocketMessage
} from './socket/messages.js'
export type { MessagesOptions } from './socket/iterator.js'
export { broadcast } from './pubsub/broadcast.js'
export type { WebSocketApp, WebSocketTopics } from './plugin.js'
export type { WebSocketAppStats } from './registry.js'
export {
  channelNames, type ConnectionCloseMessage, type ConnectionErrorMessage, type ConnectionOpenMessage, type HandshakeRefusedMessage
} from './diagnostics.js'
export { LocalBroker, type Broker, type BrokerContext, type BrokerMessage } from './pubsub/broker.js'
export { MAX_TOPIC_BYTES } from './pubsub/topics.js'
export type { DrainOptions, FastifyRfc6455Options, OriginCheck, ProtocolChooser, WebSocketOptions } from './options.js'
export type { WebSocketHandler } from './handshake/upgrade.js'
export { FastifyWebSocketError, HandshakeRefusedError } from './errors.js'
export { InjectedWebSocket, type InjectedMessage, type InjectedWebSocketEvents, type InjectWSOptions } from './handshake/inject.js'
export { CloseCode, Opcode } from './protocol/constants.js'
export { ProtocolError } from './protocol/errors.js'
export type {
  BrokerCluster, BrokerHistory, BrokerPresence, ClusterReply, ClusterRequest, CountRequest, DisconnectRequest, HistoryRead, HistorySettings,
  PresenceSettings, PresenceSnapshot, SocketMatch, UnsubscribeRequest
} from './pubsub/broker.js'
export type { WebSocketCluster } from './pubsub/cluster.js'
export type { PresenceEvent, PresenceOptions } from './pubsub/presence.js'
export { presenceTopic, type PresenceMember, type Tracked } from './socket/presence.js'
export { DEFAULT_MAX_RECOVERY, GAP_CLOSE_CODE, type HistoryOption, type TopicHistory } from './pubsub/recovery.js'
export { formatPosition, parsePosition, type Position, type Subscribed, type SubscribeOptions } from './socket/position.js'

/** The method of a WebSocket route: the opening handshake is a GET (RFC 6455 §4.1). */
type WebSocketRouteMethod = 'GET' | 'get'

/**
 * The `ws` of a route whose messages are Buffers: true, or options without
 * `messages: 'json'`. A route with `messages: 'json'` (or options whose
 * `messages` the types do not know) takes the other overloads below, so that
 * an explicit route generic (`app.get<{ Params: ... }>(...)`), which turns
 * off the inference of `ws`, still types a JSON route's messages as parsed.
 */
type BufferWs = true | (WebSocketOptions & { messages?: 'buffer' })

/** The `ws` of a JSON route, as the types assume it when a route generic is given explicitly. */
type JsonWs = WebSocketOptions & { messages: 'json' }

/**
 * What a route's messages carry: with `schema.message`, the type the type
 * provider gives it (`unknown` without one); with `messages: 'json'` and no
 * schema, `unknown`; else a Buffer (for `ws` typed `WebSocketOptions`, whose
 * `messages` the types do not know, too).
 */
type RouteMessage<SchemaCompiler extends FastifySchema, TypeProvider extends FastifyTypeProvider, Ws> =
  SchemaCompiler extends { message: infer Schema } ? (TypeProvider & { schema: Schema })['validator']
    : [Ws] extends [{ messages: 'json' }] ? unknown : Buffer

/** What a route's `sendJSON()` takes: with `schema.send`, the type the type provider gives it; else `unknown`. */
type RouteSend<SchemaCompiler extends FastifySchema, TypeProvider extends FastifyTypeProvider> =
  SchemaCompiler extends { send: infer Schema } ? (TypeProvider & { schema: Schema })['validator'] : unknown

/**
 * The handler of a WebSocket route as a route declaration types it: its
 * request has the params, querystring and headers of the route generic or
 * of the schema through the app's type provider (TypeBox, JSON Schema to TS...).
 */
type RouteWebSocketHandler<
  RawServer extends RawServerBase, RawRequest extends RawRequestDefaultExpression<RawServer>, RouteGeneric extends RouteGenericInterface,
  ContextConfig, SchemaCompiler extends FastifySchema, TypeProvider extends FastifyTypeProvider, Logger extends FastifyBaseLogger, Ws
> = WebSocketHandler<RouteGeneric, RouteMessage<SchemaCompiler, TypeProvider, Ws>, RouteSend<SchemaCompiler, TypeProvider>,
  FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>>

/** Fastify's route options but those a WebSocket route types itself, and `method` and `ws`. */
type WebSocketRouteBase<RawServer extends RawServerBase, RawRequest extends RawRequestDefaultExpression<RawServer>,
  RawReply extends RawReplyDefaultExpression<RawServer>, RouteGeneric extends RouteGenericInterface, ContextConfig,
  SchemaCompiler extends FastifySchema, TypeProvider extends FastifyTypeProvider, Logger extends FastifyBaseLogger, Ws> =
  Omit<FastifyRouteOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>,
    'method' | 'handler' | 'ws' | 'wsHandler'> & { method: WebSocketRouteMethod, ws: Ws }

/**
 * The only `ws` Fastify's own `route()` takes besides `false` (a route that
 * is no GET, or no WebSocket route): its name is what the type checker
 * shows for `ws: true` there. The opening handshake is a GET (RFC 6455
 * §4.1); the plugin refuses such a route at startup with FST_WS_ROUTE_METHOD.
 */
type WsNeedsMethodGET = WebSocketOptions & { 'ws needs method GET (RFC 6455 §4.1)': never }

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /** The open WebSockets of this app, e.g. to broadcast. */
    readonly websocketClients: ReadonlySet<WebSocket>

    /** Topics and statistics of the app's sockets: `app.websocket.publish(topic, data)`, `app.websocket.stats()`. */
    readonly websocket: WebSocketApp

    /**
     * Opens a WebSocket to the `ws: true` route at `path` (default '/') with
     * no network and no `listen()`, for tests: the handshake goes through the
     * router and the route's hooks, the frames through the server's real
     * connection over an in-memory pair. Awaits `ready()` first. Resolves to
     * the client's socket (masked frames, as a client sends); rejects with a
     * HandshakeRefusedError (`statusCode`, `headers`, `body`) when the
     * handshake is answered with anything but 101: a hook's 401, 404 for a
     * path with no WebSocket route. `options.onInit` sees the client before
     * the handshake is answered, `options.onOpen` once it is open.
     */
    injectWS (path?: string, options?: InjectWSOptions): Promise<InjectedWebSocket>

    /**
     * A WebSocket-only route: a GET with `ws: true` (or `ws: { ...options }`)
     * whose `handler` takes the WebSocket; plain HTTP gets 426.
     */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema, Ws extends BufferWs = BufferWs>(
      opts: WebSocketRouteBase<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws> & {
        handler: RouteWebSocketHandler<RawServer, RawRequest, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws>
        wsHandler?: undefined
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>

    /**
     * A GET with `ws: true` (or `ws: { ...options }`) whose `wsHandler` takes
     * the WebSocket; `handler`, when given, answers plain HTTP, else plain
     * HTTP gets 426.
     */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema, Ws extends BufferWs = BufferWs>(
      opts: WebSocketRouteBase<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws> & {
        handler?: FastifyRouteOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>['handler']
        wsHandler: RouteWebSocketHandler<RawServer, RawRequest, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws>
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>

    /** A WebSocket-only route whose messages are JSON (`ws: { messages: 'json' }`), typed as parsed. */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema, Ws extends true | WebSocketOptions = JsonWs>(
      opts: WebSocketRouteBase<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws> & {
        handler: RouteWebSocketHandler<RawServer, RawRequest, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws>
        wsHandler?: undefined
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>

    /** A route with `wsHandler` whose messages are JSON (`ws: { messages: 'json' }`), typed as parsed. */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema, Ws extends true | WebSocketOptions = JsonWs>(
      opts: WebSocketRouteBase<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws> & {
        handler?: FastifyRouteOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>['handler']
        wsHandler: RouteWebSocketHandler<RawServer, RawRequest, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws>
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }

  /**
   * A WebSocket route's `schema.message`: the JSON Schema (or the type
   * provider's schema) of the messages it accepts, with `ws: { messages:
   * 'json' }`. Fastify itself ignores this key; the plugin compiles it with
   * the route's validator compiler.
   */
  interface FastifySchema {
    message?: unknown
    /**
     * A WebSocket route's `schema.send`: the schema of what its handler sends
     * with `socket.sendJSON()`, checked before sending unless `validateSend`
     * is false. Fastify itself ignores this key.
     */
    send?: unknown
  }

  /**
   * Fastify's own `route()` declares no WebSocket route: those take the
   * overloads above, which accept only GET (the opening handshake is a GET,
   * RFC 6455 §4.1), so `ws: true` on another method is a type error.
   */
  interface RouteOptions<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    ws?: false | WsNeedsMethodGET
    wsHandler?: undefined
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
    /**
     * Makes this GET route a WebSocket route; an object also overrides the
     * plugin's options for it. Plain HTTP requests get 426 unless `wsHandler`
     * is given, in which case `handler` answers them.
     */
    ws?: boolean | WebSocketOptions
    /** The WebSocket handler of a route whose `handler` answers plain HTTP; its request typed as the route's. */
    wsHandler?: WebSocketHandler<RouteGeneric, Buffer, unknown,
      FastifyRequest<RouteGeneric, RawServer, RawRequest, SchemaCompiler, TypeProvider, ContextConfig, Logger>>
  }

  interface RouteShorthandMethod<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    /**
     * `app.get(path, { ws: true }, handler)`: `handler` takes the WebSocket and
     * the request (see WebSocketHandler), its messages Buffers or, with
     * `schema.message`, the schema's type.
     */
    <RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema, Ws extends BufferWs = BufferWs>(
      path: string,
      opts: RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger> & {
        ws: Ws
        wsHandler?: undefined
      },
      handler: RouteWebSocketHandler<RawServer, RawRequest, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws>
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>

    /**
     * `app.get(path, { ws: { messages: 'json' } }, handler)`: as above, the
     * messages parsed JSON (`unknown`, or the type of `schema.message`), with
     * or without an explicit route generic.
     */
    <RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema, Ws extends true | WebSocketOptions = JsonWs>(
      path: string,
      opts: RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger> & {
        ws: Ws
        wsHandler?: undefined
      },
      handler: RouteWebSocketHandler<RawServer, RawRequest, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger, Ws>
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }
}
