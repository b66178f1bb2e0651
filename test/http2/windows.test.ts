/**
 * HTTP/2 flow-control windows (RFC 9113 §6.9) sized from `highWaterMark`:
 * each stream's receive window is `highWaterMark` (SETTINGS_INITIAL_WINDOW_SIZE),
 * the connection's 16 times that, advertised with a WINDOW_UPDATE on stream 0.
 * And the case a window larger than the sockets' buffers stalled: many
 * WebSockets echoing large messages on one connection to a node:http2 client
 * whose own receive windows are 16 MiB all complete.
 */
import http2 from 'node:http2'
import { test } from 'tap'
import fastifyRfc6455, { type FastifyRfc6455Options } from '../../lib/index.js'
import { closeApp, listen, withTimeout } from '../support/app.js'
import { pseudoRandomBytes } from '../support/payloads.js'
import { H2WebSocket, http2App, OP, until } from '../support/http2-client.js'
import { clientFrame } from '../support/frames.js'

async function start (t: { teardown: (fn: () => Promise<void>) => void }, options: FastifyRfc6455Options): Promise<number> {
  const app = http2App()
  await app.register(fastifyRfc6455, options)
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  const port = await listen(app)
  t.teardown(() => closeApp(app))
  return port
}

/** A client session with 16 MiB receive windows (stream and connection), once the server's SETTINGS have come. */
async function bigWindowSession (port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 16 * 1024 * 1024 } })
  session.on('error', () => { /* its streams report it */ })
  await withTimeout(new Promise((resolve) => session.once('remoteSettings', resolve)), 'the server SETTINGS')
  session.setLocalWindowSize(16 * 1024 * 1024)
  return session
}

for (const highWaterMark of [64 * 1024, 256 * 1024]) {
  test(`highWaterMark ${highWaterMark}: stream window ${highWaterMark} bytes, connection window ${16 * highWaterMark}`, async (t) => {
    const port = await start(t, { highWaterMark })
    const session = await bigWindowSession(port)
    t.teardown(() => { session.destroy() })
    t.equal(session.remoteSettings.initialWindowSize, highWaterMark, 'SETTINGS_INITIAL_WINDOW_SIZE')
    // The connection's window grows with a WINDOW_UPDATE that follows the SETTINGS.
    await until(() => session.state.remoteWindowSize === 16 * highWaterMark, 'the connection window update')
    t.equal(session.state.remoteWindowSize, 16 * highWaterMark, 'the connection window')
  })
}

test('100 WebSockets on one connection, 8 messages of 64 KiB in flight each, to a client with 16 MiB windows: every echo comes back', async (t) => {
  const port = await start(t, { maxPayload: 1024 * 1024 })
  const session = await bigWindowSession(port)
  t.teardown(() => { session.destroy() })
  const sockets = await Promise.all(Array.from({ length: 100 }, async () => await H2WebSocket.open(session, '/echo')))
  const payloads = Array.from({ length: 8 }, (_, i) => pseudoRandomBytes(64 * 1024, i + 1))
  // All written at once: 52 MB in flight each way, more than the sockets' buffers hold.
  for (const socket of sockets) {
    for (const payload of payloads) socket.write(clientFrame(OP.binary, payload))
  }
  let mismatched = 0
  for (const socket of sockets) {
    for (const payload of payloads) {
      const frame = await socket.nextFrame('an echo')
      if (frame.opcode !== OP.binary || !frame.payload.equals(payload)) mismatched++
    }
  }
  t.equal(mismatched, 0, '800 echoes, byte-exact and in order')
})
