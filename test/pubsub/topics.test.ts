/**
 * Topics in one process: subscribe/unsubscribe, publish from the app and from
 * a socket, framed once, a closed socket leaving its topics, and what the
 * broker is told (first subscriber in, last one out).
 */
import { connect } from 'node:net'
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455, { type Broker, type BrokerContext, type BrokerMessage, type WebSocket } from '../../lib/index.js'
import { delay, start, upgradeRequest, withTimeout } from '../integration/helpers.js'

/** A broker that records what the plugin asks of it, and can deliver as another instance would. */
class RecordingBroker implements Broker {
  readonly calls: string[] = []
  readonly published: BrokerMessage[] = []
  context: BrokerContext | undefined
  start (context: BrokerContext): void { this.context = context }
  subscribe (topic: string): void { this.calls.push(`+${topic}`) }
  unsubscribe (topic: string): void { this.calls.push(`-${topic}`) }
  publish (message: BrokerMessage): void { this.published.push(message) }
  close (): void { this.calls.push('close') }
}

/** An app whose `/t` sockets subscribe to the topics named in the query (`?topics=a,b`). */
async function topicApp (t: Parameters<typeof start>[0], options: object = {}) {
  const app = Fastify()
  await app.register(fastifyRfc6455, options)
  const sockets: WebSocket[] = []
  app.get<{ Querystring: { topics?: string } }>('/t', { ws: true }, (socket, request) => {
    for (const topic of (request.query.topics ?? '').split(',').filter(Boolean)) socket.subscribe(topic)
    sockets.push(socket)
    socket.on('message', (data) => {
      const [topic, text] = data.toString().split('|')
      socket.publish(topic, text)
    })
  })
  const h = await start(t, app)
  const open = async (topics: string) => {
    const before = sockets.length
    const client = await h.client(`/t?topics=${topics}`)
    await withTimeout((async () => { while (sockets.length === before) await delay(2) })(), 'the server socket')
    return { client, socket: sockets[sockets.length - 1] }
  }
  return { app, h, open, sockets }
}

test('subscribe, unsubscribe, isSubscribed and topics', async (t) => {
  const { open } = await topicApp(t)
  const { socket } = await open('')
  t.same([...socket.topics], [])
  t.equal(socket.subscribe('a'), true, 'a new subscription')
  t.equal(socket.subscribe('a'), false, 'already subscribed')
  t.equal(socket.subscribe('b'), true)
  t.same([...socket.topics], ['a', 'b'])
  t.ok(socket.isSubscribed('a'))
  t.equal(socket.unsubscribe('a'), true)
  t.equal(socket.unsubscribe('a'), false, 'no longer subscribed')
  t.notOk(socket.isSubscribed('a'))
  t.same([...socket.topics], ['b'])
})

test('app.websocket.publish reaches every subscriber of the topic once, text as text and bytes as binary', async (t) => {
  const { app, open } = await topicApp(t)
  const a1 = await open('news,sport')
  const a2 = await open('news')
  const other = await open('sport')
  t.equal(app.websocket.subscriberCount('news'), 2)
  t.equal(app.websocket.publish('news', 'héllo'), 2, 'two local sockets took it')
  t.equal(app.websocket.publish('news', Buffer.from([1, 2, 3])), 2)
  t.equal(app.websocket.publish('nobody', 'x'), 0, 'a topic without subscribers')
  app.websocket.publish('sport', 'goal')
  for (const { client } of [a1, a2]) {
    t.equal(await client.nextMessage(), 'héllo')
    t.same(Buffer.from(await client.nextMessage() as ArrayBuffer), Buffer.from([1, 2, 3]))
  }
  t.equal(await a1.client.nextMessage(), 'goal')
  t.equal(await other.client.nextMessage(), 'goal', 'the first message on sport is the sport one')
})

test('messages published to one topic arrive in publish order', async (t) => {
  const { app, open } = await topicApp(t)
  const clients = [await open('seq'), await open('seq')]
  for (let i = 0; i < 500; i++) app.websocket.publish('seq', String(i))
  for (const { client } of clients) {
    for (let i = 0; i < 500; i++) t.equal(await client.nextMessage(), String(i), `message ${i}`, { diagnostic: false })
  }
})

test('socket.publish excludes only its sender, who need not be subscribed', async (t) => {
  const { open } = await topicApp(t)
  const sender = await open('room')
  const peer = await open('room')
  const outsider = await open('')
  sender.client.send('room|from sender')
  t.equal(await peer.client.nextMessage(), 'from sender')
  outsider.client.send('room|from outsider')
  t.equal(await sender.client.nextMessage(), 'from outsider', 'the sender gets what others publish')
  t.equal(await peer.client.nextMessage(), 'from outsider')
})

