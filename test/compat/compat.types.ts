/**
 * Types of fastify-rfc6455/compat, checked by `npm run typecheck`
 * (tsconfig.compat.json; the main program leaves lib/compat.ts out, since
 * its route options are @fastify/websocket's): code written for
 * @fastify/websocket 11 compiles unchanged, and each `@ts-expect-error`
 * fails the typecheck when the line below it compiles.
 */
import Fastify from 'fastify'
import fastifyWebsocket, { type WebsocketHandler } from '../../lib/compat.js'
import type { InjectedWebSocket } from '../../lib/handshake/inject.js'
import type { WebSocket } from '../../lib/socket/websocket.js'

function expectType<T> (value: T): T {
  return value
}

export async function compatTypes (): Promise<void> {
  const app = Fastify()
  await app.register(fastifyWebsocket, {
    options: { maxPayload: 1048576, perMessageDeflate: { threshold: 0, zlibDeflateOptions: { level: 6 } } },
    errorHandler (error, socket, request, reply) {
      expectType<Error>(error)
      socket.terminate()
      request.log.error(error)
      expectType<boolean>(reply.sent)
    },
    preClose: async () => {},
    heartbeatInterval: 0
  })
  // @ts-expect-error maxPayload is a number of bytes
  await app.register(fastifyWebsocket, { options: { maxPayload: 'big' } })
  await app.register(fastifyWebsocket, { options: { verifyClient: (info) => info.req.headers.authorization !== undefined } })
  await app.register(fastifyWebsocket, { options: { verifyClient: (info, done) => { done(info.secure, 403) } } })

  app.get<{ Params: { room: string } }>('/rooms/:room', { websocket: true }, (socket, request) => {
    expectType<WebSocket>(socket)
    expectType<string>(request.params.room)
    expectType<boolean>(request.ws)
    socket.on('message', (data) => socket.send(data.toString()))
  })
  app.get('/async', { websocket: true }, async (socket) => { socket.close() })
  app.route({ method: 'GET', url: '/route', websocket: true, handler: (socket) => { socket.close() } })
  app.route({
    method: 'GET',
    url: '/both',
    handler: (_request, reply) => { reply.send('http') },
    wsHandler: (socket, request) => { socket.send(request.url) }
  })
  app.get('/typed', { websocket: true }, (socket) => {
    // @ts-expect-error send takes a string or bytes, not a number
    socket.send(42)
  })

  const handler: WebsocketHandler = (socket) => { socket.ping() }
  app.get('/named', { websocket: true }, handler)

  expectType<ReadonlySet<WebSocket>>(app.websocketServer.clients)
  app.websocketServer.on('connection', (socket, request) => { socket.send(request.url ?? '') })
  expectType<Promise<InjectedWebSocket>>(app.injectWS())
  expectType<Promise<InjectedWebSocket>>(app.injectWS('/rooms/a', { headers: { 'x-key': 'k' } }, { onInit: (ws) => { ws.terminate() }, onOpen: () => {} }))
}
