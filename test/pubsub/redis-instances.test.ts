/**
 * Topics across instances: three instances of an app, each in its own
 * process (test/pubsub/fixtures/instance.ts) with the Redis broker on one
 * real redis-server, and WebSocket clients (undici) on each.
 */
import { test } from 'tap'
import { delay, withTimeout } from '../support/app.js'
import {
  connectSubscriber, rawCommand, skipWithoutRedis, startInstance, startRedis, subscriberCounts, waitFor, type Instance, type Subscriber
} from '../support/redis.js'

/** Waits until Redis counts `count` subscribers (one per instance) of each channel. */
function subscribers (port: number, channels: string[], count: number): Promise<void> {
  return waitFor(async () => {
    const counts = await subscriberCounts(port, true, channels)
    return channels.every((channel) => counts.get(channel) === count)
  }, `${count} subscribers of ${channels.join(', ')}`)
}

test('three instances in three processes', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const instances: Instance[] = await Promise.all([0, 1, 2].map(() => startInstance(t, { REDIS_URL: redis.url })))
  // Two clients on each instance, all subscribed to `room`.
  const clients: Subscriber[][] = []
  for (const instance of instances) clients.push([await connectSubscriber(t, instance.port, ['room']), await connectSubscriber(t, instance.port, ['room'])])
  await subscribers(redis.port, ['ws:room'], 3)

  await t.test('a publish on one instance reaches every subscriber of every instance once, in order', async (t) => {
    const messages = Array.from({ length: 200 }, (_, i) => `m${i}`)
    t.equal(await instances[0].publish('room', messages.slice(0, 100)), 200, 'each message taken by the 2 local sockets')
    t.equal(await instances[0].publish('room', messages.slice(100)), 200)
    const all = clients.flat()
    await waitFor(() => all.every((client) => client.received.length >= messages.length), 'every client to have 200 messages')
    await delay(100)
    for (const [i, client] of all.entries()) t.same(client.received, messages, `client ${i % 2} of instance ${Math.floor(i / 2)}`)
    for (const client of all) client.received.length = 0
  })

  await t.test('socket.publish reaches every subscriber but its sender, on every instance', async (t) => {
    const [sender, neighbour] = clients[1]
    sender.send('room|from a socket')
    const others = [neighbour, ...clients[0], ...clients[2]]
    await waitFor(() => others.every((client) => client.received.length === 1), 'the other five clients')
    // A later publish on the sender's instance: had the sender got its own message, it would come first.
    await instances[1].publish('room', ['marker'])
    await waitFor(() => sender.received.length === 1, 'the marker at the sender')
    t.same(sender.received, ['marker'], 'the sender did not get its own message')
    for (const client of others) t.same(client.received.slice(0, 1), ['from a socket'])
  })

  await t.test('a topic with no subscriber on an instance is not subscribed there; leaving empties Redis', async (t) => {
    const solo = await connectSubscriber(t, instances[2].port, ['solo'])
    await subscribers(redis.port, ['ws:solo'], 1)
    t.equal(await instances[0].publish('solo', ['to the one']), 0, 'no local subscriber on instance 0')
    await waitFor(() => solo.received.length === 1, 'the message on instance 2')
    t.same(solo.received, ['to the one'])

    solo.send('-solo')
    await subscribers(redis.port, ['ws:solo'], 0)
    for (const client of clients.flat()) await client.close()
    await subscribers(redis.port, ['ws:room'], 0)
    // Only the instances' channels of cluster requests (their names hold a NUL) stay.
    t.equal(await rawCommand(redis.port, 'PUBSUB', 'SHARDCHANNELS', 'ws:[^\0]*'), '*0\r\n', 'no topic\'s sharded channel is subscribed any more')
  })

  for (const instance of instances) t.equal(await withTimeout(instance.stop(), 'the instance to close and exit', 10_000), 0, 'closed cleanly')
})
