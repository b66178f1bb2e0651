/**
 * Type test, checked by `npm run typecheck` (tsc over test/), never run:
 * a WebSocket handler's messages and request follow the route with an
 * explicit route generic (which turns off the inference of `ws`) and with a
 * type provider (the request's params and querystring from the schema).
 * Each `@ts-expect-error` fails the typecheck when the line below it
 * compiles, that is when the typing is lost.
 */
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify from 'fastify'
import { Type } from 'typebox'
import fastifyRfc6455, { type WebSocket } from '../../lib/index.js'

/** True when A and B are the same type (not merely assignable either way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

/** Compiles only when `Check` is `true`: use as `expectEqual<Equal<A, B>>()`. */
function expectEqual<Check extends true> (): Check | void {}

const Chat = Type.Object({ text: Type.String() })
const Room = Type.Object({ room: Type.String() })
const Query = Type.Object({ name: Type.String(), limit: Type.Optional(Type.Integer()) })

export async function routeGenericChecks (): Promise<void> {
  const app = Fastify()
  await app.register(fastifyRfc6455)

  // An explicit route generic on a JSON route: the messages are parsed JSON, not Buffers.
  app.get<{ Params: { room: string } }>('/r/:room', { ws: { messages: 'json' } }, (socket, request) => {
    expectEqual<Equal<typeof request.params, { room: string }>>()
    expectEqual<Equal<typeof socket, WebSocket<unknown>>>()
    socket.on('message', (data) => {
      expectEqual<Equal<typeof data, unknown>>()
      // @ts-expect-error parsed JSON is unknown until narrowed, not a Buffer
      socket.send(data.toString())
    })
  })
  app.route<{ Params: { room: string } }>({
    method: 'GET',
    url: '/route/:room',
    ws: { messages: 'json', maxPayload: 1024 },
    handler: (socket, request) => {
      expectEqual<Equal<typeof request.params, { room: string }>>()
      socket.on('message', (data) => { expectEqual<Equal<typeof data, unknown>>() })
    }
  })
  app.route<{ Params: { room: string } }>({
    method: 'GET',
    url: '/both/:room',
    ws: { messages: 'json' },
    handler: (request, reply) => reply.send(request.params.room),
    wsHandler: (socket) => {
      socket.on('message', (data) => { expectEqual<Equal<typeof data, unknown>>() })
    }
  })
  // With an explicit generic and no `messages: 'json'`, Buffers as before.
  app.get<{ Params: { room: string } }>('/b/:room', { ws: { maxPayload: 10 } }, (socket) => {
    socket.on('message', (data) => { expectEqual<Equal<typeof data, Buffer>>() })
  })

  // A type provider: params and querystring from the schema, messages from schema.message, in both styles.
  const typed = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  await typed.register(fastifyRfc6455)
  typed.get('/typed/:room', { ws: { messages: 'json' }, schema: { params: Room, querystring: Query, message: Chat } }, (socket, request) => {
    expectEqual<Equal<typeof request.params, { room: string }>>()
    expectEqual<Equal<typeof request.query.name, string>>()
    expectEqual<Equal<typeof request.query.limit, number | undefined>>()
    // @ts-expect-error the params schema has no such key
    socket.send(request.params.other)
    socket.on('message', (message) => { expectEqual<Equal<typeof message, { text: string }>>() })
  })
  typed.get('/typed-buffer/:room', { ws: true, schema: { params: Room } }, (socket, request) => {
    expectEqual<Equal<typeof request.params.room, string>>()
    socket.on('message', (data) => { expectEqual<Equal<typeof data, Buffer>>() })
  })
  typed.route({
    method: 'GET',
    url: '/typed-route/:room',
    ws: { messages: 'json' },
    schema: { params: Room, querystring: Query, message: Chat },
    handler: (socket, request) => {
      expectEqual<Equal<typeof request.params.room, string>>()
      expectEqual<Equal<typeof request.query.name, string>>()
      socket.on('message', (message) => { expectEqual<Equal<typeof message, { text: string }>>() })
    }
  })
  typed.route({
    method: 'GET',
    url: '/typed-both/:room',
    ws: true,
    schema: { params: Room },
    handler: (request, reply) => reply.send(request.params.room),
    wsHandler: (socket, request) => {
      expectEqual<Equal<typeof request.params.room, string>>()
      socket.close()
    }
  })
  typed.get('/typed-shorthand-both/:room', {
    ws: true,
    schema: { params: Room },
    wsHandler: (socket, request) => {
      expectEqual<Equal<typeof request.params.room, string>>()
      socket.close()
    }
  }, (request, reply) => reply.send(request.params.room))
}
