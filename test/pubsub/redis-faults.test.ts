/**
 * Redis failing under two app instances (separate processes): redis-server
 * killed with SIGKILL while messages flow, then restarted on the same port;
 * then killed again and the app closed while it is down.
 */
import { test } from 'tap'
import { delay, withTimeout } from '../support/app.js'
import { connectSubscriber, skipWithoutRedis, startInstance, startRedis, subscriberCounts, waitFor, type LogLine } from '../support/redis.js'

const outages = (logs: LogLine[]) => logs.filter((line) => line.msg.includes('Redis unreachable'))

test('Redis killed while messages flow, restarted, killed again at shutdown', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await Promise.all([startInstance(t, { REDIS_URL: redis.url }), startInstance(t, { REDIS_URL: redis.url })])
  const atA = (await connectSubscriber(t, a.port, ['live'])).received
  const atB = (await connectSubscriber(t, b.port, ['live'])).received
  const subscribed = async () => (await subscriberCounts(redis.port, true, ['ws:live'])).get('ws:live') === 2
  await waitFor(subscribed, 'both instances to subscribe')
  // Messages flow from a (one every few ms, each an HTTP request) for the whole test.
  const published: string[] = []
  let flowing = true
  const flow = (async () => {
    while (flowing) {
      const message = `m${published.length}`
      published.push(message)
      if (await a.publish('live', [message]) !== 1) throw new Error(`${message} missed the local subscriber`)
      await delay(5)
    }
  })()
  const index = (message: string) => Number(message.slice(1))
  await waitFor(() => atB.length >= 10, 'messages flowing across')

  await redis.kill()
  await waitFor(() => outages(a.logs).length > 0 && outages(b.logs).length > 0, 'the outage in both logs')
  const killedAt = published.length
  await waitFor(() => published.length > killedAt + 20, 'publishes during the outage')
  await redis.restart()
  const restartedAt = published.length
  await waitFor(subscribed, 'both instances to subscribe again', 10_000)
  await waitFor(() => atB.length > 0 && index(atB[atB.length - 1]) >= restartedAt, 'delivery across instances to resume', 10_000)
  flowing = false
  await flow
  await waitFor(() => atA.length === published.length, 'every local delivery')

  t.same(atA, published, 'local delivery went on through the outage, in order')
  t.ok(atB.every((message, i) => i === 0 || index(message) > index(atB[i - 1])), 'across instances: in order, none twice')
  t.ok(atB.length < published.length, `across instances: messages published during the outage dropped (${published.length - atB.length})`)
  t.equal(outages(a.logs).length, 1, 'one outage line at the publishing instance')
  t.equal(outages(b.logs).length, 1, 'one outage line at the other')
  t.equal(outages(a.logs)[0].level, 50, 'logged as an error')
  await waitFor(() => a.logs.some((line) => line.msg.includes('reachable again')), "the recovery in a's log")

  await redis.kill()
  t.equal(await a.publish('live', ['last']), 1)
  t.equal(await withTimeout(a.stop(), 'app.close() with Redis down', 5000), 0, 'a closed and exited')
  t.equal(await withTimeout(b.stop(), 'app.close() with Redis down', 5000), 0, 'b closed and exited')
})
