/**
 * Echo server for conformance and speed work: text stays text, binary stays
 * binary, on path `/`.
 *   PORT         TCP port (default 9001)
 *   MAX_PAYLOAD  bytes of one message (default: Fastify's bodyLimit, 1 MiB)
 *   DEFLATE=1    accept permessage-deflate (RFC 7692)
 *   HTTP2=1      serve TLS, HTTP/2 and HTTP/1.1 (ALPN) on PORT: WebSockets over
 *                HTTP/2 streams (RFC 8441) and HTTP/1.1 upgrades; the certificate
 *                is read from TLS_CERT and TLS_KEY (PEM files), or made self-signed
 *                with the openssl CLI
 *   H2C=1        serve cleartext HTTP/2 only (h2c, prior knowledge)
 */
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRfc6455 from 'fastify-rfc6455'
import { certificateFromEnv } from './tls.js'

const port = Number(process.env.PORT ?? 9001)
const maxPayload = process.env.MAX_PAYLOAD === undefined ? undefined : Number(process.env.MAX_PAYLOAD)

const logger = process.env.LOG === '1'
const http2 = process.env.HTTP2 === '1'
const h2c = process.env.H2C === '1'
// Routes are declared the same way on every kind of server: one type serves below.
const app = (http2
  ? Fastify({ logger, requestTimeout: 10_000, http2: true, https: { allowHTTP1: true, ...certificateFromEnv() } })
  : h2c
    ? Fastify({ logger, requestTimeout: 10_000, http2: true })
    // A client that sends no request, or drips it, is dropped within 12 s (README, "Production settings").
    : Fastify({ logger, requestTimeout: 10_000, http: { headersTimeout: 10_000, connectionsCheckingInterval: 2_000 } })
) as FastifyInstance
await app.register(fastifyRfc6455, { maxPayload, perMessageDeflate: process.env.DEFLATE === '1' })
app.get('/', { ws: true }, (socket) => {
  socket.on('message', (data, isBinary) => {
    socket.send(isBinary ? data : data.toString('utf8'))
  })
})
await app.listen({ port, host: process.env.HOST ?? '127.0.0.1' })
console.log(`echo server on ${http2 ? 'wss' : 'ws'}://127.0.0.1:${port}/${http2 ? ' (HTTP/2 and HTTP/1.1)' : h2c ? ' (h2c only)' : ''}`)
