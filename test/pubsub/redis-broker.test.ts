/**
 * The Redis broker on its own, against a real redis-server: two brokers on
 * one Redis stand for two instances of an app, each with a BrokerContext that
 * records what it delivers and an app logger that records what it logs.
 */
import { test } from 'tap'
import Fastify from 'fastify'
import { createClient } from 'redis'
import type { BrokerContext, BrokerMessage } from '../../lib/index.js'
import { RedisBroker, type RedisBrokerOptions } from '../../lib/pubsub/redis.js'
import { delay, withTimeout, type Teardown } from '../support/app.js'
import { rawCommand, skipWithoutRedis, startCluster, startRedis, subscriberCounts, waitFor, type LogLine } from '../support/redis.js'


/** A started broker with what it delivered and logged; closed at teardown. */
async function broker (t: Teardown, options: RedisBrokerOptions) {
  const delivered: BrokerMessage[] = []
  const logs: LogLine[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } })
  const context: BrokerContext = { deliver: (message) => { delivered.push(message) }, resubscribed: () => {}, control: () => 0, log: app.log }
  const instance = new RedisBroker(options)
  await instance.start(context)
  t.teardown(() => instance.close())
  return { broker: instance, delivered, logs }
}

function text (topic: string, payload: string, compress?: boolean): BrokerMessage {
  return { topic, payload: Buffer.from(payload), isBinary: false, compress }
}

const outages = (logs: LogLine[]) => logs.filter((line) => line.msg.includes('Redis unreachable'))

test('messages cross between brokers with their bytes and flags; a broker drops its own', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const a = await broker(t, { url: redis.url })
  const b = await broker(t, { url: redis.url })
  a.broker.subscribe('room:1')
  b.broker.subscribe('room:1')
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:room:1'])).get('ws:room:1') === 2, 'both SSUBSCRIBEs')

  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  a.broker.publish(text('room:1', 'héllo'))
  a.broker.publish({ topic: 'room:1', payload: bytes, isBinary: true, compress: true })
  a.broker.publish(text('room:1', '', false))
  await waitFor(() => b.delivered.length === 3, 'three messages at b')
  t.same(b.delivered.map((m) => [m.topic, m.payload.toString('hex'), m.isBinary, m.compress]), [
    ['room:1', Buffer.from('héllo').toString('hex'), false, undefined],
    ['room:1', bytes.toString('hex'), true, true],
    ['room:1', '', false, false]
  ])

  // Redis sends a's messages back to a, before b's: once b's is in, a's own were dropped.
  b.broker.publish(text('room:1', 'from b'))
  await waitFor(() => a.delivered.length === 1, "b's message at a")
  t.same(a.delivered.map((m) => m.payload.toString()), ['from b'], 'a delivered only what b published')
  await delay(50)
  t.equal(b.delivered.length, 3, 'b dropped its own too')
})

test("one broker's messages to a topic arrive in the order it published them", { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const a = await broker(t, { url: redis.url })
  const b = await broker(t, { url: redis.url })
  b.broker.subscribe('ordered')
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:ordered'])).get('ws:ordered') === 1, 'the SSUBSCRIBE')
  const count = 3000
  for (let i = 0; i < count; i++) a.broker.publish(text('ordered', String(i)))
  await waitFor(() => b.delivered.length === count, `${count} messages`)
  t.same(b.delivered.map((m) => Number(m.payload.toString())), Array.from({ length: count }, (_, i) => i))
})

test('a channel is subscribed only while its topic has a local subscriber; classic PUBLISH/SUBSCRIBE and the prefix', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const sharded = await broker(t, { url: redis.url })
  const classic = await broker(t, { url: redis.url, sharded: false, prefix: 'app1/' })
  const other = await broker(t, { url: redis.url, sharded: false, prefix: 'app1/' })

  sharded.broker.subscribe('x')
  classic.broker.subscribe('x')
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:x'])).get('ws:x') === 1, 'SSUBSCRIBE ws:x')
  await waitFor(async () => (await subscriberCounts(redis.port, false, ['app1/x'])).get('app1/x') === 1, 'SUBSCRIBE app1/x')
  t.equal((await subscriberCounts(redis.port, false, ['ws:x'])).get('ws:x'), 0, 'the sharded broker made no classic subscription')
  t.equal((await subscriberCounts(redis.port, true, ['app1/x'])).get('app1/x'), 0, 'the classic broker made no sharded subscription')

  other.broker.publish(text('x', 'classic'))
  await waitFor(() => classic.delivered.length === 1, 'the classic message')
  t.same(classic.delivered.map((m) => [m.topic, m.payload.toString()]), [['x', 'classic']], 'the topic is the channel without its prefix')
  t.equal(sharded.delivered.length, 0, 'SPUBLISH and PUBLISH are separate')

  sharded.broker.unsubscribe('x')
  classic.broker.unsubscribe('x')
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:x'])).get('ws:x') === 0, 'SUNSUBSCRIBE ws:x')
  await waitFor(async () => (await subscriberCounts(redis.port, false, ['app1/x'])).get('app1/x') === 0, 'UNSUBSCRIBE app1/x')
  // What stays: each broker's control channel and its own reply channel (cluster requests), no topic's.
  t.same(channelNames(await rawCommand(redis.port, 'PUBSUB', 'SHARDCHANNELS')).sort(), ['ws:\0control', `ws:\0reply\0${'x'.repeat(32)}`],
    'no sharded topic channel left')
  t.same(channelNames(await rawCommand(redis.port, 'PUBSUB', 'CHANNELS')).sort(), ['app1/\0control', `app1/\0reply\0${'x'.repeat(32)}`, `app1/\0reply\0${'x'.repeat(32)}`],
    'no classic topic channel left')
})

