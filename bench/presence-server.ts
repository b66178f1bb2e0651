/**
 * One instance for the presence case (bench/presence.ts): an app with a
 * RedisBroker (REDIS_URL) and presence. GET /p?id=&track=0|1 (WebSocket):
 * with track=1 the socket is present in the topic `big` as `id`, and sends
 * `ok` once it is; with track=0 it only sends `ok`. GET /memory: heap and
 * Buffers after a full GC; GET /members: how many members `big` has on every
 * instance and how long listing them took (ms). Prints `{"listening":PORT}`.
 */
import Fastify from 'fastify'
import fastifyRfc6455 from 'fastify-rfc6455'
import { RedisBroker } from 'fastify-rfc6455/redis'

const gc = globalThis.gc!
const app = Fastify({ logger: false })
await app.register(fastifyRfc6455, { broker: new RedisBroker({ url: process.env.REDIS_URL! }), presence: { maxMembers: 100_000 }, heartbeatInterval: 0 })
app.get<{ Querystring: { id: string, track: string } }>('/p', { ws: true }, async (socket, request) => {
  if (request.query.track === '1') await socket.track('big', request.query.id, { name: request.query.id })
  socket.send('ok')
})
app.get('/memory', async () => {
  gc()
  gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return { bytes: heapUsed + arrayBuffers }
})
app.get('/members', async () => {
  const started = performance.now()
  const members = await app.websocket.cluster.presence('big')
  return { count: members.length, ms: performance.now() - started }
})
await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ listening: (app.server.address() as { port: number }).port }) + '\n')
