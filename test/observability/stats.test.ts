/**
 * `socket.stats` and `app.websocket.stats()` against exchanges whose wire
 * bytes are known: a client frame is 2 bytes of header (4 from 126 bytes of
 * payload), 4 of masking key and the payload; a server frame the same
 * without the key (RFC 6455 §5.2). Raw node:net clients on 127.0.0.1 write
 * and read exact bytes.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import fastifyRfc6455, { broadcast, type FastifyRfc6455Options, type WebSocket } from '../../lib/index.js'
import { compressMessage } from '../deflate/helpers.js'
import { closeApp, listen } from '../support/app.js'
import { clientFrame, upgradeRequest } from '../support/frames.js'
import { closeBody, OP, until } from '../support/http2-client.js'
import { RawClients, type RawClient } from '../support/raw-client.js'

/** An app with echo routes `/a` and `/b/:id`, listening; the sockets its handlers got, in order. */
async function echoApp (t: Test, options: FastifyRfc6455Options = {}): Promise<{ app: FastifyInstance, raws: RawClients, sockets: WebSocket[] }> {
  const app = Fastify()
  await app.register(fastifyRfc6455, options)
  const sockets: WebSocket[] = []
  const echo = (socket: WebSocket): void => {
    sockets.push(socket)
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString('utf8')))
  }
  app.get('/a', { ws: true }, echo)
  app.get('/b/:id', { ws: true }, echo)
  const raws = new RawClients(await listen(app))
  t.teardown(async () => {
    for (const raw of raws) raw.reset()
    await closeApp(app)
  })
  return { app, raws, sockets }
}

/** Sends a close frame with 1000, reads the server's, and ends the TCP connection once the server has. */
async function closeCleanly (raw: RawClient): Promise<void> {
  raw.sendFrame(OP.close, closeBody(1000))
  const frame = await raw.readFrame()
  if (frame.opcode !== OP.close) throw new Error(`expected a close frame, got opcode ${frame.opcode}`)
  await raw.waitForEnd()
  raw.end()
}

test('socket.stats: whole messages each way, and every frame\'s bytes with its header, control frames included', async (t) => {
  const { raws, sockets } = await echoApp(t)
  const raw = await raws.connect()
  // The first message arrives with the handshake, in the upgrade's `head`.
  raw.write(Buffer.concat([Buffer.from(upgradeRequest('/a')), clientFrame(OP.text, 'abc')]))
  t.equal((await raw.readHttpResponse()).status, 101)
  const [socket] = sockets
  raw.sendFrame(OP.binary, Buffer.alloc(200, 7))
  raw.sendFrame(OP.text, 'he', { fin: false })
  raw.sendFrame(0x0, 'llo')
  raw.sendFrame(OP.ping, 'p')
  let wire = 0
  const opcodes: number[] = []
  for (let i = 0; i < 4; i++) {
    const frame = await raw.readFrame()
    opcodes.push(frame.opcode)
    wire += frame.bytes.length
  }
  t.same(opcodes, [OP.text, OP.binary, OP.text, OP.pong], 'three echoes and a pong')
  const snapshot = socket.stats
  // In: "abc" 2+4+3, 200 bytes 2+2+4+200, "he" 2+4+2 and "llo" 2+4+3 (one message), ping "p" 2+4+1.
  // Out: "abc" 2+3, 200 bytes 2+2+200, "hello" 2+5, pong "p" 2+1.
  t.same(snapshot, { messagesIn: 3, messagesOut: 3, bytesIn: 9 + 208 + 17 + 7, bytesOut: 5 + 204 + 7 + 3 })
  t.equal(snapshot.bytesOut, wire, 'bytesOut is what the client read')

  await closeCleanly(raw)
  await until(() => socket.readyState === 3, 'CLOSED')
  t.same(socket.stats, { messagesIn: 3, messagesOut: 3, bytesIn: 241 + 8, bytesOut: 219 + 4 }, 'the close frames count, 2+4+2 in and 2+2 out')
  t.equal(socket.send('late'), false, 'a send after the close is dropped')
  t.equal(socket.stats.messagesOut, 3, 'and not counted')
  t.same(snapshot, { messagesIn: 3, messagesOut: 3, bytesIn: 241, bytesOut: 219 }, 'an earlier snapshot does not change')
})

