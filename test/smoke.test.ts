import { test } from 'tap'
import Fastify from 'fastify'
import { WebSocket } from 'undici'
import fastifyRfc6455 from '../lib/index.js'

test('echo over a real socket with undici', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/echo', { ws: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : data.toString()))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const client = new WebSocket(`ws://127.0.0.1:${port}/echo`)
  const reply = await new Promise<string>((resolve, reject) => {
    client.onopen = () => client.send('hello')
    client.onmessage = (event) => resolve(event.data as string)
    client.onerror = () => reject(new Error('client error'))
  })
  t.equal(reply, 'hello')
  client.close()
})
