/**
 * The servers fastify-rfc6455 is compared with, one per process:
 *   node --import tsx bench/echo-server.ts ws|fastify-websocket|net
 * env PORT, MAX_PAYLOAD, as examples/echo.ts (which is how ours runs).
 *   ws                 plain `ws` WebSocketServer echo; refuses to start unless
 *                      ws masks and unmasks through bufferutil's native code
 *   fastify-websocket  Fastify + @fastify/websocket echo
 *   net                node:net echo, no WebSocket at all: bytes read are
 *                      written back (the ceiling)
 */
import net from 'node:net'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { WebSocketServer, type WebSocket } from 'ws'
import { checkBufferutil } from './bufferutil.js'

const kind = process.argv[2]
const port = Number(process.env.PORT ?? 9001)
const maxPayload = Number(process.env.MAX_PAYLOAD ?? 16 * 1024 * 1024)
const host = '127.0.0.1'

function echo (socket: WebSocket): void {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
}

switch (kind) {
  case 'ws': {
    checkBufferutil()
    const server = new WebSocketServer({ port, host, maxPayload })
    server.on('connection', echo)
    await new Promise((resolve) => server.once('listening', resolve))
    break
  }
  case 'fastify-websocket': {
    checkBufferutil()
    const app = Fastify({ logger: false })
    await app.register(fastifyWebsocket, { options: { maxPayload } })
    app.get('/', { websocket: true }, echo)
    await app.listen({ port, host })
    break
  }
  case 'net': {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true)
      socket.on('data', (chunk) => socket.write(chunk))
      socket.on('error', () => {})
    })
    await new Promise<void>((resolve) => server.listen(port, host, resolve))
    break
  }
  default:
    throw new Error(`unknown server ${kind}: ws, fastify-websocket or net`)
}
console.log(`${kind} echo server on 127.0.0.1:${port}`)
