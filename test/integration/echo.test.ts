import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { binaryPayload, start, utf8Text } from './helpers.js'

/** Payload lengths at the edges of the 7-bit, 16-bit and 64-bit payload length forms (RFC 6455 §5.2), and just under 1 MiB. */
const SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024 - 1]

test('echo with undici: text stays text, binary stays binary, at every payload length form', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const received: Array<{ isBinary: boolean, length: number }> = []
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => {
      received.push({ isBinary, length: data.length })
      socket.send(isBinary ? data : data.toString('utf8'))
    })
  })
  const h = await start(t, app)

  for (const size of SIZES) {
    await t.test(`text of ${size} bytes of UTF-8`, async (t) => {
      const client = await h.client('/echo')
      const text = utf8Text(size)
      t.equal(Buffer.byteLength(text), size, 'payload length in bytes')
      received.length = 0
      client.send(text)
      const echoed = await client.nextMessage()
      t.equal(typeof echoed, 'string', 'a text message comes back as text')
      t.same(received, [{ isBinary: false, length: size }], 'the server saw one text message of that length')
      t.equal(Buffer.byteLength(echoed as string), size)
      t.ok(echoed === text, 'same text')
      client.ws.close(1000)
      t.equal((await client.waitClose()).code, 1000)
    })

    await t.test(`binary of ${size} bytes`, async (t) => {
      const client = await h.client('/echo')
      const bytes = binaryPayload(size)
      received.length = 0
      client.send(bytes)
      const echoed = await client.nextMessage()
      t.ok(echoed instanceof ArrayBuffer, 'a binary message comes back as binary')
      t.same(received, [{ isBinary: true, length: size }], 'the server saw one binary message of that length')
      t.equal((echoed as ArrayBuffer).byteLength, size)
      t.equal(Buffer.compare(Buffer.from(echoed as ArrayBuffer), bytes), 0, 'same bytes')
      client.ws.close(1000)
      t.equal((await client.waitClose()).code, 1000)
    })
  }
})
