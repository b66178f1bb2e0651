import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { Opcode } from '../../lib/protocol/constants.js'
import { clientFrame, delay, start, upgradeRequest } from './helpers.js'

test('messages sent while the handler is still awaiting are all delivered, in order', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const received: string[] = []
  app.get('/late', { ws: true }, async (socket) => {
    await delay(100)
    socket.on('message', (data) => {
      received.push(data.toString())
      socket.send(`echo ${data.toString()}`)
    })
  })
  const h = await start(t, app)

  await t.test('undici client sends 20 messages right after open', async (t) => {
    received.length = 0
    const client = await h.client('/late')
    const sent = Array.from({ length: 20 }, (_, i) => `m${i}`)
    for (const message of sent) client.send(message)
    const echoed: unknown[] = []
    for (let i = 0; i < sent.length; i++) echoed.push(await client.nextMessage())
    t.same(echoed, sent.map((m) => `echo ${m}`), 'every echo, in order')
    t.same(received, sent, 'the server saw every message, in order')
  })

  await t.test('frames that arrive in the same TCP write as the handshake request', async (t) => {
    received.length = 0
    const raw = await h.raw()
    raw.write(Buffer.concat([
      Buffer.from(upgradeRequest('/late')),
      clientFrame(Opcode.Text, 'first'),
      clientFrame(Opcode.Text, 'sec', { fin: false }),
      clientFrame(Opcode.Continuation, 'ond'),
      clientFrame(Opcode.Text, 'third')
    ]))
    t.equal((await raw.readHttpResponse()).status, 101)
    const echoed: string[] = []
    for (let i = 0; i < 3; i++) echoed.push((await raw.readFrame()).payload.toString())
    t.same(echoed, ['echo first', 'echo second', 'echo third'])
    t.same(received, ['first', 'second', 'third'])
  })
})

test('bufferedAmount is 0 when idle and send() returns true', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  app.get('/probe', { ws: true }, (socket) => {
    const atOpen = socket.bufferedAmount
    socket.on('message', () => {
      const idle = socket.bufferedAmount
      const sent = socket.send('pong')
      const afterSend = socket.bufferedAmount
      socket.send(JSON.stringify({ atOpen, idle, sent, afterSend }))
    })
  })
  const h = await start(t, app)
  const client = await h.client('/probe')
  for (let round = 0; round < 2; round++) {
    client.send('probe')
    t.equal(await client.nextMessage(), 'pong')
    t.same(JSON.parse(await client.nextMessage() as string), {
      atOpen: 0,
      idle: 0,
      sent: true,
      // 'pong' is a 6-byte frame (0x81 0x04 + 4 bytes), queued until the chunk being read is handled.
      afterSend: 6
    }, `round ${round}`)
  }
})
