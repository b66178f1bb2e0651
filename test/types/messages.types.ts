/**
 * Type test, checked by `npm run typecheck` (tsc over test/), never run:
 * the message a listener or the async iterator gets is typed from the
 * route's `schema.message` through the app's type provider (TypeBox here),
 * `unknown` for JSON without a schema, and a Buffer otherwise; what
 * `sendJSON()` takes is typed from `schema.send`.
 */
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify from 'fastify'
import { Type } from 'typebox'
import fastifyRfc6455, {
  type MessageHook, type MessageValidationError, type WebSocket, type WebSocketMessage
} from '../../lib/index.js'

/** True when A and B are the same type (not merely assignable either way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

/** Compiles only when `Check` is `true`: use as `expectEqual<Equal<A, B>>()`. */
function expectEqual<Check extends true> (): Check | void {}

const Chat = Type.Object({ room: Type.String(), text: Type.String(), urgent: Type.Optional(Type.Boolean()) })
type ChatMessage = { room: string, text: string, urgent?: boolean }

export async function messageTypeChecks (): Promise<void> {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  await app.register(fastifyRfc6455)

  // Shorthand: the listener's argument and the iterator's data are the schema's static type.
  app.get('/chat', { ws: { messages: 'json' }, schema: { message: Chat } }, async (socket) => {
    expectEqual<Equal<typeof socket, WebSocket<ChatMessage>>>()
    socket.on('message', (message, isBinary) => {
      expectEqual<Equal<typeof message, ChatMessage>>()
      expectEqual<Equal<typeof isBinary, boolean>>()
      // @ts-expect-error the schema has no such property
      socket.send(message.author)
    })
    socket.on('invalid', (error) => {
      expectEqual<Equal<typeof error, MessageValidationError>>()
    })
    for await (const message of socket) {
      expectEqual<Equal<typeof message, WebSocketMessage<ChatMessage>>>()
      expectEqual<Equal<typeof message.data.text, string>>()
    }
    for await (const { data } of socket.messages({ closeOnReturn: false })) {
      expectEqual<Equal<typeof data, ChatMessage>>()
    }
  })

  // app.route, with handler or wsHandler.
  app.route({
    method: 'GET',
    url: '/chat-route',
    ws: { messages: 'json', invalidMessages: 'emit' },
    schema: { message: Chat },
    handler: (socket) => {
      socket.on('message', (message) => { expectEqual<Equal<typeof message, ChatMessage>>() })
    }
  })
  app.route({
    method: 'GET',
    url: '/chat-both',
    ws: { messages: 'json' },
    schema: { message: Chat },
    handler: (_request, reply) => reply.send('use a WebSocket'),
    wsHandler: (socket) => {
      socket.on('message', (message) => { expectEqual<Equal<typeof message, ChatMessage>>() })
    }
  })

  // JSON without a schema: unknown. No JSON: Buffer, as before.
  app.get('/json', { ws: { messages: 'json' } }, (socket) => {
    socket.on('message', (message) => { expectEqual<Equal<typeof message, unknown>>() })
  })
  app.get('/bytes', { ws: true }, async (socket) => {
    socket.on('message', (message) => { expectEqual<Equal<typeof message, Buffer>>() })
    for await (const { data } of socket) expectEqual<Equal<typeof data, Buffer>>()
  })
  app.get('/bytes-options', { ws: { maxPayload: 10, messages: 'buffer' } }, (socket) => {
    expectEqual<Equal<typeof socket, WebSocket>>()
  })

  // Without a type provider, a schema types nothing: unknown.
  const plain = Fastify()
  plain.get('/plain', { ws: { messages: 'json' }, schema: { message: { type: 'object' } } }, (socket) => {
    socket.on('message', (message) => { expectEqual<Equal<typeof message, unknown>>() })
  })

  // Hooks: plugin and route options; the data is unknown (a hook may serve Buffer and JSON routes).
  const hook: MessageHook = (message, socket) => {
    expectEqual<Equal<typeof message.data, unknown>>()
    if (Buffer.isBuffer(message.data) && message.data.length === 0) return false
    socket.close(1000)
  }
  await app.register(fastifyRfc6455, { onMessage: [hook, async () => {}], invalidMessages: 'close' })
  app.get('/hooked', { ws: { onMessage: hook } }, (socket) => socket.close())
  // @ts-expect-error messages is a route option: the types of a route's messages come from the route
  await app.register(fastifyRfc6455, { messages: 'json' })
  // @ts-expect-error a hook returns nothing, a boolean, or a promise of one
  app.get('/bad-hook', { ws: { onMessage: () => 'drop' } }, (socket) => socket.close())
  // @ts-expect-error messages is 'buffer' or 'json'
  app.get('/bad-format', { ws: { messages: 'xml' } }, (socket) => socket.close())

  // schema.send types what sendJSON() takes; without it, any value.
  const Reply = Type.Object({ kind: Type.Literal('reply'), n: Type.Integer() })
  app.get('/replies', { ws: { messages: 'json', validateSend: true }, schema: { message: Chat, send: Reply } }, (socket) => {
    expectEqual<Equal<typeof socket, WebSocket<ChatMessage, { kind: 'reply', n: number }>>>()
    expectEqual<Equal<Parameters<typeof socket.sendJSON>[0], { kind: 'reply', n: number }>>()
    socket.sendJSON({ kind: 'reply', n: 1 })
    // @ts-expect-error n must be a number
    socket.sendJSON({ kind: 'reply', n: '1' })
    // @ts-expect-error kind must be 'reply'
    socket.sendJSON({ kind: 'other', n: 1 })
  })
  app.route({
    method: 'GET',
    url: '/replies-route',
    ws: true,
    schema: { send: Reply },
    handler: (socket) => {
      // @ts-expect-error the schema has no such shape
      socket.sendJSON('text')
    }
  })
  app.get('/any-send', { ws: true }, (socket) => {
    expectEqual<Equal<Parameters<typeof socket.sendJSON>[0], unknown>>()
    socket.sendJSON({ anything: [1, 2] })
  })
  // @ts-expect-error validateSend is a boolean
  app.get('/bad-validate-send', { ws: { validateSend: 'no' } }, (socket) => socket.close())
}
