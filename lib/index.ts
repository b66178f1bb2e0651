import type {
  ContextConfigDefault, FastifyBaseLogger, FastifySchema, FastifyTypeProvider, FastifyTypeProviderDefault,
  RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase, RawServerDefault, RouteGenericInterface,
  RouteOptions as FastifyRouteOptions
} from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocketOptions } from './options.js'
import { plugin } from './plugin.js'
import type { WebSocketHandler } from './upgrade.js'
import type { WebSocket } from './websocket.js'

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
export { WebSocket, type SendOptions, type WebSocketData, type WebSocketEvents } from './websocket.js'
export { broadcast } from './broadcast.js'
export type { FastifyRfc6455Options, OriginCheck, ProtocolChooser, WebSocketOptions } from './options.js'
export type { WebSocketHandler } from './upgrade.js'
export { FastifyWebSocketError } from './errors.js'
export { CloseCode, Opcode } from './protocol/constants.js'
export { ProtocolError } from './protocol/errors.js'

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /** The open WebSockets of this app, e.g. to broadcast. */
    readonly websocketClients: ReadonlySet<WebSocket>

    /** `route()` with `ws: true` and no `wsHandler`: `handler` takes the WebSocket. */
    route<RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      opts: Omit<FastifyRouteOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>, 'handler' | 'ws' | 'wsHandler'> & {
        ws: true | WebSocketOptions
        handler: WebSocketHandler<RouteGeneric>
        wsHandler?: undefined
      }
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
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
    /** The WebSocket handler of a route whose `handler` answers plain HTTP. */
    wsHandler?: WebSocketHandler<RouteGeneric>
  }

  interface RouteShorthandMethod<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    /** `app.get(path, { ws: true }, handler)`: `handler` takes the WebSocket and the request. */
    <RouteGeneric extends RouteGenericInterface = RouteGenericInterface, ContextConfig = ContextConfigDefault,
      const SchemaCompiler extends FastifySchema = FastifySchema>(
      path: string,
      opts: RouteShorthandOptions<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger> & {
        ws: true | WebSocketOptions
        wsHandler?: undefined
      },
      handler: WebSocketHandler<RouteGeneric>
    ): FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>
  }
}
