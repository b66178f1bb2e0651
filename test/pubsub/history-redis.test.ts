/**
 * Topics with history on a real redis-server (one server, and the 3-master
 * cluster): two apps in this process, each with its RedisBroker, stand for two
 * instances; undici clients subscribe, resume and check what they receive.
 */
import { test } from 'tap'
import Fastify from 'fastify'
import fc from 'fast-check'
import fastifyRfc6455, { type FastifyRfc6455Options, formatPosition, type Position, type TopicHistory } from '../../lib/index.js'
import { RedisBroker, type RedisBrokerOptions } from '../../lib/pubsub/redis.js'
import { historyKeys, PUBLISH_SCRIPT } from '../../lib/pubsub/redis-history.js'
import { delay, start, withTimeout, type Teardown, type TestClient } from '../integration/helpers.js'
import { rawCommand, skipWithoutRedis, startCluster, startRedis, waitFor } from '../support/redis.js'

const encode = (data: string | Buffer, position: Position): string => `${formatPosition(position)}|${data.toString()}`

/** Topics starting with `h:` keep `size` messages for `ttl` ms. */
function histories (size = 1000, ttl = 60_000): (topic: string) => TopicHistory | null {
  return (topic) => topic.startsWith('h:') ? { size, ttl, encode } : null
}

/** An instance: an app with a RedisBroker whose `/h?topic=&since=` sockets resume and send their welcome first. */
async function instance (t: Teardown, broker: RedisBrokerOptions, options: FastifyRfc6455Options = {}) {
  const app = Fastify()
  await app.register(fastifyRfc6455, { broker: new RedisBroker({ closeTimeout: 200, ...broker }), history: histories(), ...options })
  app.get<{ Querystring: { topic: string, since?: string } }>('/h', { ws: true }, async (socket, request) => {
    const { topic, since } = request.query
    try {
      const resumed = await socket.subscribe(topic, { since })
      socket.send(JSON.stringify({ welcome: { recovered: resumed.recovered, position: resumed.position && formatPosition(resumed.position) } }))
    } catch (err) {
      socket.close(1013, (err as { code: string }).code)
    }
  })
  const h = await start(t, app)
  const open = async (topic: string, since?: string) => {
    const client = await h.client(`/h?topic=${topic}${since === undefined ? '' : `&since=${since}`}`)
    const welcome = JSON.parse(await client.nextMessage() as string).welcome as { recovered: boolean, position: string }
    return { client, welcome }
  }
  return { app, open }
}

/** `attempt()` until it resolves, 100 ms apart, for at most 10 s. */
async function retry<T> (attempt: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt()
    } catch (err) {
      if (i === 100) throw err
      await delay(100)
    }
  }
}

async function next (client: TestClient, count: number): Promise<string[]> {
  const messages: string[] = []
  for (let i = 0; i < count; i++) messages.push(await client.nextMessage() as string)
  return messages
}

/** Publishes `texts` in turn from `app`; the messages as the encoder makes them. */
async function publish (app: Awaited<ReturnType<typeof instance>>['app'], topic: string, texts: string[]): Promise<string[]> {
  const sent: string[] = []
  for (const text of texts) sent.push(`${formatPosition(await app.websocket.publishStored(topic, text))}|${text}`)
  return sent
}

