/**
 * Limits at their exact boundary, each pinned by a test that a one-character
 * mutation of the comparison fails:
 * - a backlog exactly at `highWaterMark` is not past it: with 0, an echo
 *   route sees one `drain` per echoed message and reading never stalls
 *   (`<=` turned into `<` in Connection's backlog check stalls it);
 * - a backlog exactly at `maxBackpressure` is not past it either: with 0, one
 *   `send()` reaches the client instead of failing with 1008;
 * - the Redis broker's `maxPendingPublishes`: with 1, of three synchronous
 *   publishes only the first reaches the other instance, and a later one
 *   does once the first was answered.
 */
import { test } from 'tap'
import type { BrokerContext, BrokerMessage } from '../../lib/index.js'
import { RedisBroker } from '../../lib/pubsub/redis.js'
import { skipWithoutRedis, startRedis, subscriberCounts, waitFor } from '../support/redis.js'
import { clientFrame, Opcode, RawClient, sleep, startServer } from './helpers.js'

test('highWaterMark 0: one drain per echoed message, and reading never stalls', async (t) => {
  const drains: number[] = []
  let echoed = 0
  const server = await startServer(t, {
    plugin: { highWaterMark: 0 },
    routes: (app) => app.get('/counted', { ws: true }, (socket) => {
      socket.on('drain', () => drains.push(echoed))
      socket.on('message', (data) => {
        echoed++
        socket.send(data)
      })
    })
  })
  const client = await RawClient.open(server.port, '/counted')
  const count = 5
  for (let i = 1; i <= count; i++) {
    client.write(clientFrame(Opcode.Binary, `message ${i}`))
    await client.waitFrames(i, 5000, `echo ${i}`)
  }
  t.same(client.frames.map((frame) => frame.payload.toString()), Array.from({ length: count }, (_, i) => `message ${i + 1}`), 'every message echoed')
  await sleep(50)
  t.same(drains, [1, 2, 3, 4, 5], 'one drain per echoed message, each once its echo was written')
  client.destroy()
})

test('maxBackpressure 0: a send with an empty backlog goes out, no 1008', async (t) => {
  const server = await startServer(t, {
    plugin: { highWaterMark: 0, maxBackpressure: 0 },
    routes: (app) => app.get('/hello', { ws: true }, (socket) => { socket.send('hello') })
  })
  const client = await RawClient.open(server.port, '/hello')
  const [frame] = await client.waitFrames(1)
  t.equal(frame.opcode, Opcode.Text)
  t.equal(frame.payload.toString(), 'hello', 'the client gets the message')
  await sleep(50)
  t.equal(client.closeFrame(), undefined, 'no close frame (1008) follows')
  client.destroy()
})

test('RedisBroker maxPendingPublishes 1: of three synchronous publishes only the first crosses; a later one does too', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const delivered: string[] = []
  const context = (into: string[] | null): BrokerContext => ({
    deliver: (message: BrokerMessage) => { into?.push(message.payload.toString()) },
    resubscribed: () => {},
    control: () => 0,
    log: { error () {}, warn () {}, info () {} } as unknown as BrokerContext['log']
  })
  const publisher = new RedisBroker({ url: redis.url, maxPendingPublishes: 1 })
  const receiver = new RedisBroker({ url: redis.url })
  await publisher.start(context(null))
  await receiver.start(context(delivered))
  t.teardown(async () => { await publisher.close(); await receiver.close() })
  receiver.subscribe('capped')
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:capped'])).get('ws:capped') === 1, 'the SSUBSCRIBE')

  const text = (payload: string): BrokerMessage => ({ topic: 'capped', payload: Buffer.from(payload), isBinary: false, compress: undefined })
  publisher.publish(text('first'))
  publisher.publish(text('second'))
  publisher.publish(text('third'))
  await waitFor(() => delivered.length >= 1, 'the first publish at the other instance')
  // The first was answered (it arrived): the cap frees, and the next publish goes.
  await sleep(50)
  publisher.publish(text('later'))
  await waitFor(() => delivered.includes('later'), 'the later publish')
  t.same(delivered, ['first', 'later'], 'the second and third were over the cap and dropped')
})
