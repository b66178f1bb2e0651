/**
 * broadcast(): one message to many sockets, framed once; sockets that are
 * not OPEN are skipped, text stays text and binary stays binary.
 */
import { constants, inflateRawSync } from 'node:zlib'
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455, { broadcast, type WebSocket } from '../../lib/index.js'
import { start, withTimeout } from './helpers.js'

test('broadcast reaches every open socket, text and binary, and counts them', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const room = new Set<WebSocket>()
  app.get('/room', { ws: true }, (socket) => {
    room.add(socket)
    socket.on('close', () => room.delete(socket))
  })
  const h = await start(t, app)
  const clients = [await h.client('/room'), await h.client('/room'), await h.client('/room')]
  await withTimeout((async () => { while (room.size < 3) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 'three sockets')

  t.equal(broadcast(room, 'héllo'), 3, 'three sockets took the text message')
  t.equal(broadcast(room, Buffer.from([1, 2, 3])), 3, 'three sockets took the binary message')
  for (const client of clients) {
    t.equal(await client.nextMessage(), 'héllo')
    t.same(Buffer.from(await client.nextMessage() as ArrayBuffer), Buffer.from([1, 2, 3]))
  }

  const [closing] = room
  closing.close(1000)
  t.equal(broadcast(room, 'after'), 2, 'a closing socket is skipped')
})

test('a socket with permessage-deflate gets large broadcasts compressed (RSV1), small ones as they are', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455, { perMessageDeflate: { threshold: 1024 } })
  const sockets = new Set<WebSocket>()
  app.get('/room', { ws: true }, (socket) => { sockets.add(socket) })
  const h = await start(t, app)
  const plain = await h.rawWebSocket('/room')
  const deflating = await h.rawWebSocket('/room', { extensions: 'permessage-deflate' })
  await withTimeout((async () => { while (sockets.size < 2) await new Promise((resolve) => setTimeout(resolve, 5)) })(), 'two sockets')
  const large = 'x'.repeat(5000)
  t.equal(broadcast(sockets, 'small'), 2)
  t.equal(broadcast(sockets, large), 2)

  const small1 = await plain.readFrame()
  const large1 = await plain.readFrame()
  t.same([small1.rsv1, small1.payload.toString()], [false, 'small'], 'no deflate: small as it is')
  t.same([large1.rsv1, large1.payload.toString()], [false, large], 'no deflate: large as it is')

  const small2 = await deflating.readFrame()
  const large2 = await deflating.readFrame()
  t.same([small2.rsv1, small2.payload.toString()], [false, 'small'], 'deflate: under the threshold, as it is')
  t.equal(large2.rsv1, true, 'deflate: over the threshold, compressed')
  t.equal(inflateRawSync(Buffer.concat([large2.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH }).toString(), large)
})
