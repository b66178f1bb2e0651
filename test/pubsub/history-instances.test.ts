/**
 * Topics with history across instances in their own processes
 * (test/pubsub/fixtures/instance.ts with HISTORY=1) on one real
 * redis-server: a client that leaves one instance resumes on another with
 * exactly what it missed; an instance killed with SIGKILL loses nothing.
 */
import { test } from 'tap'
import { TestClient } from '../integration/helpers.js'
import { delay, withTimeout, type Teardown } from '../support/app.js'
import { skipWithoutRedis, startInstance, startRedis, type Instance } from '../support/redis.js'

/** A client of an instance's `/h` route: its welcome, then each message as `<position>|<data>`. */
async function resume (t: Teardown, port: number, topic: string, since?: string) {
  const client = await TestClient.open(`ws://127.0.0.1:${port}/h?topic=${topic}${since === undefined ? '' : `&since=${since}`}`)
  t.teardown(() => { client.ws.close() })
  const welcome = JSON.parse(await client.nextMessage() as string).welcome as { recovered: boolean, position: string }
  return { client, welcome }
}

/** POST /stored: publishes `messages` in turn on `instance`, resolves with their positions. */
async function stored (instance: Instance, topic: string, messages: string[]): Promise<string[]> {
  const response = await fetch(`http://127.0.0.1:${instance.port}/stored`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic, messages })
  })
  if (!response.ok) throw new Error(`POST /stored answered ${response.status}: ${await response.text()}`)
  return ((await response.json()) as { positions: string[] }).positions
}

const offset = (line: string): number => parseInt(line)

test('three instances: a client leaves instance 1, 500 messages go out from instances 2 and 3, it resumes on 3 with exactly those', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const instances = await Promise.all([0, 1, 2].map(() => startInstance(t, { REDIS_URL: redis.url, HISTORY: '1' })))
  const { client, welcome } = await resume(t, instances[0].port, 'h:room')
  t.equal(welcome.recovered, false, 'a first subscription recovers nothing')
  const [first] = await stored(instances[1], 'h:room', ['m0'])
  t.equal(await client.nextMessage(), `${first}|m0`)
  client.ws.close()
  await client.waitClose()

  const texts = (from: number) => Array.from({ length: 250 }, (_, i) => `i${from}-${i}`)
  const [fromTwo, fromThree] = await Promise.all([stored(instances[1], 'h:room', texts(2)), stored(instances[2], 'h:room', texts(3))])
  const published = [...fromTwo.map((p, i) => `${p}|${texts(2)[i]}`), ...fromThree.map((p, i) => `${p}|${texts(3)[i]}`)]
    .sort((x, y) => offset(x) - offset(y))
  t.same(published.map(offset), Array.from({ length: 500 }, (_, i) => i + 2), 'offsets 2 to 501, one per message')

  const again = await resume(t, instances[2].port, 'h:room', first)
  t.equal(again.welcome.recovered, true)
  const [live] = await stored(instances[0], 'h:room', ['live'])
  const got: string[] = []
  for (let i = 0; i < 501; i++) got.push(await again.client.nextMessage() as string)
  t.same(got, [...published, `${live}|live`], 'the 500, in order, then the live one')
})

test('SIGKILL of the instance a client is on: it resumes on another, nothing missing, nothing twice', { skip: skipWithoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const instances = await Promise.all([0, 1, 2].map(() => startInstance(t, { REDIS_URL: redis.url, HISTORY: '1' })))
  let { client } = await resume(t, instances[0].port, 'h:kill')
  const published: string[] = []
  let publishing = true
  const publisher = (async () => {
    for (let i = 0; publishing; i++) {
      const [position] = await stored(instances[1], 'h:kill', [`k${i}`])
      published.push(`${position}|k${i}`)
      await delay(2)
    }
  })()
  const got: string[] = []
  const collect = async (from: TestClient) => {
    for (;;) {
      const message = await from.nextMessage().catch(() => null)
      if (message === null) return
      got.push(message as string)
    }
  }
  const collecting = collect(client)
  await withTimeout((async () => { while (got.length < 20) await delay(5) })(), '20 messages before the kill')
  process.kill((await pidOf(instances[0])), 'SIGKILL')
  t.equal(await withTimeout(instances[0].exited, 'the killed instance to exit'), null, 'killed by a signal')
  await collecting
  const last = got[got.length - 1].split('|')[0]
  // Messages go on meanwhile; the client comes back on instance 3 with its last position.
  await delay(100)
  const again = await resume(t, instances[2].port, 'h:kill', last)
  t.equal(again.welcome.recovered, true)
  client = again.client
  const resumed = collect(client)
  await delay(300)
  publishing = false
  await publisher
  await withTimeout((async () => { while (got.length < published.length) await delay(5) })(), 'every published message')
  client.ws.close()
  await resumed
  t.same(got, published, 'every message once, in order, across the kill')
})

/** The process id of an instance, from its log lines (Fastify's logger writes `pid`). */
async function pidOf (instance: Instance): Promise<number> {
  const line = instance.logs.find((entry) => typeof (entry as unknown as { pid?: number }).pid === 'number') as unknown as { pid: number } | undefined
  if (line === undefined) throw new Error('no log line with a pid')
  return line.pid
}