test('a topic that loses its last subscriber and gains one before Redis answered stays subscribed: one server, sharded and classic, and a cluster', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const cluster = await startCluster(t, 3)
  const setups: Array<{ name: string, options: RedisBrokerOptions, sharded: boolean, port: (channel: string) => Promise<number> }> = [
    { name: 'sharded', options: { url: redis.url }, sharded: true, port: async () => redis.port },
    { name: 'classic', options: { url: redis.url, sharded: false }, sharded: false, port: async () => redis.port },
    { name: 'cluster', options: { cluster: { rootNodes: cluster.rootNodes } }, sharded: true, port: (channel) => cluster.portOf(channel) }
  ]
  for (const { name, options, sharded, port } of setups) {
    const a = await broker(t, options)
    const b = await broker(t, options)
    const topic = `again:${name}`
    const channel = `ws:${topic}`
    const count = async () => (await subscriberCounts(await port(channel), sharded, [channel])).get(channel)
    a.broker.subscribe(topic)
    await waitFor(async () => await count() === 1, `${name}: the subscription`)
    // The last socket leaves and a new one comes in the same tick (a page that reconnects): the unsubscribe is still unanswered.
    a.broker.unsubscribe(topic)
    await a.broker.subscribe(topic)
    t.equal(await count(), 1, `${name}: subscribed in Redis once the subscribe resolved`)
    b.broker.publish(text(topic, 'after'))
    await waitFor(() => a.delivered.length === 1, `${name}: the message published after`)
    t.same(a.delivered.map((m) => m.payload.toString()), ['after'], `${name}: delivered`)
    // Subscribed again, then left, before any answer: left.
    a.broker.unsubscribe(topic)
    a.broker.subscribe(topic)
    a.broker.unsubscribe(topic)
    await waitFor(async () => await count() === 0, `${name}: unsubscribed at last`)
  }
})

/** The channel names of a RESP array reply, each broker's 32 hex digits of id as x's. */
function channelNames (reply: string): string[] {
  return reply.split('\r\n').filter((_line, i) => i > 0 && i % 2 === 0).map((name) => name.replace(/[0-9a-f]{32}$/, 'x'.repeat(32)))
}

test('a message that is not an envelope of this version is dropped, logged once', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const a = await broker(t, { url: redis.url })
  const b = await broker(t, { url: redis.url })
  b.broker.subscribe('t')
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:t'])).get('ws:t') === 1, 'the SSUBSCRIBE')
  await rawCommand(redis.port, 'SPUBLISH', 'ws:t', 'plain text, not an envelope')
  await rawCommand(redis.port, 'SPUBLISH', 'ws:t', '\u0002' + 'x'.repeat(40))
  a.broker.publish(text('t', 'real'))
  await waitFor(() => b.delivered.length === 1, 'the real message')
  t.same(b.delivered.map((m) => m.payload.toString()), ['real'])
  t.equal(b.logs.filter((line) => line.msg.includes('not a version 1 envelope')).length, 1, 'one warning for two bad messages')
})