test('one Redis: positions shared by the instances, resume on another instance, all or nothing, outages', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, { url: redis.url })
  const b = await instance(t, { url: redis.url }, { maxRecovery: 50 })

  await t.test('each instance delivers every message once, in offset order, its own included', async (t) => {
    const onA = await a.open('h:room')
    const onB = await b.open('h:room')
    t.equal(onA.welcome.position, onB.welcome.position, 'one position for both')
    const [fromA, fromB] = await Promise.all([publish(a.app, 'h:room', ['a1', 'a2', 'a3']), publish(b.app, 'h:room', ['b1', 'b2', 'b3'])])
    const order = (messages: string[]) => [...messages].sort((x, y) => parseInt(x) - parseInt(y))
    const all = order([...fromA, ...fromB])
    t.same(all.map((m) => parseInt(m)), [1, 2, 3, 4, 5, 6], 'offsets 1 to 6, whichever instance published')
    t.same(await next(onA.client, 6), all)
    t.same(await next(onB.client, 6), all)
  })

  await t.test('a client that left instance A resumes on instance B with exactly what it missed, then live ones', async (t) => {
    const first = await a.open('h:resume')
    const before = await publish(a.app, 'h:resume', ['m0'])
    t.same(await next(first.client, 1), before)
    first.client.ws.close()
    await first.client.waitClose()
    const missed = [...await publish(a.app, 'h:resume', ['m1', 'm2']), ...await publish(b.app, 'h:resume', ['m3'])]
    const again = await b.open('h:resume', before[0].split('|')[0])
    t.equal(again.welcome.recovered, true)
    const live = await publish(a.app, 'h:resume', ['live'])
    t.same(await next(again.client, 4), [...missed, ...live])
  })

  await t.test('not recovered: trimmed by size, expired, past maxRecovery, another epoch; nothing replayed', async (t) => {
    const small = await instance(t, { url: redis.url }, { history: histories(10, 60_000) })
    const first = await publish(small.app, 'h:trim', ['x'])
    // MAXLEN ~ trims whole stream nodes (100 entries each): 300 messages drop the first.
    await publish(small.app, 'h:trim', Array.from({ length: 300 }, (_, i) => `t${i}`))
    t.equal(Number(/:(\d+)/.exec(await rawCommand(redis.port, 'XLEN', historyKeys('ws:h:trim').stream))![1]) < 300, true, 'the stream was trimmed')
    const trimmed = await small.open('h:trim', first[0].split('|')[0])
    t.same(trimmed.welcome, { recovered: false, position: `301.${first[0].split('|')[0].split('.')[1]}` }, 'trimmed by size')
    const live = await publish(small.app, 'h:trim', ['after'])
    t.same(await next(trimmed.client, 1), live, 'nothing replayed: the live message comes first')

    const short = await instance(t, { url: redis.url }, { history: histories(1000, 100) })
    const p = (await publish(short.app, 'h:ttl', ['a', 'b']))[0].split('|')[0]
    await delay(200)
    t.equal((await short.open('h:ttl', p)).welcome.recovered, false, 'expired by ttl')

    const many = await publish(a.app, 'h:far', Array.from({ length: 60 }, (_, i) => `f${i}`))
    t.equal((await b.open('h:far', many[0].split('|')[0])).welcome.recovered, false, '59 back, past maxRecovery (50) on b')
    t.equal((await a.open('h:far', many[0].split('|')[0])).welcome.recovered, true, 'within the default 1000 on a')
    t.equal((await b.open('h:far', `1.otherEpoch`)).welcome.recovered, false, 'another epoch')
  })

  await t.test('publishes racing a resume on another instance: the sequence is exactly the published one (property)', async (t) => {
    let round = 0
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: 10 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 20 }),
      async (before, racing) => {
        const topic = `h:race${round++}`
        const published = await publish(a.app, topic, ['m0', ...Array.from({ length: before }, (_, i) => `b${i}`)])
        const since = published[0].split('|')[0]
        const publishing = (async () => {
          for (const [i, [fromB, pause]] of racing.entries()) {
            for (let n = 0; n < pause; n++) await new Promise((resolve) => setImmediate(resolve))
            published.push(...await publish(fromB ? b.app : a.app, topic, [`r${i}`]))
          }
        })()
        const [{ client, welcome }] = await Promise.all([b.open(topic, since), publishing])
        if (!welcome.recovered) return false
        const expected = published.slice(1)
        const got = await next(client, expected.length)
        client.ws.close()
        return JSON.stringify(got) === JSON.stringify(expected)
      }), { numRuns: 150 })
    t.pass('every run saw the published sequence')
  })

  await t.test('a message lost on pub/sub is filled from the stream before the next one', async (t) => {
    const { client } = await b.open('h:gap')
    const sent = await publish(a.app, 'h:gap', ['g1'])
    // The publish script, with its publish sent to another channel: stored, offset taken, never seen on ws:h:gap.
    const { stream, meta } = historyKeys('ws:h:gap')
    const epoch = sent[0].split('|')[0].split('.')[1]
    await rawCommand(redis.port, 'EVAL', PUBLISH_SCRIPT.source, '3', stream, meta, 'ws:nowhere',
      '\x01\x08' + 'x'.repeat(16), 'lost', '1000', '60000', '60000', epoch, 'SPUBLISH')
    sent.push(`2.${epoch}|lost`, ...await publish(a.app, 'h:gap', ['g3']))
    t.same(await next(client, 3), sent, 'g1, the lost one from the stream, then g3')
  })

  await t.test('Redis down: a history publish rejects with FST_WS_HISTORY_UNAVAILABLE, a plain one goes on locally', async (t) => {
    const plain = await a.open('plain')
    await redis.kill()
    await waitFor(() => a.app.websocket.publishStored('h:down', 'x').then(() => false, (err) => err.code === 'FST_WS_HISTORY_UNAVAILABLE'), 'a rejected publish')
    t.equal(a.app.websocket.publish('plain', 'still'), 1, 'a topic without history reaches the local subscriber')
    t.same(await next(plain.client, 1), ['still'])

    await t.test('Redis restarted without persistence: a new epoch; live sockets closed with 1012, resumes not recovered', async (t) => {
      const old = await a.open('h:epoch').catch(() => null)
      t.equal(old, null, 'no subscribe while Redis is down')
      await redis.restart()
      // Until b has reconnected, a resume is refused (1013): the client tries again, as a page would.
      const live = await retry(() => b.open('h:restart'))
      const oldPosition = live.welcome.position
      await waitFor(() => a.app.websocket.publishStored('h:restart', 'x').then(() => true, () => false), 'a publish after the restart')
      t.match(await next(live.client, 1), [/^1\./])
      await redis.kill()
      await redis.restart()
      await waitFor(() => a.app.websocket.publishStored('h:restart', 'y').then(() => true, () => false), 'a publish after the second restart')
      t.equal((await live.client.waitClose()).code, 1012, 'the live socket saw the new epoch and was closed')
      const again = await retry(() => b.open('h:restart', oldPosition))
      t.equal(again.welcome.recovered, false)
      t.not(again.welcome.position.split('.')[1], oldPosition.split('.')[1], 'the epoch changed')
    })
  })
})

test('a Redis Cluster of 3 masters: history keys and channel on one shard, resume across instances', { skip: skipWithoutRedis }, async (t) => {
  const cluster = await startCluster(t)
  const a = await instance(t, { cluster: { rootNodes: cluster.rootNodes } })
  const b = await instance(t, { cluster: { rootNodes: cluster.rootNodes } })
  const topics = ['h:c1', 'h:c2', 'h:c3', 'h:{tagged}x']
  for (const topic of topics) {
    const onB = await b.open(topic)
    const first = await publish(a.app, topic, ['one'])
    t.same(await next(onB.client, 1), first, `${topic}: live`)
    onB.client.ws.close()
    const missed = await publish(a.app, topic, ['two', 'three'])
    const again = await withTimeout(b.open(topic, first[0].split('|')[0]), 'the resume')
    t.equal(again.welcome.recovered, true, `${topic}: recovered`)
    t.same(await next(again.client, 2), missed, `${topic}: the missed ones`)
  }
  const ports = new Set(await Promise.all(topics.map((topic) => cluster.portOf(topic))))
  t.ok(ports.size > 1, 'the topics spread over more than one master')
})
