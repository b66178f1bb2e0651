/**
 * Type test, checked by `npm run typecheck` (tsc over test/), never run:
 * tap only runs *.test.ts. Each `expectEqual` holds only when the two types
 * are identical, and each `@ts-expect-error` fails the typecheck when the
 * line below it compiles.
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyRfc6455, { type FastifyRfc6455Options, type WebSocket, type WebSocketHandler, type WebSocketOptions } from '../../lib/index.js'

/** True when A and B are the same type (not merely assignable either way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

/** Compiles only when `Check` is `true`: use as `expectEqual<Equal<A, B>>()`. */
function expectEqual<Check extends true> (): Check | void {}

/** Compiles only when `value` is assignable to T. */
function expectType<T> (_value: T): void {}

export async function typeChecks (): Promise<void> {
  const app = Fastify()

  // Plugin options.
  await app.register(fastifyRfc6455, { maxPayload: 1, heartbeatInterval: 1000 })
  await app.register(fastifyRfc6455, {
    maxPayload: 1024,
    closeTimeout: 1000,
    highWaterMark: 1,
    maxBackpressure: 2,
    idleTimeout: 0,
    heartbeatInterval: 0,
    protocols: (offered, request) => {
      expectEqual<Equal<typeof offered, string[]>>()
      expectType<FastifyRequest>(request)
      return offered[0]
    },
    origin: (origin) => origin === 'http://127.0.0.1'
  })
  await app.register(fastifyRfc6455, { protocols: ['chat'], origin: ['http://127.0.0.1'] })
  await app.register(fastifyRfc6455)
  // @ts-expect-error maxPayload is a number of bytes
  await app.register(fastifyRfc6455, { maxPayload: 'big' })
  // @ts-expect-error heartbeatInterval is milliseconds, a number
  await app.register(fastifyRfc6455, { heartbeatInterval: true })
  // @ts-expect-error a misspelt option is not an option
  await app.register(fastifyRfc6455, { maxPayloads: 1 })
  // @ts-expect-error a protocol chooser returns a name or undefined
  await app.register(fastifyRfc6455, { protocols: () => 1 })
  expectType<FastifyRfc6455Options>({ maxPayload: 1, heartbeatInterval: 1000 })

  // The app's open WebSockets.
  expectEqual<Equal<typeof app.websocketClients, ReadonlySet<WebSocket>>>()
  // @ts-expect-error the set is read-only
  app.websocketClients.add(null as unknown as WebSocket)

  // Shorthand: app.get(path, { ws: true }, (socket, request) => ...), params typed by the route generic.
  app.get<{ Params: { id: string } }>('/x/:id', { ws: true }, (socket, request) => {
    expectEqual<Equal<typeof socket, WebSocket>>()
    expectEqual<Equal<typeof request.params, { id: string }>>()
    expectEqual<Equal<ReturnType<typeof socket.send>, boolean>>()
    const sent: boolean = socket.send('x')
    expectType<boolean>(sent)
    socket.send(Buffer.from('x'))
    socket.send(new Uint8Array(1))
    socket.send(new ArrayBuffer(1))
    // @ts-expect-error send takes a string or bytes, not a number
    socket.send(42)
    socket.on('message', (data, isBinary) => {
      expectEqual<Equal<typeof data, Buffer>>()
      expectEqual<Equal<typeof isBinary, boolean>>()
    })
    socket.on('close', (code, reason) => {
      expectEqual<Equal<typeof code, number>>()
      expectEqual<Equal<typeof reason, string>>()
    })
    // @ts-expect-error no such event
    socket.on('nope', () => {})
    // @ts-expect-error params has only id
    expectType<string>(request.params.other)
  })

  // Without a generic, the request is Fastify's default request.
  app.get('/plain-ws', { ws: true }, async (socket, request) => {
    expectEqual<Equal<typeof socket, WebSocket>>()
    expectType<FastifyRequest>(request)
  })

  // Route-level options override the plugin's.
  app.get('/limited', { ws: { maxPayload: 1024, protocols: ['chat'] } }, (socket) => {
    expectEqual<Equal<typeof socket, WebSocket>>()
  })
  expectType<WebSocketOptions>({ maxPayload: 1024, protocols: ['chat'] })
  // @ts-expect-error a route's maxPayload is a number too
  app.get('/limited-wrong', { ws: { maxPayload: 'big' } }, (socket) => { socket.close() })
  // @ts-expect-error a misspelt route option is not an option
  app.get('/limited-typo', { ws: { maxPayloads: 1 } }, (socket) => { socket.close() })

  // app.route({ ws: true, handler }): handler takes the WebSocket.
  app.route({
    method: 'GET',
    url: '/y',
    ws: true,
    handler: (socket, request) => {
      expectEqual<Equal<typeof socket, WebSocket>>()
      expectType<FastifyRequest>(request)
    }
  })
  app.route<{ Params: { room: string } }>({
    method: 'GET',
    url: '/y/:room',
    ws: { maxPayload: 10 },
    handler: (socket, request) => {
      expectEqual<Equal<typeof socket, WebSocket>>()
      expectEqual<Equal<typeof request.params, { room: string }>>()
    }
  })

  // Combined route: handler answers plain HTTP, wsHandler the WebSocket.
  app.route({
    method: 'GET',
    url: '/both',
    ws: true,
    handler: (request, reply) => {
      expectType<FastifyRequest>(request)
      expectType<FastifyReply>(reply)
      return reply.send('use a WebSocket')
    },
    wsHandler: (socket, request) => {
      expectEqual<Equal<typeof socket, WebSocket>>()
      expectType<FastifyRequest>(request)
    }
  })

  // Combined shorthand: wsHandler in the options, the HTTP handler last.
  app.get<{ Params: { id: string } }>('/both/:id', {
    ws: true,
    wsHandler: (socket, request) => {
      expectEqual<Equal<typeof socket, WebSocket>>()
      expectEqual<Equal<typeof request.params, { id: string }>>()
    }
  }, (request, reply) => {
    expectEqual<Equal<typeof request.params, { id: string }>>()
    return reply.code(200).send(request.params.id)
  })

  // The handler's return value is ignored (but a promise's rejection): one-line handlers compile.
  app.get('/one-line', { ws: true }, (socket) => socket.send('hi'))
  app.get('/one-line-async', { ws: true }, async (socket) => socket.send('hi'))
  app.route({ method: 'GET', url: '/one-line-route', ws: true, handler: (socket) => socket.send('hi') })
  const returnsAnything: WebSocketHandler = (socket) => socket.readyState
  expectType<WebSocketHandler>(returnsAnything)
  expectEqual<Equal<ReturnType<WebSocketHandler>, unknown>>()

  // WebSocket-only route in the full form with wsHandler and no handler; params typed by the generic.
  app.route({ method: 'GET', url: '/ws-only', ws: true, wsHandler: (socket) => socket.send('only') })
  app.route<{ Params: { room: string } }>({
    method: 'get',
    url: '/ws-only/:room',
    ws: { idleTimeout: 1000 },
    wsHandler: (socket, request) => {
      expectEqual<Equal<typeof socket, WebSocket>>()
      expectEqual<Equal<typeof request.params, { room: string }>>()
    }
  })
  // @ts-expect-error a WebSocket route needs handler or wsHandler
  app.route({ method: 'GET', url: '/no-handler', ws: true })
  // @ts-expect-error wsHandler without ws: true would be a plain HTTP route that never calls it
  app.route({ method: 'GET', url: '/no-ws', handler: (_request, reply) => reply.send(), wsHandler: (socket) => socket.close() })
  // @ts-expect-error the HTTP handler of a combined route takes (request, reply), not the socket
  app.route({ method: 'GET', url: '/both-wrong', ws: true, handler: (socket: WebSocket) => socket.close(), wsHandler: (socket) => socket.close() })

  // Only GET may carry ws (the opening handshake is a GET, RFC 6455 §4.1): route() sees the method.
  // @ts-expect-error ws: true on POST, WebSocket handler
  app.route({ method: 'POST', url: '/post-ws', ws: true, handler: (socket: WebSocket) => socket.close() })
  // @ts-expect-error ws: true on POST, HTTP handler
  app.route({ method: 'POST', url: '/post-ws-http', ws: true, handler: (_request, reply) => reply.send() })
  // @ts-expect-error ws options on PUT with a wsHandler
  app.route({ method: 'PUT', url: '/put-ws', ws: { maxPayload: 1 }, wsHandler: (socket) => socket.close() })
  // @ts-expect-error GET among other methods
  app.route({ method: ['GET', 'POST'], url: '/get-post-ws', ws: true, handler: (socket: WebSocket) => socket.close() })
  app.route({ method: 'POST', url: '/post-ws-false', ws: false, handler: (_request, reply) => reply.send() })
  // app.get and app.post share one type in Fastify (RouteShorthandMethod), so
  // app.post(url, { ws: true }, handler) is refused at startup only (FST_WS_ROUTE_METHOD).

  // Ordinary HTTP routes are untouched.
  app.get<{ Params: { id: string } }>('/http/:id', (request, reply) => {
    expectEqual<Equal<typeof request.params, { id: string }>>()
    expectType<FastifyReply>(reply)
    return reply.send({ id: request.params.id })
  })
  app.get('/http-opts', { schema: {} }, async (request, reply) => {
    expectType<FastifyRequest>(request)
    expectType<FastifyReply>(reply)
    return 'ok'
  })
  app.route({
    method: 'POST',
    url: '/http-route',
    handler: (request, reply) => {
      expectType<FastifyRequest>(request)
      return reply.code(201).send()
    }
  })
}
