/**
 * Echo server for conformance and speed work: text stays text, binary stays
 * binary, on path `/`.
 *   PORT         TCP port (default 9001)
 *   MAX_PAYLOAD  bytes of one message (default: Fastify's bodyLimit, 1 MiB)
 *   DEFLATE=1    accept permessage-deflate (RFC 7692)
 */
import Fastify from 'fastify'
import fastifyRfc6455 from 'fastify-rfc6455'

const port = Number(process.env.PORT ?? 9001)
const maxPayload = process.env.MAX_PAYLOAD === undefined ? undefined : Number(process.env.MAX_PAYLOAD)

// A client that sends no request, or drips it, is dropped within 12 s (README, "Production settings").
const app = Fastify({
  logger: process.env.LOG === '1',
  requestTimeout: 10_000,
  http: { headersTimeout: 10_000, connectionsCheckingInterval: 2_000 }
})
await app.register(fastifyRfc6455, { maxPayload, perMessageDeflate: process.env.DEFLATE === '1' })
app.get('/', { ws: true }, (socket) => {
  socket.on('message', (data, isBinary) => {
    socket.send(isBinary ? data : data.toString('utf8'))
  })
})
await app.listen({ port, host: process.env.HOST ?? '127.0.0.1' })
console.log(`echo server on ws://127.0.0.1:${port}/`)
