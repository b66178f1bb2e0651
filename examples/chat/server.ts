/**
 * Chat example: an HTML page (a plain HTTP route) and a WebSocket route,
 * /chat/:room, that broadcasts every message to the room. Run with `npm start`;
 * PORT sets the port (default 3000, 0 for any free one).
 */
import { readFile } from 'node:fs/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455, { broadcast, type WebSocket } from 'fastify-rfc6455'

const page = await readFile(new URL('./index.html', import.meta.url), 'utf8')

/** Builds the chat app; `rooms` maps a room name to its open sockets. */
export async function buildChatApp (options: { logger?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })
  const rooms = new Map<string, Set<WebSocket>>()
  await app.register(fastifyRfc6455, { maxPayload: 64 * 1024, perMessageDeflate: true })

  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page))

  app.get<{ Params: { room: string } }>('/chat/:room', { ws: true }, (socket, request) => {
    const name = request.params.room
    let room = rooms.get(name)
    if (room === undefined) rooms.set(name, room = new Set())
    room.add(socket)
    socket.on('message', (data, isBinary) => {
      if (!isBinary) broadcast(room, data.toString('utf8'))
    })
    socket.on('close', () => {
      room.delete(socket)
      if (room.size === 0) rooms.delete(name)
    })
  })
  return app
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const app = await buildChatApp({ logger: true })
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 3000
  console.log(`chat example: open http://127.0.0.1:${port}/ in two browser tabs`)
}
