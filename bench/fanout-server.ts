/**
 * Fan-out servers, one per process: every connection is a subscriber of one
 * topic, and every message any connection sends goes to all of them, the
 * sender included (whose copy is the publisher's acknowledgement; wsload's
 * `-m fanout` expects just that).
 *
 *   node --import tsx bench/fanout-server.ts rfc6455|ws|fastify-websocket
 *
 * env PORT, MAX_PAYLOAD as bench/echo-server.ts; REDIS_URL (rfc6455 only):
 * carry publishes between instances through the Redis broker; DEFLATE
 * (rfc6455 and ws): accept permessage-deflate, 'takeover' with context
 * takeover (the default of both), 'no-context-takeover' with
 * server_no_context_takeover asked for.
 *   rfc6455            fastify-rfc6455 (the built package): socket.subscribe(topic),
 *                      app.websocket.publish(topic, data)
 *   ws                 ws 8 with bufferutil: for (const c of wss.clients) c.send(data)
 *   fastify-websocket  @fastify/websocket 11: the same loop over fastify.websocketServer.clients
 */
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import fastifyRfc6455, { type FastifyRfc6455Options } from 'fastify-rfc6455'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { checkBufferutil } from './bufferutil.js'

const kind = process.argv[2]
const port = Number(process.env.PORT ?? 9001)
const maxPayload = Number(process.env.MAX_PAYLOAD ?? 16 * 1024 * 1024)
const redisUrl = process.env.REDIS_URL
const host = '127.0.0.1'
const TOPIC = 'bench'
const deflate = process.env.DEFLATE === undefined ? false : { serverNoContextTakeover: process.env.DEFLATE === 'no-context-takeover' }

/** The loop both ws-based servers run: one send per client. */
function fanOut (clients: Set<WebSocket>): (data: RawData, isBinary: boolean) => void {
  return (data, isBinary) => {
    for (const client of clients) client.send(data, { binary: isBinary })
  }
}

switch (kind) {
  case 'rfc6455': {
    const options: FastifyRfc6455Options = { maxPayload, perMessageDeflate: deflate }
    if (redisUrl !== undefined) {
      const { RedisBroker } = await import('fastify-rfc6455/redis')
      options.broker = new RedisBroker({ url: redisUrl })
    }
    const app = Fastify({ logger: false })
    await app.register(fastifyRfc6455, options)
    app.get('/', { ws: true }, (socket) => {
      socket.subscribe(TOPIC)
      socket.on('message', (data, isBinary) => {
        app.websocket.publish(TOPIC, isBinary ? data : data.toString('utf8'))
      })
    })
    await app.listen({ port, host })
    break
  }
  case 'ws': {
    checkBufferutil()
    const server = new WebSocketServer({ port, host, maxPayload, perMessageDeflate: deflate })
    const onMessage = fanOut(server.clients)
    server.on('connection', (socket) => socket.on('message', onMessage))
    await new Promise((resolve) => server.once('listening', resolve))
    break
  }
  case 'fastify-websocket': {
    checkBufferutil()
    const app = Fastify({ logger: false })
    await app.register(fastifyWebsocket, { options: { maxPayload } })
    let onMessage: ReturnType<typeof fanOut> | undefined
    app.get('/', { websocket: true }, (socket) => {
      onMessage ??= fanOut(app.websocketServer.clients)
      socket.on('message', onMessage)
    })
    await app.listen({ port, host })
    break
  }
  default:
    throw new Error(`unknown server ${kind}: rfc6455, ws or fastify-websocket`)
}
console.log(`${kind} fan-out server on 127.0.0.1:${port}`)