test('a closed socket leaves all its topics; the broker hears of the first subscriber and the last', async (t) => {
  const broker = new RecordingBroker()
  const { app, open } = await topicApp(t, { broker })
  t.ok(broker.context, 'the broker was started at register')
  const one = await open('a,b')
  const two = await open('a')
  t.same(broker.calls, ['+a', '+b'], 'a topic is subscribed on the broker once')
  one.client.ws.close()
  await withTimeout((async () => { while (one.socket.readyState !== 3) await delay(2) })(), 'the first socket closed')
  t.same(one.socket.topics.size, 0, 'the closed socket holds no topic')
  t.equal(app.websocket.subscriberCount('a'), 1)
  t.equal(app.websocket.subscriberCount('b'), 0)
  t.same(broker.calls, ['+a', '+b', '-b'], 'b had no subscriber left')
  t.equal(one.socket.subscribe('c'), false, 'a closed socket cannot subscribe')
  two.socket.unsubscribe('a')
  t.same(broker.calls, ['+a', '+b', '-b', '-a'])
  await app.close()
  t.same(broker.calls.at(-1), 'close', 'the broker is closed with the app')
})

test('publishes go to the broker; what the broker delivers reaches local subscribers', async (t) => {
  const broker = new RecordingBroker()
  const { app, open } = await topicApp(t, { broker })
  const sub = await open('x')
  app.websocket.publish('x', 'local', { compress: false })
  t.same(broker.published.map((m) => [m.topic, m.payload.toString(), m.isBinary, m.compress]), [['x', 'local', false, false]])
  t.equal(await sub.client.nextMessage(), 'local')
  broker.context?.deliver({ topic: 'x', payload: Buffer.from('remote'), isBinary: false, compress: undefined })
  t.equal(await sub.client.nextMessage(), 'remote')
})

test('a topic over 1024 bytes, or not a string, throws FST_WS_INVALID_TOPIC', async (t) => {
  const { app, open } = await topicApp(t)
  const { socket } = await open('')
  t.doesNotThrow(() => socket.subscribe('é'.repeat(512)), '1024 bytes is allowed')
  t.throws(() => socket.subscribe('é'.repeat(513)), { code: 'FST_WS_INVALID_TOPIC' })
  t.throws(() => app.websocket.publish('x'.repeat(1025), 'm'), { code: 'FST_WS_INVALID_TOPIC' })
  t.throws(() => socket.subscribe(42 as unknown as string), { code: 'FST_WS_INVALID_TOPIC' })
})

test('a subscriber that does not read is failed with 1008 alone; the publisher and the others go on', async (t) => {
  const { app, h, open, sockets } = await topicApp(t, { highWaterMark: 16 * 1024, maxBackpressure: 256 * 1024 })
  const reader = await open('feed')
  // A raw client that completes the handshake, then never reads.
  const stalled = connect(h.port, '127.0.0.1')
  t.teardown(() => { stalled.destroy() })
  stalled.write(upgradeRequest('/t?topics=feed'))
  await withTimeout((async () => { while (app.websocket.subscriberCount('feed') < 2) await delay(2) })(), 'the stalled subscriber')
  stalled.pause()
  const server = sockets[sockets.length - 1]
  const closeCode = new Promise<number>((resolve) => server.on('close', (code) => resolve(code)))
  const failed = new Promise<string>((resolve) => server.on('error', (error) => resolve(error.code)))
  const chunk = Buffer.alloc(32 * 1024, 1)
  let published = 0
  // Each publish returns at once; the stalled socket fails past 256 KiB of backlog.
  while (server.readyState === 1 && published < 2000) {
    app.websocket.publish('feed', chunk)
    published++
    // Pace by the reading subscriber's backlog only, as an app pacing by its healthy clients would.
    while (reader.socket.bufferedAmount > 64 * 1024) await delay(1)
  }
  t.equal(await withTimeout(failed, 'the stalled socket failing'), 'WS_ERR_BACKPRESSURE', 'the stalled subscriber failed (1008)')
  t.ok(published < 2000, `it failed after ${published} publishes`)
  stalled.destroy()
  t.equal(await withTimeout(closeCode, 'the stalled socket closing'), 1006)
  t.equal(app.websocket.subscriberCount('feed'), 1, 'the stalled subscriber left the topic')
  for (let i = 0; i < published; i++) {
    t.equal((await reader.client.nextMessage() as ArrayBuffer).byteLength, chunk.length, `message ${i}`, { diagnostic: false })
  }
})
