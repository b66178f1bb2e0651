/**
 * The Redis broker on a Redis Cluster of three masters (127.0.0.1): topics
 * whose channels hash to different shards, three app instances in their own
 * processes, delivery across them with sharded pub/sub (each channel lives on
 * the master owning its slot) and with classic pub/sub.
 */
import { test } from 'tap'
import { withTimeout } from '../support/app.js'
import { connectSubscriber, skipWithoutRedis, startCluster, startInstance, subscriberCounts, waitFor } from '../support/redis.js'

test('a cluster of three masters', { skip: skipWithoutRedis }, async (t) => {
  const cluster = await startCluster(t, 3)
  // One topic per master: channel ws:<topic> hashes (CLUSTER KEYSLOT) to a slot each master owns.
  const byPort = new Map<number, string>()
  for (let i = 0; byPort.size < 3; i++) {
    const port = await cluster.portOf(`ws:topic-${i}`)
    if (!byPort.has(port)) byPort.set(port, `topic-${i}`)
  }
  const topics = [...byPort.values()]
  const env = { REDIS_ROOT_NODES: cluster.rootNodes.map((node) => node.url).join(',') }

  for (const sharded of [true, false]) {
    await t.test(sharded ? 'sharded pub/sub: each channel on its own shard' : 'classic pub/sub', async (t) => {
      const instances = await Promise.all([0, 1, 2].map(() => startInstance(t, { ...env, SHARDED: sharded ? '1' : '0' })))
      const inboxes = await Promise.all(instances.map((instance) => connectSubscriber(t, instance.port, topics).then((subscriber) => subscriber.received)))

      if (sharded) {
        for (const [port, topic] of byPort) {
          await waitFor(async () => (await subscriberCounts(port, true, [`ws:${topic}`])).get(`ws:${topic}`) === 3,
            `3 subscribers of ws:${topic} on the master at ${port}`)
          for (const other of byPort.keys()) {
            if (other !== port) t.equal((await subscriberCounts(other, true, [`ws:${topic}`])).get(`ws:${topic}`), 0, `ws:${topic} not on ${other}`)
          }
        }
      } else {
        // A classic subscription is held by one node; PUBSUB NUMSUB counts only that node's.
        await waitFor(async () => {
          let total = 0
          for (const port of byPort.keys()) {
            const counts = await subscriberCounts(port, false, topics.map((topic) => `ws:${topic}`))
            for (const count of counts.values()) total += count
          }
          return total === 9
        }, 'the 9 classic subscriptions')
      }

      // Each instance publishes to each topic; every inbox gets every message, and a topic's in order.
      for (const [i, instance] of instances.entries()) {
        for (const topic of topics) await instance.publish(topic, [`${topic} ${i} a`, `${topic} ${i} b`])
      }
      await waitFor(() => inboxes.every((inbox) => inbox.length === 18), 'every inbox to have 18 messages')
      for (const [n, inbox] of inboxes.entries()) {
        for (const topic of topics) {
          for (const i of [0, 1, 2]) {
            const mine = inbox.filter((message) => message.startsWith(`${topic} ${i} `))
            t.same(mine, [`${topic} ${i} a`, `${topic} ${i} b`], `instance ${n} got ${topic} from instance ${i}, in order`)
          }
        }
      }
      for (const instance of instances) t.equal(await withTimeout(instance.stop(), 'the instance to exit', 10_000), 0, 'closed cleanly')
    })
  }
})
