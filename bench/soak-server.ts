/**
 * The server of `npm run soak` (bench/soak.ts), in its own process:
 *   node --import tsx --expose-gc bench/soak-server.ts
 * env PORT. Ours from the built package (dist/, as examples/echo.ts), with
 * permessage-deflate accepted (a client that does not offer it gets none):
 *   /              WebSocket echo; text stays text, binary stays binary
 *   /soak/memory   plain HTTP GET: a full garbage collection, then JSON
 *                  { memory: process.memoryUsage() (bytes), open: WebSockets open }
 * Exits when its stdin ends, so that it does not outlive the soak that started it.
 */
import Fastify from 'fastify'
import fastifyRfc6455 from 'fastify-rfc6455'

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc: the soak reads memory after a full GC')

const app = Fastify({ logger: false })
await app.register(fastifyRfc6455, { maxPayload: 1024 * 1024, perMessageDeflate: true })
app.get('/', { ws: true }, (socket) => {
  socket.on('message', (data, isBinary) => {
    socket.send(isBinary ? data : data.toString('utf8'))
  })
})
app.get('/soak/memory', async () => {
  gc()
  return { memory: process.memoryUsage(), open: app.websocketClients.size }
})
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
process.stdin.resume()
process.stdin.once('end', () => process.exit(0))
console.log(`soak server on ws://127.0.0.1:${process.env.PORT}/`)
