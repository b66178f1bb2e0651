/**
 * Presence and cluster requests on a real redis-server (one server, and the
 * 3-master cluster): three apps in this process, each with its RedisBroker,
 * stand for three instances; an instance in its own process is killed with
 * SIGKILL; a plain Node script that cannot load Fastify uses the emitter.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'
import { formatPosition } from '../../lib/index.js'
import { RedisBroker, type RedisBrokerOptions } from '../../lib/pubsub/redis.js'
import { encode, events, presenceApp } from './fixtures/presence-app.js'
import { withTimeout, type Teardown } from '../integration/helpers.js'
import { WebSocket } from 'undici'
import { rawCommand, skipWithoutRedis, startCluster, startInstance, startRedis, waitFor } from '../support/redis.js'

async function instances (t: Teardown, options: RedisBrokerOptions, count = 3, ttl?: number) {
  return await Promise.all(Array.from({ length: count }, () => presenceApp(t, new RedisBroker({ closeTimeout: 200, ...options }), { presence: { encode, ttl } })))
}

test('one Redis, three instances: members, join and leave once per page, two tabs, requests everywhere', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const [a, b, c] = await instances(t, { url: redis.url })

  await t.test('everyone\'s list is equal; each join and leave reaches each page once', async (t) => {
    const ann = await a.open('room', 'ann')
    const ben = await b.open('room', 'ben')
    const cat = await c.open('room', 'cat')
    t.same(cat.members.map((m) => m.id), ['ann', 'ben', 'cat'])
    t.same(await a.app.websocket.cluster.presence('room').then((m) => m.map((x) => x.id).sort()), ['ann', 'ben', 'cat'], 'instance a lists them all')
    t.same(await events(ann.client, 2), [{ type: 'join', id: 'ben', name: 'ben' }, { type: 'join', id: 'cat', name: 'cat' }])
    t.same(await events(ben.client, 1), [{ type: 'join', id: 'cat', name: 'cat' }])
    // Ann's second tab, on another instance: one member.
    const tab = await c.open('room', 'ann')
    t.same(tab.members.map((m) => m.id), ['ann', 'ben', 'cat'])
    ann.client.ws.close()
    await ann.client.waitClose()
    ben.client.ws.close()
    t.same(await events(cat.client, 1), [{ type: 'leave', id: 'ben', name: 'ben' }], 'no leave for ann\'s first tab, then ben leaves')
    tab.client.ws.close()
    t.same(await events(cat.client, 1), [{ type: 'leave', id: 'ann', name: 'ann' }], 'ann leaves with her last tab')
  })

  await t.test('count, disconnect and unsubscribe on every instance, each reporting how many instances acted', async (t) => {
    const pages = [await a.open('kick', 'bob'), await b.open('kick', 'bob'), await c.open('kick', 'bob'), await c.open('kick', 'eve')]
    t.same(await b.app.websocket.cluster.subscriberCount('kick'), { instances: 3, sockets: 4 })
    t.same(await a.app.websocket.cluster.disconnect({ member: 'bob', topic: 'kick' }, 4001, 'kicked'), { instances: 3, sockets: 3 })
    for (const page of pages.slice(0, 3)) t.same(await page.client.waitClose(), { code: 4001, reason: 'kicked', wasClean: true })
    t.same(await c.app.websocket.cluster.unsubscribe({ topic: 'kick' }, 'kick'), { instances: 3, sockets: 1 })
    t.equal(c.app.websocket.subscriberCount('kick'), 0)
    t.equal(pages[3].client.ws.readyState, 1, 'eve is unsubscribed, still connected')
  })

  await t.test('a join storm: 1,000 pages over three instances at once (watching nothing), each event once to the watching page', async (t) => {
    const watcher = await a.open('storm', 'watcher')
    const apps = [a, b, c]
    const pages = await Promise.all(Array.from({ length: 1000 }, (_, i) => apps[i % 3].open('storm', `m${i}`, undefined, false)))
    const ids = pages.map((_, i) => `m${i}`)
    t.same((await events(watcher.client, 1000)).map((e) => `${e.type}:${e.id}`).sort(), ids.map((id) => `join:${id}`).sort())
    for (const page of pages) page.client.ws.close()
    t.same((await events(watcher.client, 1000)).map((e) => `${e.type}:${e.id}`).sort(), ids.map((id) => `leave:${id}`).sort())
  })
})

test('an instance killed with SIGKILL: its members leave within the ttl', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const [a] = await instances(t, { url: redis.url }, 1, 1500)
  const watcher = await a.open('ghosts', 'watcher')
  const doomed = await startInstance(t, { REDIS_URL: redis.url, PRESENCE_TTL: '1500' })
  const ws = new WebSocket(`ws://127.0.0.1:${doomed.port}/p?topic=ghosts&id=ghost`)
  await withTimeout(new Promise((resolve) => ws.addEventListener('message', resolve, { once: true })), 'tracked')
  t.same(await events(watcher.client, 1), [{ type: 'join', id: 'ghost', name: 'ghost' }])
  await doomed.kill()
  const killed = Date.now()
  t.same(await events(watcher.client, 1), [{ type: 'leave', id: 'ghost', name: 'ghost' }], 'a leave, from the watching instance\'s heartbeat')
  t.ok(Date.now() - killed < 1500 + 500 + 1000, `within the ttl and one heartbeat (${Date.now() - killed} ms)`)
  t.same((await a.app.websocket.cluster.presence('ghosts')).map((m) => m.id), ['watcher'])
})

test('the emitter: a Node script that cannot load Fastify publishes, counts, lists and kicks', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await instances(t, { url: redis.url }, 2)
  const news = await a.open('news', 'reader')
  const bob = await b.open('room', 'bob')
  const ann = await a.open('room', 'ann')
  const script = fileURLToPath(new URL('fixtures/emitter.mjs', import.meta.url))
  const child = spawn(process.execPath, [script], { env: { ...process.env, REDIS_URL: redis.url }, stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await withTimeout(new Promise((resolve) => child.once('exit', resolve)), 'the emitter script', 30_000)
  t.equal(code, 0, 'the script ran without loading Fastify')
  t.same(JSON.parse(output), {
    count: { instances: 2, sockets: 1 },
    presence: ['ann', 'bob'],
    kick: { instances: 2, sockets: 1 }
  })
  t.equal(await news.client.nextMessage(), 'from a worker')
  t.same(await bob.client.waitClose(), { code: 4001, reason: 'kicked by a worker', wasClean: true })
  t.same(await events(ann.client, 1), [{ type: 'leave', id: 'bob', name: 'bob' }])
})

test('a Redis Cluster of 3 masters: presence, events and requests across instances', { skip: skipWithoutRedis }, async (t) => {
  const cluster = await startCluster(t)
  const [a, b, c] = await instances(t, { cluster: { rootNodes: cluster.rootNodes } })
  for (const topic of ['c:one', 'c:two', 'c:{tag}three']) {
    const ann = await a.open(topic, 'ann')
    const ben = await b.open(topic, 'ben')
    const cat = await c.open(topic, 'cat')
    t.same(cat.members.map((m) => m.id), ['ann', 'ben', 'cat'], `${topic}: members`)
    t.same(await events(ann.client, 2), [{ type: 'join', id: 'ben', name: 'ben' }, { type: 'join', id: 'cat', name: 'cat' }])
    t.same(await b.app.websocket.cluster.subscriberCount(topic), { instances: 3, sockets: 3 }, `${topic}: count`)
    t.same(await c.app.websocket.cluster.disconnect({ member: 'ben' }, 4001), { instances: 3, sockets: 1 }, `${topic}: kick`)
    t.equal((await ben.client.waitClose()).code, 4001)
    t.same(await events(ann.client, 1), [{ type: 'leave', id: 'ben', name: 'ben' }])
    ann.client.ws.close()
    cat.client.ws.close()
  }
})

test('subscribe with since and presence: the welcome and the members go before the replay and the events, on another instance', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await instances(t, { url: redis.url }, 2)
  const first = await a.app.websocket.publishStored('h:room', 'm1')
  for (const text of ['m2', 'm3', 'm4']) await a.app.websocket.publishStored('h:room', text)
  await a.open('h:room', 'ann')
  for (let run = 0; run < 5; run++) {
    const client = await b.h.client(`/p?topic=h:room&id=bob${run}&since=${formatPosition(first)}`)
    const got: string[] = []
    for (let i = 0; i < 5; i++) got.push(await client.nextMessage() as string)
    t.same(got.slice(0, 2).map((m) => JSON.parse(m).type), ['welcome', 'presence'], `run ${run}: the welcome, then the members`)
    t.same(got.slice(2).map((m) => m.split('|')[1]), ['m2', 'm3', 'm4'], `run ${run}: then the replay`)
    client.ws.close()
    await client.waitClose()
  }
})

test('hostile control messages are dropped and counted; the sockets and the next real request carry on', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const broker = new RedisBroker({ url: redis.url, closeTimeout: 200 })
  const { app, open } = await presenceApp(t, broker)
  const page = await open('safe', 'ann')
  const header = '\x01\x10' + 'x'.repeat(16)
  const reply = `ws:\0reply\0${'0'.repeat(32)}`
  for (const payload of [
    'not json',
    JSON.stringify({ action: 'disconnect', match: {}, code: 999, reason: '', r: 1, to: reply }),
    JSON.stringify({ action: 'disconnect', match: { member: 5 }, code: 1000, reason: '', r: 1, to: reply }),
    JSON.stringify({ action: 'disconnect', match: {}, code: 1000, reason: '', r: 1, to: 'ws:room' }),
    JSON.stringify({ action: 'explode', r: 1, to: reply })
  ]) await rawCommand(redis.port, 'SPUBLISH', 'ws:\0control', header + payload)
  await rawCommand(redis.port, 'SPUBLISH', 'ws:\0control', '\x02' + header.slice(1) + '{}')
  await waitFor(() => broker.dropped.malformed === 6, 'six dropped')
  t.equal(page.client.ws.readyState, 1, 'no socket was closed')
  t.same(await app.websocket.cluster.subscriberCount('safe'), { instances: 1, sockets: 1 }, 'a real request still works')
})
