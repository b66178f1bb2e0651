import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { delay, start, withTimeout } from './helpers.js'

/**
 * The README's "Production settings", scaled down: Node checks every
 * `connectionsCheckingInterval` ms for connections whose request head has
 * taken over `headersTimeout` ms, or whose request over `requestTimeout` ms.
 */
const SETTINGS = { requestTimeout: 500, http: { headersTimeout: 300, connectionsCheckingInterval: 100 } }

/** Longer than every setting above, several checks over. */
const IDLE_MS = 1500

test("Node's request timeouts drop slow clients before the handshake, and leave an upgraded WebSocket alone", async (t) => {
  const app = Fastify(SETTINGS)
  await app.register(fastifyRfc6455)
  const serverCloses: number[] = []
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
    socket.on('close', (code) => serverCloses.push(code))
  })
  const h = await start(t, app)
  t.equal(app.server.requestTimeout, 500, "Fastify's requestTimeout reaches the server")
  t.equal(app.server.headersTimeout, 300, 'and http.headersTimeout')

  const idle = await h.client('/echo')
  const rawIdle = await h.rawWebSocket('/echo')
  const silent = await h.raw()
  const drip = await h.raw()
  const dripping = (async () => {
    for (const byte of Buffer.from('GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n')) {
      if (drip.socket.destroyed || !drip.socket.writable) return
      drip.write(Uint8Array.of(byte))
      await delay(50)
    }
  })()

  await t.test('a client that connects and sends nothing gets 408 and is disconnected', async (t) => {
    const response = await silent.readHttpResponse()
    t.equal(response.status, 408)
    await silent.waitForEnd()
  })

  await t.test('a client that sends its request a byte at a time gets 408 and is disconnected', async (t) => {
    const response = await drip.readHttpResponse()
    t.equal(response.status, 408)
    await withTimeout(Promise.race([drip.ended, drip.closed]), 'the server to end the dripping connection')
    await dripping
  })

  await t.test('WebSockets idle past every timeout are still open and working', async (t) => {
    await delay(IDLE_MS)
    idle.send('still there')
    t.equal(await idle.nextMessage(), 'still there', 'undici client: echoed')
    rawIdle.sendFrame(0x1, 'raw')
    const frame = await rawIdle.readFrame()
    t.same([frame.opcode, frame.payload.toString()], [0x1, 'raw'], 'raw client: echoed')
    t.same(serverCloses, [], 'no close event on the server')
    t.equal(app.websocketClients.size, 2, 'both in websocketClients')
  })
})
