/**
 * The end of each WebSocket connection logged through its request's logger,
 * at info level as Fastify logs a request's completion: the close code and
 * reason, who started the closing handshake, the duration; a socket the
 * heartbeat terminates is logged as such.
 */
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyRfc6455 from '../../lib/index.js'
import { captureLogs, delay, start, withTimeout } from '../integration/helpers.js'

type Record = { [key: string]: unknown }

async function until (logs: Record[], check: (records: Record[]) => boolean, label: string): Promise<void> {
  await withTimeout((async () => { while (!check(logs)) await delay(10) })(), label)
}

test('a closed connection logs its end with the request id, code, initiator and duration', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/ws', { ws: true }, (socket) => socket.send('hi'))
  const h = await start(t, app)
  const client = await h.client('/ws')
  await client.nextMessage()
  client.ws.close(1000, 'bye')
  await until(logs.records, (records) => records.some((r) => r.msg === 'WebSocket closed'), 'the close line')
  const closed = logs.records.find((r) => r.msg === 'WebSocket closed') as Record
  const incoming = logs.records.find((r) => r.msg === 'incoming request') as Record
  t.equal(closed.level, 30, 'info, the level of "request completed"')
  t.equal(closed.reqId, incoming.reqId, "through the handshake request's logger")
  t.equal(closed.code, 1000)
  t.equal(closed.reason, 'bye')
  t.equal(closed.initiator, 'client')
  t.equal(typeof closed.duration, 'number')
})

test('a socket the heartbeat terminates is logged', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455, { heartbeatInterval: 50 })
  app.get('/ws', { ws: true }, () => {})
  const h = await start(t, app)
  // A raw client never answers the pings.
  await h.rawWebSocket('/ws')
  await until(logs.records, (records) => records.some((r) => r.msg === 'WebSocket closed'), 'the close line')
  t.ok(logs.records.some((r) => r.msg === 'WebSocket terminated: no pong to the last heartbeat ping' && r.level === 30), 'the termination')
  const closed = logs.records.find((r) => r.msg === 'WebSocket closed') as Record
  t.equal(closed.code, 1006)
  t.equal(closed.initiator, null)
})

test("Fastify's disableRequestLogging: no close line", async (t) => {
  const logs = captureLogs()
  const app = Fastify({ disableRequestLogging: true, logger: { level: 'info', stream: logs.stream } })
  await app.register(fastifyRfc6455)
  app.get('/ws', { ws: true }, (socket) => socket.close(1000))
  const h = await start(t, app)
  const client = await h.client('/ws')
  await client.waitClose()
  await delay(50)
  t.notOk(logs.records.some((r) => r.msg === 'WebSocket closed'))
})
