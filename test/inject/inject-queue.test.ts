/**
 * The injected client keeps what the server sends while nothing listens:
 * two `once(client, 'message')` in a row lose no message, and `for await`
 * takes them in order; `injectWS()` with no path opens '/', and `onInit` and
 * `onOpen` see the client before and after the handshake's answer.
 */
import { once } from 'node:events'
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455, { type InjectedWebSocket } from '../../lib/index.js'

/** An app whose route at `path` sends `count` messages as soon as it opens, then closes with 1000 if `close`. */
async function burstApp (path: string, count: number, close: boolean) {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get(path, { ws: true }, (socket) => {
    for (let i = 1; i <= count; i++) socket.send(i % 2 === 0 ? Buffer.from([i]) : `message ${i}`)
    if (close) socket.close(1000, 'done')
  })
  return app
}

test('two once(client, "message") in a row: the second message is not lost', async (t) => {
  const app = await burstApp('/burst', 3, false)
  t.teardown(() => app.close())
  const client = await app.injectWS('/burst')
  const [first] = await once(client, 'message') as [Buffer, boolean]
  const [second, binary] = await once(client, 'message') as [Buffer, boolean]
  const [third] = await once(client, 'message') as [Buffer, boolean]
  t.equal(first.toString(), 'message 1')
  t.same([...second], [2], 'the second, sent in the same tick as the first')
  t.equal(binary, true)
  t.equal(third.toString(), 'message 3')
  client.close(1000)
})

test('for await takes the messages in order and ends once the connection has closed', async (t) => {
  const app = await burstApp('/', 4, true)
  t.teardown(() => app.close())
  const client = await app.injectWS()
  const received: Array<[string, boolean]> = []
  for await (const { data, isBinary } of client) received.push([isBinary ? `bytes ${data[0]}` : data.toString(), isBinary])
  t.same(received, [['message 1', false], ['bytes 2', true], ['message 3', false], ['bytes 4', true]], "injectWS() with no path opens '/'")
})

test('onInit sees the client before the handshake is answered, onOpen after', async (t) => {
  const app = await burstApp('/hooks', 1, false)
  t.teardown(() => app.close())
  const seen: Array<[string, number]> = []
  let initClient: InjectedWebSocket | undefined
  const client = await app.injectWS('/hooks', {
    onInit: (ws) => {
      initClient = ws
      seen.push(['init', ws.readyState])
    },
    onOpen: (ws) => { seen.push(['open', ws.readyState]) }
  })
  t.equal(initClient, client, 'the same client')
  t.same(seen, [['init', 0], ['open', 1]], 'CONNECTING, then OPEN')
  const [data] = await once(client, 'message') as [Buffer]
  t.equal(data.toString(), 'message 1')
  client.close(1000)
})