test('socket.stats with permessage-deflate: bytes are the compressed frames on the wire', async (t) => {
  const { raws, sockets } = await echoApp(t, { perMessageDeflate: true })
  const raw = await raws.webSocket('/a', { extensions: 'permessage-deflate' })
  t.equal(raw.response?.headers['sec-websocket-extensions'], 'permessage-deflate', 'negotiated')
  const [socket] = sockets
  const text = 'a'.repeat(2000)
  const compressed = clientFrame(OP.text, compressMessage(Buffer.from(text)), { rsv1: true })
  raw.write(compressed)
  const echo = await raw.readFrame()
  t.ok(echo.rsv1, 'the echo of 2000 bytes (over the 1024-byte threshold) is compressed')
  raw.sendFrame(OP.text, 'hi')
  const small = await raw.readFrame()
  t.same([small.rsv1, small.bytes.length], [false, 4], 'the echo of "hi" (under the threshold) is not')
  t.ok(compressed.length < 100 && echo.bytes.length < 100, `2000 bytes of text took ${compressed.length} bytes in and ${echo.bytes.length} out`)
  t.same(socket.stats, { messagesIn: 2, messagesOut: 2, bytesIn: compressed.length + 8, bytesOut: echo.bytes.length + 4 })
})

test('app.websocket.stats(): open sockets in all and per route pattern, and totals that keep closed sockets', async (t) => {
  const { app, raws } = await echoApp(t)
  const zero = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }
  t.same(app.websocket.stats(), { open: 0, routes: {}, ...zero }, 'nothing before the first socket')

  const clients: RawClient[] = []
  for (const path of ['/a', '/a', '/b/x', '/b/y']) {
    const raw = await raws.webSocket(path)
    raw.sendFrame(OP.text, 'hello')
    await raw.readFrame()
    clients.push(raw)
  }
  const [a1, a2, bx, by] = clients
  // Each sent "hello", 2+4+5, and got it back, 2+5.
  t.same(app.websocket.stats(), { open: 4, routes: { '/a': 2, '/b/:id': 2 }, messagesIn: 4, messagesOut: 4, bytesIn: 44, bytesOut: 28 })

  await closeCleanly(a1)
  await until(() => app.websocket.stats().open === 3, 'three open')
  t.same(app.websocket.stats(), { open: 3, routes: { '/a': 1, '/b/:id': 2 }, messagesIn: 4, messagesOut: 4, bytesIn: 44 + 8, bytesOut: 28 + 4 },
    'the closed socket\'s counts, close frames included, stay in the totals')

  bx.destroy()
  by.reset()
  await until(() => app.websocket.stats().open === 1, 'one open')
  t.same(app.websocket.stats(), { open: 1, routes: { '/a': 1 }, messagesIn: 4, messagesOut: 4, bytesIn: 52, bytesOut: 32 },
    'a route with no open socket is left out')

  await closeCleanly(a2)
  await until(() => app.websocket.stats().open === 0, 'none open')
  t.same(app.websocket.stats(), { open: 0, routes: {}, messagesIn: 4, messagesOut: 4, bytesIn: 60, bytesOut: 36 })
  t.equal(app.websocketClients.size, 0)
})

test('publish and broadcast count once per socket that took the message', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const sockets: WebSocket[] = []
  app.get('/news', { ws: true }, (socket) => {
    sockets.push(socket)
    socket.subscribe('news')
    socket.on('message', (data) => socket.publish('news', data.toString('utf8')))
  })
  const raws = new RawClients(await listen(app))
  t.teardown(async () => {
    for (const raw of raws) raw.reset()
    await closeApp(app)
  })
  const clients = [await raws.webSocket('/news'), await raws.webSocket('/news'), await raws.webSocket('/news')]

  t.equal(app.websocket.publish('news', 'hi'), 3, 'the app\'s publish reached 3 sockets')
  for (const raw of clients) t.equal((await raw.readFrame()).bytes.length, 4)
  t.same(sockets.map((socket) => socket.stats.messagesOut), [1, 1, 1])
  t.same(app.websocket.stats(), { open: 3, routes: { '/news': 3 }, messagesIn: 0, messagesOut: 3, bytesIn: 0, bytesOut: 12 })

  clients[0].sendFrame(OP.text, 'x')
  for (const raw of clients.slice(1)) t.equal((await raw.readFrame()).payload.toString(), 'x')
  t.same(sockets.map((socket) => socket.stats), [
    { messagesIn: 1, messagesOut: 1, bytesIn: 7, bytesOut: 4 },
    { messagesIn: 0, messagesOut: 2, bytesIn: 0, bytesOut: 7 },
    { messagesIn: 0, messagesOut: 2, bytesIn: 0, bytesOut: 7 }
  ], 'a socket\'s publish goes to the 2 others, not to itself')

  t.equal(broadcast(sockets, 'all'), 3)
  for (const raw of clients) t.equal((await raw.readFrame()).payload.toString(), 'all')
  t.same(app.websocket.stats(), { open: 3, routes: { '/news': 3 }, messagesIn: 1, messagesOut: 8, bytesIn: 7, bytesOut: 18 + 15 })
})
