/**
 * Presence and cluster requests in one process (LocalBroker): members and
 * their join and leave events once per page, one member for two sockets of
 * one id, disconnect and unsubscribe by member and topic, counts, limits,
 * and the option's checks.
 */
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455, { presenceTopic } from '../../lib/index.js'
import { events, presenceApp } from './fixtures/presence-app.js'
import { delay } from '../integration/helpers.js'
import { waitFor } from '../support/redis.js'

test('members, then join and leave once per page; two sockets of one id are one member', async (t) => {
  const { open } = await presenceApp(t, undefined)
  const alice = await open('room', 'alice', 'Alice')
  t.same(alice.members, [{ id: 'alice', name: 'Alice' }], 'the new page is in its own list')
  const bob = await open('room', 'bob', 'Bob')
  t.same(bob.members, [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }])
  t.same(await events(alice.client, 1), [{ type: 'join', id: 'bob', name: 'Bob' }])
  const tab = await open('room', 'alice', 'Alice')
  t.same(tab.members.map((m) => m.id), ['alice', 'bob'])
  alice.client.ws.close()
  await alice.client.waitClose()
  const carol = await open('room', 'carol', 'Carol')
  t.same(await events(bob.client, 1), [{ type: 'join', id: 'carol', name: 'Carol' }], 'no join for the second tab, no leave for the first tab closing')
  tab.client.ws.close()
  t.same(await events(bob.client, 1), [{ type: 'leave', id: 'alice', name: 'Alice' }], 'alice leaves with her last tab')
  t.same(await events(carol.client, 1), [{ type: 'leave', id: 'alice', name: 'Alice' }])
})

test('cluster requests on the LocalBroker: count, disconnect by member, unsubscribe by topic', async (t) => {
  const { app, open } = await presenceApp(t, undefined)
  const a = await open('r1', 'ann')
  const b = await open('r1', 'ben')
  const c = await open('r2', 'ann')
  t.same(await app.websocket.cluster.subscriberCount('r1'), { instances: 1, sockets: 2 })
  t.same(await app.websocket.cluster.presence('r1').then((m) => m.map((x) => x.id).sort()), ['ann', 'ben'])
  t.same(await app.websocket.cluster.disconnect({ member: 'ann', topic: 'r1' }, 4001, 'kicked'), { instances: 1, sockets: 1 })
  t.same(await a.client.waitClose(), { code: 4001, reason: 'kicked', wasClean: true })
  t.equal(c.client.ws.readyState, 1, 'ann in another topic stays')
  await waitFor(() => app.websocket.subscriberCount('r1') === 1, 'the closed socket gone')
  t.same(await app.websocket.cluster.unsubscribe({ topic: 'r1' }, 'r1'), { instances: 1, sockets: 1 })
  t.equal(app.websocket.subscriberCount('r1'), 0)
  t.equal(b.client.ws.readyState, 1)
  t.same(await app.websocket.cluster.disconnect({}), { instances: 1, sockets: 2 }, 'every socket')
  t.equal((await b.client.waitClose()).code, 1000)
  await t.rejects(app.websocket.cluster.disconnect({}, 999), { code: 'FST_WS_INVALID_CLOSE_CODE' })
  await t.rejects(app.websocket.cluster.disconnect({ member: 1 } as never), { code: 'FST_WS_INVALID_MATCH' })
})

test('limits: members per topic, info size, id; errors without the option', async (t) => {
  const { app, open } = await presenceApp(t, undefined, { presence: { maxMembers: 2, maxInfoBytes: 40 } })
  await open('full', 'one')
  await open('full', 'two')
  await t.rejects(open('full', 'three'), /closed 1013 FST_WS_PRESENCE_FULL/, 'a third member is refused')
  const again = await open('full', 'two')
  t.equal(again.members.length, 2, 'a second socket of a member is not a new member')
  await t.rejects(open('full', 'x'.repeat(257)), /closed 1013 FST_WS_PRESENCE_ID/)
  await t.rejects(open('big', 'b', 'x'.repeat(40)), /closed 1013 FST_WS_PRESENCE_INFO/)

  const plain = Fastify()
  await plain.register(fastifyRfc6455)
  t.teardown(() => plain.close())
  await t.rejects(plain.websocket.cluster.presence('x'), { code: 'FST_WS_NO_PRESENCE' })
  t.same(await app.websocket.cluster.presence('nobody'), [])
})

test('an events topic is the store\'s: a publish to it throws, and a page subscribed to presence sees no forged event', async (t) => {
  const { app, open } = await presenceApp(t, undefined)
  const page = await open('guarded', 'ann')
  const forged = JSON.stringify({ type: 'join', id: 'mallory', info: { name: 'mallory' } })
  t.throws(() => app.websocket.publish(presenceTopic('guarded'), forged), { code: 'FST_WS_INVALID_TOPIC' })
  await t.rejects(async () => await app.websocket.publishStored(presenceTopic('guarded'), forged), { code: 'FST_WS_INVALID_TOPIC' })
  await open('guarded', 'bob')
  t.same(await events(page.client, 1), [{ type: 'join', id: 'bob', name: 'bob' }], 'the next event is a real one')
})

test('presence option checks', async (t) => {
  for (const [presence, code] of [[{ ttl: 0 }, 'FST_WS_INVALID_OPTION'], [{ maxMembers: 1.5 }, 'FST_WS_INVALID_OPTION'],
    [{ other: 1 }, 'FST_WS_UNKNOWN_OPTION'], [{ encode: 'x' }, 'FST_WS_INVALID_OPTION'], [true, 'FST_WS_INVALID_OPTION']] as const) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(fastifyRfc6455, { presence } as never).ready() }, { code }, JSON.stringify(presence))
  }
})

test('a join storm: 200 pages at once, each event once per page', async (t) => {
  const { open } = await presenceApp(t, undefined)
  const watcher = await open('storm', 'watcher')
  const pages = await Promise.all(Array.from({ length: 200 }, (_, i) => open('storm', `m${i}`)))
  const joined = await events(watcher.client, 200)
  t.same(joined.map((e) => e.id).sort(), pages.map((_, i) => `m${i}`).sort(), 'every member joined once')
  for (const page of pages) page.client.ws.close()
  const left = await events(watcher.client, 200)
  t.same(left.map((e) => e.id).sort(), pages.map((_, i) => `m${i}`).sort(), 'every member left once')
  await delay(50)
  t.equal(watcher.client.ws.readyState, 1)
})
