/**
 * Nothing from a broker's channels is trusted, and nothing too big is sent
 * to it. Envelopes published straight into Redis (as anything with access to
 * it may): text that is not UTF-8, a payload over the broker's `maxPayload`,
 * something that is no envelope. None reaches a socket, none costs the
 * broker its Redis connection, each is counted and published on the
 * `fastify-rfc6455:broker:dropped` channel, and the log gets at most one
 * line per 10 s. On the way out, a publish over `maxPublishPayload`
 * (default: `maxPayload`) throws FST_WS_PUBLISH_TOO_LARGE. And a socket
 * holds at most `maxTopics` topics.
 */
import { randomBytes } from 'node:crypto'
import diagnostics from 'node:diagnostics_channel'
import Fastify from 'fastify'
import { createClient } from 'redis'
import { test } from 'tap'
import fastifyRfc6455, { type InjectedWebSocket } from '../../lib/index.js'
import { BROKER_DROPPED_CHANNEL, type BrokerDroppedMessage, RedisBroker } from '../../lib/pubsub/redis.js'
import { skipWithoutRedis, startRedis, subscriberCounts, waitFor } from '../support/redis.js'
import { captureLogs, sleep } from './helpers.js'

/** A version 1 envelope (lib/pubsub/redis.ts): version, flags (bit 0 binary), a 16-byte origin id, the payload. */
function envelope (payload: Buffer, binary = false, version = 1): Buffer {
  return Buffer.concat([Buffer.from([version, binary ? 1 : 0]), randomBytes(16), payload])
}

test('envelopes from Redis that no socket may get: dropped, counted, logged at a bounded rate', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const broker = new RedisBroker({ url: redis.url, maxPayload: 1024 })
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455, { broker })
  app.get('/room', { ws: true }, (socket) => { socket.subscribe('room') })
  t.teardown(() => app.close())
  const client: InjectedWebSocket = await app.injectWS('/room')
  const received: Buffer[] = []
  client.on('message', (data) => received.push(data))
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:room'])).get('ws:room') === 1, 'the SSUBSCRIBE')

  const seen: BrokerDroppedMessage[] = []
  const onDropped = (message: unknown): void => { seen.push(message as BrokerDroppedMessage) }
  diagnostics.subscribe(BROKER_DROPPED_CHANNEL, onDropped)
  t.teardown(() => diagnostics.unsubscribe(BROKER_DROPPED_CHANNEL, onDropped))

  const publisher = createClient({ url: redis.url })
  await publisher.connect()
  t.teardown(() => publisher.close())
  const publish = (frame: Buffer): Promise<unknown> => publisher.sendCommand([Buffer.from('SPUBLISH'), Buffer.from('ws:room'), frame])

  await publish(envelope(Buffer.from([0xff, 0xfe, 0x41])))
  await publish(envelope(Buffer.alloc(2048, 0x61)))
  await publish(envelope(Buffer.from('from another version'), false, 9))
  await publish(Buffer.from('x'))
  await publish(envelope(Buffer.from([0xff, 0xfe, 0x41]), true))
  await publish(envelope(Buffer.from('valid ✓')))
  await waitFor(() => received.length === 2, 'the two valid messages')
  t.same(received.map((data) => data.toString('hex')), [Buffer.from([0xff, 0xfe, 0x41]).toString('hex'), Buffer.from('valid ✓').toString('hex')],
    'only the binary message and the valid text arrived, in order')
  t.same(broker.dropped, { malformed: 2, oversized: 1, invalidUtf8: 1 }, 'counted by reason')
  t.same(seen.map((m) => [m.reason, m.channel]), [
    ['invalid-utf8', 'ws:room'], ['oversized', 'ws:room'], ['malformed', 'ws:room'], ['malformed', 'ws:room']
  ], 'each published on the diagnostics channel')
  const dropLines = logs.lines.filter((line) => String(line.msg).startsWith('RedisBroker: dropped'))
  t.equal(dropLines.length, 1, 'one log line for the four drops within 10 s')
  t.notOk(logs.lines.some((line) => String(line.msg).includes('unreachable')), 'the broker kept its Redis connection')
  t.equal(client.readyState, 1, 'the socket is still open')
  await sleep(20)
  t.equal(received.length, 2)
})

test('a publish over maxPublishPayload throws FST_WS_PUBLISH_TOO_LARGE; the default is maxPayload', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455, { maxPayload: 1024 })
  let fromSocket: unknown
  app.get('/room', { ws: true }, (socket) => {
    socket.subscribe('room')
    socket.on('message', () => {
      try {
        socket.publish('room', Buffer.alloc(1025))
      } catch (error) {
        fromSocket = error
      }
    })
  })
  t.teardown(() => app.close())
  const client = await app.injectWS('/room')
  const received: Buffer[] = []
  client.on('message', (data) => received.push(data))
  t.throws(() => app.websocket.publish('room', 'x'.repeat(1025)), { code: 'FST_WS_PUBLISH_TOO_LARGE' }, '1025 bytes with maxPayload 1024')
  t.equal(app.websocket.publish('room', 'x'.repeat(1024)), 1, '1024 bytes go')
  client.send('go')
  await waitFor(() => fromSocket !== undefined, 'the socket tried')
  t.match(fromSocket, { code: 'FST_WS_PUBLISH_TOO_LARGE' }, 'socket.publish too')
  await sleep(20)
  t.same(received.map((data) => data.length), [1024], 'the refused publishes went nowhere')

  const raised = Fastify()
  await raised.register(fastifyRfc6455, { maxPayload: 1024, maxPublishPayload: 4096 })
  t.teardown(() => raised.close())
  t.equal(raised.websocket.publish('room', 'x'.repeat(4096)), 0, 'maxPublishPayload raises it')
  t.throws(() => raised.websocket.publish('room', 'x'.repeat(4097)), { code: 'FST_WS_PUBLISH_TOO_LARGE' })
})

test('maxTopics: one topic more than the limit throws FST_WS_TOO_MANY_TOPICS', async (t) => {
  const app = Fastify()
  await app.register(fastifyRfc6455)
  const outcomes: unknown[] = []
  app.get('/many', { ws: { maxTopics: 2 } }, (socket) => {
    for (const topic of ['a', 'b', 'a', 'c']) {
      try {
        outcomes.push(socket.subscribe(topic))
      } catch (error) {
        outcomes.push((error as { code: string }).code)
      }
    }
    socket.unsubscribe('a')
    outcomes.push(socket.subscribe('c'))
  })
  t.teardown(() => app.close())
  await app.injectWS('/many')
  await waitFor(() => outcomes.length === 5, 'the subscribes')
  t.same(outcomes, [true, true, false, 'FST_WS_TOO_MANY_TOPICS', true], 'a third topic refused; again once one is left')
  t.equal(app.websocket.subscriberCount('c'), 1)

  for (const value of [0, 1.5, 'many']) {
    const bad = Fastify()
    const error = await bad.register(fastifyRfc6455, { maxTopics: value as number }).then(() => null, (e: unknown) => e)
    t.match(error, { code: 'FST_WS_INVALID_OPTION', message: /maxTopics/ }, `maxTopics ${String(value)} is refused`)
  }
})