test('bad options fail with FST_WS_* codes', async (t) => {
  const cases: Array<[unknown, string]> = [
    [undefined, 'FST_WS_INVALID_OPTION'],
    [{}, 'FST_WS_INVALID_OPTION'],
    [{ url: 'redis://a', cluster: { rootNodes: [{ url: 'redis://b' }] } }, 'FST_WS_INVALID_OPTION'],
    [{ url: 'http://127.0.0.1' }, 'FST_WS_INVALID_OPTION'],
    [{ cluster: { rootNodes: [] } }, 'FST_WS_INVALID_OPTION'],
    [{ client: {} }, 'FST_WS_INVALID_OPTION'],
    [{ url: 'redis://a', subscriber: createClient() }, 'FST_WS_INVALID_OPTION'],
    [{ url: 'redis://a', sharded: 'yes' }, 'FST_WS_INVALID_OPTION'],
    [{ url: 'redis://a', prefix: 1 }, 'FST_WS_INVALID_OPTION'],
    [{ url: 'redis://a', closeTimeout: 0 }, 'FST_WS_INVALID_OPTION'],
    [{ url: 'redis://a', maxPendingPublishes: 1.5 }, 'FST_WS_INVALID_OPTION'],
    [{ url: 'redis://a', prefx: 'a' }, 'FST_WS_UNKNOWN_OPTION']
  ]
  for (const [options, code] of cases) {
    t.throws(() => new RedisBroker(options as RedisBrokerOptions), { code }, `${code}: ${JSON.stringify(options)}`)
  }
  t.doesNotThrow(() => new RedisBroker({ url: 'rediss://user:pass@example.com:6380/2', prefix: '', sharded: false }))
})

test('your own client: used, left open by close(); one not connected fails start()', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const client = createClient({ url: redis.url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.destroy())
  const mine = await broker(t, { client })
  const b = await broker(t, { url: redis.url })
  b.broker.subscribe('t')
  mine.broker.subscribe('t')
  await waitFor(async () => (await subscriberCounts(redis.port, true, ['ws:t'])).get('ws:t') === 2, 'both SSUBSCRIBEs')
  mine.broker.publish(text('t', 'through your client'))
  await waitFor(() => b.delivered.length === 1, 'the message')
  mine.broker.unsubscribe('t')
  await mine.broker.close()
  t.ok(client.isReady, 'your client is still open')
  t.equal(await client.sendCommand(['PING']), 'PONG')
  t.equal((await subscriberCounts(redis.port, true, ['ws:t'])).get('ws:t'), 1, 'the subscriber it made for itself is gone')

  const idle = createClient({ url: redis.url })
  const failing = new RedisBroker({ client: idle })
  await t.rejects(failing.start({ deliver: () => {}, resubscribed: () => {}, control: () => 0, log: Fastify().log }), { code: 'FST_WS_REDIS_CONNECT' })
})

test('start() fails when Redis is unreachable; close() with Redis down returns', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  await redis.kill()
  const unreachable = new RedisBroker({ url: redis.url, connectTimeout: 300 })
  await t.rejects(unreachable.start({ deliver: () => {}, resubscribed: () => {}, control: () => 0, log: Fastify({ logger: false }).log }), { code: 'FST_WS_REDIS_CONNECT' })

  await redis.restart()
  const a = await broker(t, { url: redis.url, closeTimeout: 200 })
  a.broker.subscribe('t')
  await redis.kill()
  a.broker.publish(text('t', 'into the void'))
  await withTimeout(a.broker.close(), 'close() with Redis down')
  t.pass('closed')
})

test('Redis killed and restarted: publish keeps going, one outage line, subscriptions come back in line', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const a = await broker(t, { url: redis.url })
  const b = await broker(t, { url: redis.url })
  b.broker.subscribe('kept')
  b.broker.subscribe('left')
  await waitFor(async () => {
    const counts = await subscriberCounts(redis.port, true, ['ws:kept', 'ws:left'])
    return counts.get('ws:kept') === 1 && counts.get('ws:left') === 1
  }, 'both SSUBSCRIBEs')

  await redis.kill()
  for (let i = 0; i < 500; i++) {
    a.broker.publish(text('kept', `lost ${i}`))
    if (i % 100 === 0) await delay(20)
  }
  b.broker.unsubscribe('left')
  b.broker.subscribe('joined')
  t.equal(outages(a.logs).length, 1, 'one outage line at a, for 500 publishes')
  await waitFor(() => outages(b.logs).length === 1, 'the outage line at b')

  await redis.restart()
  await waitFor(async () => {
    const counts = await subscriberCounts(redis.port, true, ['ws:kept', 'ws:left', 'ws:joined'])
    return counts.get('ws:kept') === 1 && counts.get('ws:left') === 0 && counts.get('ws:joined') === 1
  }, 'the subscriptions of the live topics, and only those', 10_000)
  await waitFor(() => {
    a.broker.publish(text('kept', 'after'))
    return b.delivered.length > 0
  }, 'delivery to resume', 10_000)
  t.ok(b.delivered.every((m) => m.payload.toString() === 'after'), 'nothing published during the outage arrives later')
  a.broker.publish(text('joined', 'new topic'))
  await waitFor(() => b.delivered.some((m) => m.topic === 'joined'), 'a topic joined during the outage')
  t.equal(outages(a.logs).length, 1, 'still one outage line at a')
  t.equal(outages(b.logs).length, 1, 'still one outage line at b')
  await waitFor(() => a.logs.some((line) => line.msg.includes('reachable again')), 'the recovery line')
})
