/**
 * Loaded by @fastify/autoload from routes/rooms/ under the prefix /rooms, in
 * its own encapsulated instance, with an onRequest hook of its own.
 */
import type { FastifyInstance } from 'fastify'

export default async function rooms (app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization !== 'Bearer member') await reply.code(401).send('members only')
  })
  app.get('/:room', { ws: true }, (socket, request) => {
    const { room } = request.params as { room: string }
    socket.on('message', (data) => socket.send(`${room}: ${data.toString()}`))
  })
}
